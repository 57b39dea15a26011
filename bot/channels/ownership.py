"""Who owns a conversation: the security mode, the keys, and the signed session tokens of the widget channel.

A socket.io (widget) conversation is reachable only with a session token this server issued for it. A token is
a JWT (RFC 7519, PyJWT, HS256) signed with ``SESSION_TOKEN_KEY``: issuer :data:`ISSUER`, subject the sender id,
issued-at and expiry (:data:`SESSION_TOKEN_SECONDS`). Sender ids carry their channel's prefix:

* ``web-<32 hex>``: an anonymous widget session, 128 random bits, created by the server at ``session_request``;
* ``bank-<32 hex>``: a customer the bank app's backend vouched for with a *customer token* (a JWT signed with
  ``BANK_SIGNING_KEY``, audience :data:`CUSTOMER_AUDIENCE`, subject the bank's customer id, lifetime at most
  :data:`MAX_CUSTOMER_TOKEN_SECONDS`; docs/bank-signing.md). The customer id itself is never stored: the sender
  is a keyed hash of it, so the same customer gets the same conversation on every device;
* ``wx-<hash>``: WeChat users (bot/channels/wechat/), never reachable through these tokens or REST.

Settings come from the environment (:meth:`ChannelSecurity.from_env`):

=========================== ====================================================================================
``SECURITY_MODE``           ``development`` (default: REST open on loopback) or ``production`` (REST only
                            signed by the bank's backend, bot/channels/rest_signing.py; every key required)
``SESSION_TOKEN_KEY``       the server's key for session tokens (``./scripts/run`` keeps one in var/session_key;
                            every replica needs the same one)
``BANK_SIGNING_KEY``        shared with the bank's backend: customer tokens and REST signatures
``REST_REPLAY_SECONDS``     how old (or how far ahead) a signed REST request's timestamp may be (default 300)
=========================== ====================================================================================
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import jwt

logger = logging.getLogger(__name__)

ISSUER = "debt-help-assistant"
"""The ``iss`` claim of the session tokens this server issues."""

CUSTOMER_AUDIENCE = "debt-help-widget"
"""The ``aud`` claim a bank's customer token must carry."""

SESSION_TOKEN_SECONDS = 30 * 24 * 3600
"""Lifetime of a session token: 30 days, after which the widget starts a new conversation."""

MAX_CUSTOMER_TOKEN_SECONDS = 3600
"""Longest lifetime (``exp - iat``) accepted for a bank's customer token: one hour."""

MAX_CUSTOMER_ID_CHARS = 128
"""Longest accepted customer id (the ``sub`` of a customer token)."""

WEB_PREFIX, BANK_PREFIX, WECHAT_PREFIX = "web-", "bank-", "wx-"
"""Sender id prefixes of anonymous widget sessions, bank customers and WeChat users."""

RESERVED_PREFIXES = (WEB_PREFIX, BANK_PREFIX, WECHAT_PREFIX)
"""Sender ids with these prefixes belong to the widget or WeChat: REST refuses them."""

WIDGET_SENDER = re.compile(r"^(web|bank)-[0-9a-f]{32}$")
"""The form of a widget sender id (anonymous or customer)."""

DEFAULT_REPLAY_SECONDS = 300
"""Default replay window of signed REST requests, in seconds."""

MODES = ("development", "production")
"""The values of ``SECURITY_MODE``."""

MIN_KEY_CHARS = 32
"""Shortest accepted key, in characters."""


class SecurityConfigError(ValueError):
    """A security setting is missing or invalid; the message names the variable."""


class TokenRefused(Exception):
    """A session or customer token that is missing, malformed, badly signed, expired or not for us."""


@dataclass(frozen=True)
class ChannelSecurity:
    """The channels' security settings. ``session_key`` is always set (in development a random one per process
    when ``SESSION_TOKEN_KEY`` is not); ``bank_key`` only when the bank's backend signs."""

    mode: str = "development"
    session_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    bank_key: Optional[bytes] = field(default=None, repr=False)
    replay_seconds: int = DEFAULT_REPLAY_SECONDS

    @property
    def production(self) -> bool:
        """True in production mode."""
        return self.mode == "production"

    @property
    def rest_signed(self) -> bool:
        """True when REST accepts only signed requests: in production, or whenever a bank key is set."""
        return self.production or self.bank_key is not None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> ChannelSecurity:
        """The settings from ``env`` (default ``os.environ``). Raises SecurityConfigError for an unknown mode, a
        key shorter than MIN_KEY_CHARS, a bad window, or, in production, a missing key."""
        env = os.environ if env is None else env
        mode = (env.get("SECURITY_MODE") or "development").strip().lower()
        if mode not in MODES:
            raise SecurityConfigError(f"SECURITY_MODE must be one of {', '.join(MODES)}, not {mode!r}")
        keys: List[Optional[bytes]] = []
        for name in ("SESSION_TOKEN_KEY", "BANK_SIGNING_KEY"):
            value = (env.get(name) or "").strip()
            if value and len(value) < MIN_KEY_CHARS:
                raise SecurityConfigError(f"{name} is shorter than {MIN_KEY_CHARS} characters")
            if not value and mode == "production":
                raise SecurityConfigError(f"{name} is required in production (SECURITY_MODE=production)")
            keys.append(value.encode("utf-8") if value else None)
        raw_window = env.get("REST_REPLAY_SECONDS") or str(DEFAULT_REPLAY_SECONDS)
        if not raw_window.isdigit() or not 10 <= int(raw_window) <= 3600:
            raise SecurityConfigError("REST_REPLAY_SECONDS must be a whole number of seconds from 10 to 3600")
        session_key, bank_key = keys
        if session_key is None:
            logger.warning("SESSION_TOKEN_KEY is not set: widget sessions last only as long as this process.")
            session_key = secrets.token_bytes(32)
        return cls(mode=mode, session_key=session_key, bank_key=bank_key, replay_seconds=int(raw_window))


_CACHED: Dict[str, ChannelSecurity] = {}


def channel_security() -> ChannelSecurity:
    """The process's settings from ``os.environ``, read once, so that every channel (socketio issuing tokens,
    the widget's history checking them, REST) uses the same keys. Raises SecurityConfigError."""
    if "settings" not in _CACHED:
        _CACHED["settings"] = ChannelSecurity.from_env()
    return _CACHED["settings"]


def new_web_sender() -> str:
    """A new anonymous widget sender id: ``web-`` and 128 random bits in hex."""
    return WEB_PREFIX + uuid.uuid4().hex


def customer_sender(security: ChannelSecurity, customer_id: str) -> str:
    """The sender id of a bank customer: ``bank-`` and the first 128 bits of HMAC-SHA256 (session key) of the
    customer id, so that the id itself is never stored and cannot be guessed from the sender."""
    digest = hmac.new(security.session_key, b"customer\n" + customer_id.encode("utf-8"), hashlib.sha256)
    return BANK_PREFIX + digest.hexdigest()[:32]


def issue_session_token(security: ChannelSecurity, sender_id: str, now: Optional[float] = None) -> str:
    """A session token for ``sender_id`` (a widget sender), valid SESSION_TOKEN_SECONDS from ``now`` (Unix s)."""
    issued = int(time.time() if now is None else now)
    claims = {"iss": ISSUER, "sub": sender_id, "iat": issued, "exp": issued + SESSION_TOKEN_SECONDS}
    return jwt.encode(claims, security.session_key, algorithm="HS256")


def session_sender(security: ChannelSecurity, token: object) -> str:
    """The sender id a session token was issued for. Raises TokenRefused (missing, malformed, wrong signature,
    expired, other issuer, not a widget sender)."""
    if not isinstance(token, str) or not token or len(token) > 1024:
        raise TokenRefused("no session token")
    try:
        claims = jwt.decode(token, security.session_key, algorithms=["HS256"], issuer=ISSUER,
                            options={"require": ["iss", "sub", "iat", "exp"]})
    except jwt.PyJWTError as err:
        raise TokenRefused(f"session token refused: {type(err).__name__}") from err
    sender = claims.get("sub")
    if not isinstance(sender, str) or not WIDGET_SENDER.match(sender):
        raise TokenRefused("session token refused: not a widget session")
    return sender


def customer_token_sender(security: ChannelSecurity, token: object, now: Optional[float] = None) -> str:
    """The sender id of the customer a bank's customer token names (see docs/bank-signing.md). Raises
    TokenRefused without a bank key, or for a token that is malformed, badly signed, expired, for another
    audience, living longer than MAX_CUSTOMER_TOKEN_SECONDS, or without a usable ``sub``."""
    if security.bank_key is None:
        raise TokenRefused("customer tokens are not accepted: BANK_SIGNING_KEY is not set")
    if not isinstance(token, str) or not token or len(token) > 2048:
        raise TokenRefused("no customer token")
    try:
        claims = jwt.decode(token, security.bank_key, algorithms=["HS256"], audience=CUSTOMER_AUDIENCE,
                            options={"require": ["aud", "sub", "iat", "exp"]})
    except jwt.PyJWTError as err:
        raise TokenRefused(f"customer token refused: {type(err).__name__}") from err
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int) or not isinstance(expires, int) or expires - issued > MAX_CUSTOMER_TOKEN_SECONDS:
        raise TokenRefused(f"customer token refused: it must expire within {MAX_CUSTOMER_TOKEN_SECONDS} s")
    if issued > (time.time() if now is None else now) + 60:
        raise TokenRefused("customer token refused: issued in the future")
    customer = claims.get("sub")
    if not isinstance(customer, str) or not customer.strip() or len(customer) > MAX_CUSTOMER_ID_CHARS:
        raise TokenRefused("customer token refused: 'sub' must be the customer id")
    return customer_sender(security, customer)


def bearer(authorization: Optional[str]) -> Optional[str]:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    return authorization[len("Bearer "):].strip() or None
