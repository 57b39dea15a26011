"""Session tokens, customer tokens and signed REST requests (bot.channels.ownership, bot.channels.rest_signing)."""
from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from bot.channels import rest_signing
from bot.channels.ownership import (
    CUSTOMER_AUDIENCE,
    ChannelSecurity,
    SecurityConfigError,
    TokenRefused,
    customer_token_sender,
    issue_session_token,
    new_web_sender,
    session_sender,
)
from bot.channels.rest import reserved_sender

KEY = b"k" * 32
BANK_KEY = "b" * 40
BANK_KEY_BYTES = BANK_KEY.encode()


def _security(**kw) -> ChannelSecurity:
    return ChannelSecurity(session_key=KEY, bank_key=BANK_KEY.encode(), **kw)


def test_a_session_token_opens_only_the_session_it_was_issued_for():
    security = _security()
    sender = new_web_sender()
    assert session_sender(security, issue_session_token(security, sender)) == sender
    assert new_web_sender() != sender


@pytest.mark.parametrize("token", [None, "", 42, "abc", "a" * 2000])
def test_a_missing_or_malformed_session_token_is_refused(token):
    with pytest.raises(TokenRefused):
        session_sender(_security(), token)


def test_a_session_token_signed_with_another_key_expired_or_not_for_a_widget_is_refused():
    security, sender = _security(), new_web_sender()
    other = ChannelSecurity(session_key=b"x" * 32)
    with pytest.raises(TokenRefused):
        session_sender(security, issue_session_token(other, sender))
    with pytest.raises(TokenRefused):
        session_sender(security, issue_session_token(security, sender, now=time.time() - 31 * 24 * 3600))
    with pytest.raises(TokenRefused):  # a validly signed token naming a REST or WeChat sender opens nothing
        session_sender(security, issue_session_token(security, "wx-abc"))
    forged = jwt.encode({"iss": "debt-help-assistant", "sub": sender, "iat": 1, "exp": 2 ** 40}, "x" * 32,
                        algorithm="HS256")
    with pytest.raises(TokenRefused):
        session_sender(security, forged)


def _customer_token(customer="C123", lifetime=600, key=BANK_KEY, audience=CUSTOMER_AUDIENCE, issued=None):
    now = int(time.time() if issued is None else issued)
    return jwt.encode({"aud": audience, "sub": customer, "iat": now, "exp": now + lifetime}, key, algorithm="HS256")


def test_a_customer_token_gives_the_same_keyed_sender_without_the_customer_id():
    security = _security()
    first = customer_token_sender(security, _customer_token())
    assert first == customer_token_sender(security, _customer_token())
    assert first.startswith("bank-") and "C123" not in first
    assert first != customer_token_sender(security, _customer_token("C124"))


@pytest.mark.parametrize("claims", [
    {"key": "w" * 40},               # not the bank's key
    {"audience": "someone-else"},    # another audience
    {"lifetime": 7200},              # lives longer than an hour
    {"issued_ago": 7200},            # expired
    {"issued_ago": -600},            # issued in the future
    {"customer": ""},                # no customer
])
def test_bad_customer_tokens_are_refused(claims):
    ago = claims.pop("issued_ago", 0)  # made now, not at collection: a slow run must not age the token
    with pytest.raises(TokenRefused):
        customer_token_sender(_security(), _customer_token(issued=time.time() - ago, **claims))


def test_customer_tokens_are_refused_without_a_bank_key():
    with pytest.raises(TokenRefused):
        customer_token_sender(ChannelSecurity(session_key=KEY), _customer_token())


def test_production_needs_both_keys_and_short_keys_are_refused():
    with pytest.raises(SecurityConfigError, match="SESSION_TOKEN_KEY"):
        ChannelSecurity.from_env({"SECURITY_MODE": "production", "BANK_SIGNING_KEY": BANK_KEY})
    with pytest.raises(SecurityConfigError, match="BANK_SIGNING_KEY"):
        ChannelSecurity.from_env({"SECURITY_MODE": "production", "SESSION_TOKEN_KEY": "s" * 32})
    with pytest.raises(SecurityConfigError, match="shorter"):
        ChannelSecurity.from_env({"SESSION_TOKEN_KEY": "short"})
    with pytest.raises(SecurityConfigError, match="SECURITY_MODE"):
        ChannelSecurity.from_env({"SECURITY_MODE": "open"})
    settings = ChannelSecurity.from_env({"SECURITY_MODE": "production", "SESSION_TOKEN_KEY": "s" * 32,
                                         "BANK_SIGNING_KEY": BANK_KEY})
    assert settings.production and settings.rest_signed
    assert not ChannelSecurity.from_env({}).rest_signed  # development without a bank key: REST open


def test_rest_may_not_write_to_widget_or_wechat_conversations():
    for sender in ["web-" + "0" * 32, "bank-abc", "wx-123", " WX-123"]:
        assert reserved_sender(sender)
    assert not reserved_sender("crm-C123") and not reserved_sender("t1")


def _signed(sender="crm-1", body=b'{"sender":"crm-1","message":"hi"}', timestamp=None, nonce="n" * 20,
            key=BANK_KEY_BYTES):
    stamp = str(int(time.time() if timestamp is None else timestamp))
    return {rest_signing.TIMESTAMP_HEADER: stamp, rest_signing.NONCE_HEADER: nonce,
            rest_signing.SIGNATURE_HEADER: rest_signing.sign(key, stamp, nonce, sender, body)}


def _verify(headers, sender="crm-1", body=b'{"sender":"crm-1","message":"hi"}', nonces=None):
    nonces = nonces or rest_signing.LocalNonces()
    return asyncio.run(rest_signing.verify(BANK_KEY.encode(), headers, sender, body, 300, nonces))


def test_a_request_signed_by_the_bank_is_accepted_once():
    nonces = rest_signing.LocalNonces()
    headers = _signed()

    async def twice() -> None:
        await rest_signing.verify(BANK_KEY.encode(), headers, "crm-1", b'{"sender":"crm-1","message":"hi"}', 300,
                                  nonces)
        with pytest.raises(rest_signing.SignatureRefused, match="replayed"):
            await rest_signing.verify(BANK_KEY.encode(), headers, "crm-1", b'{"sender":"crm-1","message":"hi"}',
                                      300, nonces)

    asyncio.run(twice())


@pytest.mark.parametrize("signing, sender, body, reason", [
    (None, "crm-1", b'{"sender":"crm-1","message":"hi"}', "unsigned"),
    ({"skew": -400}, "crm-1", b'{"sender":"crm-1","message":"hi"}', "stale"),
    ({"skew": 400}, "crm-1", b'{"sender":"crm-1","message":"hi"}', "stale"),
    ({}, "crm-2", b'{"sender":"crm-1","message":"hi"}', "wrong signature"),
    ({}, "crm-1", b'{"sender":"crm-1","message":"bye"}', "wrong signature"),
    ({"key": b"w" * 40}, "crm-1", b'{"sender":"crm-1","message":"hi"}', "wrong signature"),
    ({"nonce": "short"}, "crm-1", b'{"sender":"crm-1","message":"hi"}', "Nonce"),
])
def test_unsigned_stale_tampered_and_malformed_requests_are_refused(signing, sender, body, reason):
    headers = {}
    if signing is not None:  # signed now, not at collection: a slow run must not make them stale
        skew = signing.pop("skew", 0)
        headers = _signed(timestamp=time.time() + skew, **signing)
    with pytest.raises(rest_signing.SignatureRefused, match=reason):
        _verify(headers, sender, body)


def test_a_badly_signed_request_does_not_use_up_the_nonce():
    nonces = rest_signing.LocalNonces()
    with pytest.raises(rest_signing.SignatureRefused):
        _verify(_signed(key=b"w" * 40), nonces=nonces)
    _verify(_signed(), nonces=nonces)  # the bank's own request with that nonce still goes through
