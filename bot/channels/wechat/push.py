"""Turn one WeChat webhook request (query parameters and body) into a checked :class:`Push`, or refuse it.

Pure functions, no I/O: the channel (``bot.channels.wechat.channel``) calls :func:`read_push` and answers
a :class:`~bot.channels.wechat.security.PushRejected` with its status. The checks, in order:

1. body size (413), the ``signature``/``timestamp``/``nonce`` parameters (400);
2. the timestamp against the server clock (403, replay protection) and ``signature`` (403);
3. the body as JSON or XML, whichever ``WECHAT_DATA_FORMAT`` says (400);
4. encrypted pushes (``encrypt_type=aes``): ``msg_signature`` (403), decryption (400), AppID (403);
   an unencrypted push in safe mode is refused (400), and in compatible mode too (403): WeChat then always
   sends the ciphertext, so a push without it had its encryption stripped on the way (a downgrade);
5. the fields every push has: ``FromUserName``, ``CreateTime``, ``MsgType`` (400), and ``ToUserName`` equal to
   the mini-program's original id (``WECHAT_ORIGINAL_ID``) when that is configured (403).

Push formats (text, image, miniprogrampage, the ``user_enter_tempsession`` event) are documented in
developers.weixin.qq.com/miniprogram/dev/framework/open-ability/customer-message/receive.html.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional
from xml.parsers.expat import ExpatError

import xmltodict

from bot.channels.wechat.security import (
    PushCrypto,
    PushRejected,
    check_request_signature,
    check_timestamp,
)
from bot.channels.wechat.settings import WeChatSettings

MAX_BODY_BYTES = 64 * 1024
"""Largest accepted push body. WeChat's pushes are a few KiB at most (an encrypted text of the longest
message a user can type stays far below this); larger bodies get HTTP 413."""

MAX_PARAM_CHARS = 128
"""Longest accepted query parameter (signatures are 40 hex characters, nonces and timestamps ~10 digits)."""

MAX_ECHOSTR_CHARS = 256
"""Longest ``echostr`` echoed back in URL verification."""

ENTER_SESSION_EVENT = "user_enter_tempsession"
"""The event WeChat pushes when a user opens the customer-service conversation."""


@dataclass(frozen=True)
class Push:
    """One checked push. ``fields`` holds every field of the (decrypted) message as strings or numbers."""

    openid: str
    """``FromUserName``: the sender's openid (never stored in the tracker, see ``security``)."""
    msg_type: str
    """``MsgType``: ``text``, ``image``, ``miniprogrampage``, ``event``, ..."""
    create_time: int
    """``CreateTime`` in Unix seconds."""
    fields: Dict[str, Any] = field(default_factory=dict)
    encrypted: bool = False
    """Whether it arrived encrypted (then a passive reply must be encrypted too)."""

    @property
    def msg_id(self) -> Optional[str]:
        """``MsgId`` (messages have one, events do not)."""
        value = self.fields.get("MsgId")
        return str(value) if value not in (None, "") else None

    @property
    def event(self) -> Optional[str]:
        """``Event`` for ``MsgType=event``, else ``None``."""
        if self.msg_type != "event":
            return None
        return str(self.fields.get("Event") or "") or None

    @property
    def content(self) -> str:
        """``Content`` of a text message ('' otherwise)."""
        value = self.fields.get("Content")
        return value if isinstance(value, str) else ""

    @property
    def original_id(self) -> str:
        """``ToUserName``: the mini-program's original id (``gh_...``), the sender of a passive reply."""
        return str(self.fields.get("ToUserName") or "")

    @property
    def dedup_key(self) -> str:
        """What identifies a retry of this push: ``MsgId``, or ``FromUserName`` + ``CreateTime`` for events.

        This is WeChat's own advice (消息排重: 有MsgId的消息用MsgId排重, 事件用FromUserName + CreateTime).
        """
        if self.msg_id:
            return f"msg:{self.msg_id}"
        return f"event:{self.openid}:{self.create_time}"


def _param(params: Mapping[str, str], name: str, required: bool = True) -> str:
    value = params.get(name) or ""
    if required and not value:
        raise PushRejected(400, f"query parameter '{name}' is required")
    if len(value) > MAX_PARAM_CHARS:
        raise PushRejected(400, f"query parameter '{name}' is too long")
    return value


def check_signed_query(params: Mapping[str, str], settings: WeChatSettings, now: Optional[float] = None) -> None:
    """Check ``timestamp`` (fresh) and ``signature`` (matches WECHAT_TOKEN). Raises PushRejected (400/403)."""
    signature, timestamp, nonce = (_param(params, name) for name in ("signature", "timestamp", "nonce"))
    check_timestamp(timestamp, now)
    check_request_signature(settings.token, signature, timestamp, nonce)


def verify_url(params: Mapping[str, str], settings: WeChatSettings, now: Optional[float] = None) -> str:
    """URL verification (the GET WeChat sends when the console's 消息推送 settings are saved).

    Returns the ``echostr`` to answer with. Raises PushRejected: 400 for missing or malformed parameters,
    403 for a stale timestamp or a wrong signature.
    """
    check_signed_query(params, settings, now)
    echostr = params.get("echostr") or ""
    if not echostr:
        raise PushRejected(400, "query parameter 'echostr' is required")
    if len(echostr) > MAX_ECHOSTR_CHARS or not echostr.isprintable() or not echostr.isascii():
        raise PushRejected(400, "query parameter 'echostr' is malformed")
    return echostr


def parse_document(body: bytes, data_format: str) -> Dict[str, Any]:
    """A JSON object or an ``<xml>`` document as a flat mapping. Raises PushRejected(400) if malformed.

    XML is parsed by ``xmltodict`` (expat), which refuses entity declarations (no XXE, no entity expansion).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PushRejected(400, "request body is not UTF-8") from None
    if data_format == "xml":
        try:
            document = xmltodict.parse(text)
        except (ExpatError, ValueError):
            raise PushRejected(400, "request body is not well-formed XML") from None
        if not isinstance(document, dict) or not isinstance(document.get("xml"), dict):
            raise PushRejected(400, "request body must be an <xml> document")
        root = document["xml"]
        if any(isinstance(value, (dict, list)) for value in root.values()):
            raise PushRejected(400, "request body has nested or repeated XML elements")
        return {key: ("" if value is None else value) for key, value in root.items()}
    try:
        document = json.loads(text)
    except ValueError:
        raise PushRejected(400, "request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise PushRejected(400, "request body must be a JSON object")
    return document


def _checked(document: Dict[str, Any], encrypted: bool, original_id: str = "") -> Push:
    if original_id and document.get("ToUserName") != original_id:
        raise PushRejected(403, "'ToUserName' is not this mini-program's original id (WECHAT_ORIGINAL_ID)")
    openid = document.get("FromUserName")
    msg_type = document.get("MsgType")
    create_time = document.get("CreateTime")
    if not isinstance(openid, str) or not openid or len(openid) > MAX_PARAM_CHARS:
        raise PushRejected(400, "'FromUserName' is required and must be an openid")
    if not isinstance(msg_type, str) or not msg_type:
        raise PushRejected(400, "'MsgType' is required")
    if isinstance(create_time, str) and create_time.isdigit():
        create_time = int(create_time)
    if not isinstance(create_time, int) or isinstance(create_time, bool):
        raise PushRejected(400, "'CreateTime' is required and must be a Unix time")
    content = document.get("Content")
    if content is not None and not isinstance(content, str):
        raise PushRejected(400, "'Content' must be a string")
    msg_id = document.get("MsgId")
    if msg_id is not None and not (isinstance(msg_id, int) or (isinstance(msg_id, str) and msg_id.isdigit())):
        raise PushRejected(400, "'MsgId' must be a number")
    return Push(openid=openid, msg_type=msg_type, create_time=create_time, fields=document, encrypted=encrypted)


def read_push(params: Mapping[str, str], body: bytes, settings: WeChatSettings,
              crypto: Optional[PushCrypto], now: Optional[float] = None) -> Push:
    """Check and parse one POSTed push (see the module docstring for the order of checks).

    ``params``: the query parameters (first value of each); ``body``: the raw request body; ``crypto``: the
    mini-program's PushCrypto, or None when no EncodingAESKey is configured (plaintext mode).
    Raises PushRejected (400, 403 or 413) with the reason.
    """
    if len(body) > MAX_BODY_BYTES:
        raise PushRejected(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    check_signed_query(params, settings, now)
    document = parse_document(body, settings.data_format)
    encrypt_type = _param(params, "encrypt_type", required=False)
    if encrypt_type and encrypt_type != "aes":
        raise PushRejected(400, f"unsupported encrypt_type {encrypt_type!r}")
    if not encrypt_type:
        if settings.mode == "safe":
            raise PushRejected(400, "WECHAT_MODE is safe: unencrypted pushes are refused")
        if settings.mode == "compatible":
            raise PushRejected(403, "WECHAT_MODE is compatible: WeChat sends every push encrypted, so a push "
                                    "without encryption is refused (stripped encryption, a downgrade)")
        return _checked(document, encrypted=False, original_id=settings.original_id)
    if crypto is None:
        raise PushRejected(400, "the push is encrypted but no WECHAT_ENCODING_AES_KEY is configured")
    encrypt = document.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise PushRejected(400, "an encrypted push must carry an 'Encrypt' field")
    plaintext = crypto.decrypt(encrypt, _param(params, "msg_signature"), params["timestamp"], params["nonce"])
    inner = parse_document(plaintext.encode("utf-8"), settings.data_format)
    return _checked(inner, encrypted=True, original_id=settings.original_id)
