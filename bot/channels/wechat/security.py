"""Signatures, replay protection and AES for WeChat message pushes (all done by ``wechatpy``), and the keyed
hash that stands for a WeChat user in Rasa.

WeChat signs every request to the webhook with ``signature = sha1(sorted([Token, timestamp, nonce]))`` and,
for encrypted pushes, ``msg_signature = sha1(sorted([Token, timestamp, nonce, Encrypt]))``. The encrypted
payload is AES-256-CBC with the EncodingAESKey and carries the AppID it was encrypted for. Sources: the
mini-program 消息推送 guide (developers.weixin.qq.com/miniprogram/dev/framework/server-ability/message-push.html)
and 消息加解密说明. Nothing here is hand-rolled: ``wechatpy.utils.check_signature``/``WeChatSigner`` sign,
``wechatpy.crypto.WeChatCrypto``/``PrpCrypto`` encrypt and decrypt.

Every rejection is a :class:`PushRejected` with the HTTP status to answer and a one-sentence reason.

The Rasa sender id of a WeChat user is a keyed hash of the openid, so trackers never hold the openid:
``user_id(openid) = "wx-" + hex(HMAC-SHA256(WECHAT_ID_HASH_KEY, openid))``. Without the key the id cannot be
linked back to the WeChat account; the channel keeps the id -> openid mapping it needs to reply in its own
store (``bot.channels.wechat.store``), not in the tracker.
"""
from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import struct
import time
from typing import Optional

from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import WeChatSigner, check_signature

USER_ID_PREFIX = "wx-"
"""Prefix of every WeChat sender id (tells the channel's users apart in the tracker store)."""

MAX_CLOCK_SKEW_SECONDS = 300
"""A request whose ``timestamp`` is further than this from the server clock is refused (replay protection)."""


class PushRejected(Exception):
    """A webhook request that must not be processed: ``status`` is the HTTP status, ``reason`` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(*parts: str) -> str:
    """WeChat's request signature: hex SHA-1 of the parts sorted and concatenated (``wechatpy``'s signer)."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def check_timestamp(timestamp: str, now: Optional[float] = None,
                    max_skew: int = MAX_CLOCK_SKEW_SECONDS) -> int:
    """``timestamp`` (Unix seconds, as sent in the query) as an int.

    Raises PushRejected: 400 if it is not a number, 403 if it is more than ``max_skew`` seconds away from
    ``now`` (default: the current time) in either direction.
    """
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise PushRejected(400, "'timestamp' must be a Unix time in seconds")
    value = int(timestamp)
    current = time.time() if now is None else now
    if abs(current - value) > max_skew:
        raise PushRejected(403, f"'timestamp' is more than {max_skew} s away from the server clock "
                                "(stale or replayed request)")
    return value


def check_request_signature(token: str, signature: str, timestamp: str, nonce: str) -> None:
    """Check the ``signature`` query parameter. Raises PushRejected(403) when it does not match."""
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException:
        raise PushRejected(403, "'signature' does not match the configured WECHAT_TOKEN") from None


class PushCrypto:
    """Decrypts pushes and encrypts passive replies for one mini-program (Token, EncodingAESKey, AppID).

    Raises AssertionError/ValueError from ``wechatpy`` if the key is not a valid EncodingAESKey; check it with
    :func:`bot.channels.wechat.settings.aes_key_problem` first.
    """

    def __init__(self, token: str, encoding_aes_key: str, appid: str) -> None:
        self._crypto = WeChatCrypto(token, encoding_aes_key, appid)
        self.token = token
        self.appid = appid

    def decrypt(self, encrypt: str, msg_signature: str, timestamp: str, nonce: str) -> str:
        """The plaintext (a JSON or XML document) of the ``Encrypt`` field of a push.

        Raises PushRejected: 403 if ``msg_signature`` does not match, 400 if the ciphertext cannot be
        decrypted, 403 if it was encrypted for another AppID.
        """
        try:
            return self._crypto.decrypt_message({"Encrypt": encrypt}, msg_signature, timestamp, nonce)
        except InvalidSignatureException:
            raise PushRejected(403, "'msg_signature' does not match the encrypted body") from None
        except InvalidAppIdException:
            raise PushRejected(403, "the encrypted message is for a different AppID than WECHAT_APPID") from None
        except (binascii.Error, ValueError, TypeError, IndexError, struct.error, UnicodeDecodeError):
            raise PushRejected(400, "the encrypted body cannot be decrypted with WECHAT_ENCODING_AES_KEY") from None

    def encrypt(self, plaintext: str) -> str:
        """``plaintext`` encrypted for this AppID, base64 (the ``Encrypt`` value of a push or reply)."""
        return PrpCrypto(self._crypto.key).encrypt(plaintext, self.appid).decode("ascii")

    def encrypted_reply(self, plaintext: str, data_format: str, nonce: str, timestamp: Optional[str] = None) -> str:
        """A passive reply in safe mode: ``plaintext`` encrypted and signed, as JSON or XML (``data_format``).

        JSON: ``{"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}``; XML: wechatpy's ``<xml><Encrypt>...``.
        """
        timestamp = timestamp or str(int(time.time()))
        if data_format == "xml":
            return self._crypto.encrypt_message(plaintext, nonce, timestamp)
        encrypt = self.encrypt(plaintext)
        return json.dumps({"Encrypt": encrypt, "MsgSignature": sign(self.token, timestamp, nonce, encrypt),
                           "TimeStamp": int(timestamp), "Nonce": nonce})


def user_id(openid: str, key: str) -> str:
    """The sender id for ``openid``: ``wx-`` and 64 hex characters. Raises ValueError if ``key`` is empty."""
    if not key:
        raise ValueError("an empty WECHAT_ID_HASH_KEY would make the sender id a plain hash of the openid")
    return USER_ID_PREFIX + hmac.new(key.encode("utf-8"), openid.encode("utf-8"), hashlib.sha256).hexdigest()
