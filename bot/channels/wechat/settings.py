"""Settings of the WeChat mini-program channel, read from the environment (never from committed files).

Every setting is an environment variable (see docs/channels/wechat.md):

==============================  ==========================================================================
``WECHAT_APPID``                the mini-program's AppID (``wx...``); also checked inside decrypted pushes
``WECHAT_APPSECRET``            its AppSecret, used only to fetch the API access token
``WECHAT_TOKEN``                the 消息推送 Token (signs every push)
``WECHAT_ORIGINAL_ID``          the mini-program's original id (``gh_...``); pushes to another ``ToUserName``
                                are refused (unchecked when unset)
``WECHAT_ENCODING_AES_KEY``     the 43-character EncodingAESKey (required unless the mode is plaintext)
``WECHAT_MODE``                 ``plaintext`` | ``compatible`` | ``safe`` (消息加密方式; default ``safe``)
``WECHAT_DATA_FORMAT``          ``json`` | ``xml`` (数据格式; default ``json``)
``WECHAT_API_BASE_URL``         default ``https://api.weixin.qq.com`` (tests point it at a fake server)
``WECHAT_TRANSFER_TO_KF``       ``true`` | ``false`` (default): hand users to WeChat's customer-service tool
``WECHAT_TRANSFER_WINDOW``      seconds after a hand-over during which the user's messages are transferred
                                (default 600)
``WECHAT_ID_HASH_KEY``          secret key of the HMAC that turns an openid into the Rasa sender id
``WECHAT_STORE_URL``            shared store: a SQLAlchemy URL or ``redis://...``; default SQLite file
                                ``var/wechat.db``. Earlier releases called it ``WECHAT_DEDUP_URL``, which
                                is still read (with a deprecation warning) when ``WECHAT_STORE_URL`` is unset
``WECHAT_LINK_THUMB_URL``       optional picture URL for ``link`` cards (without it links are sent as text)
``WECHAT_PAGE_THUMB_MEDIA_ID``  optional media_id for ``miniprogrampage`` cards (else a text page link)
==============================  ==========================================================================

The channel is *configured* only when :func:`WeChatSettings.problems` is empty; otherwise its webhook answers
HTTP 503 with the problems and the rest of the server runs normally.
"""
from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional

from bot import PROJECT_ROOT

logger = logging.getLogger(__name__)

MODES = ("plaintext", "compatible", "safe")
"""The three 消息加密方式 of the mini-program console: 明文模式, 兼容模式, 安全模式."""

DATA_FORMATS = ("json", "xml")
"""The two 数据格式 of the mini-program console."""

DEFAULT_API_BASE_URL = "https://api.weixin.qq.com"
"""WeChat's server API host."""

DEFAULT_STORE_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'wechat.db'}"
"""The shared store when ``WECHAT_STORE_URL`` is unset: a SQLite file (right for one server only)."""

DEPRECATED_STORE_VARIABLE = "WECHAT_DEDUP_URL"
"""The earlier name of ``WECHAT_STORE_URL`` (the store began as the dedup table); read when the new one is unset."""

DEFAULT_TRANSFER_WINDOW_SECONDS = 600
"""How long after a hand-over the user's messages are forwarded to WeChat's customer-service tool."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def aes_key_problem(key: str) -> Optional[str]:
    """Why ``key`` is not a valid EncodingAESKey (43 base64 characters encoding 32 bytes), or ``None``."""
    if len(key) != 43:
        return f"WECHAT_ENCODING_AES_KEY must be 43 characters long (got {len(key)})"
    try:
        decoded = base64.b64decode(key + "=", validate=True)
    except (binascii.Error, ValueError):
        return "WECHAT_ENCODING_AES_KEY is not base64 (letters, digits, + and / only)"
    if len(decoded) != 32:
        return "WECHAT_ENCODING_AES_KEY does not decode to a 32-byte AES key"
    return None


def _store_url(get: Callable[[str], str]) -> str:
    """``WECHAT_STORE_URL``, else the deprecated ``WECHAT_DEDUP_URL`` (logging a warning), else the default."""
    current, deprecated = get("WECHAT_STORE_URL"), get(DEPRECATED_STORE_VARIABLE)
    if current:
        if deprecated:
            logger.warning("%s is deprecated and ignored because WECHAT_STORE_URL is set; remove it.",
                           DEPRECATED_STORE_VARIABLE)
        return current
    if deprecated:
        logger.warning("%s is deprecated: rename it to WECHAT_STORE_URL (it is still read while "
                       "WECHAT_STORE_URL is unset).", DEPRECATED_STORE_VARIABLE)
        return deprecated
    return DEFAULT_STORE_URL


@dataclass(frozen=True)
class WeChatSettings:
    """The channel's settings. Build them with :meth:`from_env`; check :meth:`problems` before use."""

    appid: str = ""
    appsecret: str = ""
    token: str = ""
    original_id: str = ""
    encoding_aes_key: str = ""
    mode: str = "safe"
    data_format: str = "json"
    api_base_url: str = DEFAULT_API_BASE_URL
    transfer_to_kf: bool = False
    transfer_window_seconds: int = DEFAULT_TRANSFER_WINDOW_SECONDS
    id_hash_key: str = ""
    store_url: str = DEFAULT_STORE_URL
    link_thumb_url: str = ""
    page_thumb_media_id: str = ""
    invalid: List[str] = field(default_factory=list)
    """Values that could not be read (e.g. ``WECHAT_TRANSFER_TO_KF=maybe``); reported by :meth:`problems`."""

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> WeChatSettings:
        """Read the ``WECHAT_*`` variables from ``environ`` (default ``os.environ``). Never raises."""
        env = os.environ if environ is None else environ

        def get(name: str, default: str = "") -> str:
            return (env.get(name) or default).strip()

        invalid: List[str] = []
        transfer_raw = get("WECHAT_TRANSFER_TO_KF").lower()
        if transfer_raw not in _TRUE | _FALSE:
            invalid.append(f"WECHAT_TRANSFER_TO_KF must be true or false (got {transfer_raw!r})")
        window_raw = get("WECHAT_TRANSFER_WINDOW", str(DEFAULT_TRANSFER_WINDOW_SECONDS))
        try:
            window = int(window_raw)
            if window <= 0:
                raise ValueError
        except ValueError:
            invalid.append(f"WECHAT_TRANSFER_WINDOW must be a positive number of seconds (got {window_raw!r})")
            window = DEFAULT_TRANSFER_WINDOW_SECONDS
        return cls(
            appid=get("WECHAT_APPID"),
            appsecret=get("WECHAT_APPSECRET"),
            token=get("WECHAT_TOKEN"),
            original_id=get("WECHAT_ORIGINAL_ID"),
            encoding_aes_key=get("WECHAT_ENCODING_AES_KEY"),
            mode=get("WECHAT_MODE", "safe").lower(),
            data_format=get("WECHAT_DATA_FORMAT", "json").lower(),
            api_base_url=get("WECHAT_API_BASE_URL", DEFAULT_API_BASE_URL).rstrip("/"),
            transfer_to_kf=transfer_raw in _TRUE,
            transfer_window_seconds=window,
            id_hash_key=get("WECHAT_ID_HASH_KEY"),
            store_url=_store_url(get),
            link_thumb_url=get("WECHAT_LINK_THUMB_URL"),
            page_thumb_media_id=get("WECHAT_PAGE_THUMB_MEDIA_ID"),
            invalid=invalid,
        )

    @property
    def encrypted(self) -> bool:
        """Whether pushes may be (compatible) or must be (safe) AES-encrypted."""
        return self.mode in ("compatible", "safe")

    def problems(self) -> List[str]:
        """What stops the channel from working, one sentence each; empty when it is fully configured."""
        if not any((self.appid, self.token, self.appsecret, self.encoding_aes_key, self.id_hash_key)):
            return ["the WeChat mini-program channel is not configured: set WECHAT_APPID, WECHAT_APPSECRET, "
                    "WECHAT_TOKEN, WECHAT_ID_HASH_KEY and (unless WECHAT_MODE=plaintext) "
                    "WECHAT_ENCODING_AES_KEY"]
        found = list(self.invalid)
        for name, value in (("WECHAT_APPID", self.appid), ("WECHAT_APPSECRET", self.appsecret),
                            ("WECHAT_TOKEN", self.token), ("WECHAT_ID_HASH_KEY", self.id_hash_key)):
            if not value:
                found.append(f"{name} is not set")
        if self.mode not in MODES:
            found.append(f"WECHAT_MODE must be one of {', '.join(MODES)} (got {self.mode!r})")
        if self.data_format not in DATA_FORMATS:
            found.append(f"WECHAT_DATA_FORMAT must be json or xml (got {self.data_format!r})")
        if self.mode != "plaintext":
            if not self.encoding_aes_key:
                found.append("WECHAT_ENCODING_AES_KEY is not set (required unless WECHAT_MODE=plaintext)")
            else:
                problem = aes_key_problem(self.encoding_aes_key)
                if problem:
                    found.append(problem)
        if self.id_hash_key and len(self.id_hash_key) < 16:
            found.append("WECHAT_ID_HASH_KEY must be at least 16 characters long")
        if not self.api_base_url.startswith(("http://", "https://")):
            found.append("WECHAT_API_BASE_URL must start with http:// or https://")
        if not (self.store_url.startswith(("redis://", "rediss://")) or "://" in self.store_url):
            found.append(f"WECHAT_STORE_URL (or the deprecated {DEPRECATED_STORE_VARIABLE}) must be a SQLAlchemy "
                         "URL or a redis:// URL")
        return found
