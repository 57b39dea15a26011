"""Shared helpers of the WeChat channel tests: settings for a test mini-program and push builders."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from typing import Any

from bot.channels.wechat.settings import WeChatSettings

APPID = "wx0123456789abcdef"
APPSECRET = "test-app-secret"
TOKEN = "test-push-token"
AES_KEY = base64.b64encode(hashlib.sha256(b"test EncodingAESKey").digest()).decode().rstrip("=")
OTHER_AES_KEY = base64.b64encode(hashlib.sha256(b"another key").digest()).decode().rstrip("=")
ID_HASH_KEY = "test-id-hash-key-0123456789"


def settings(**changes: Any) -> WeChatSettings:
    """Complete settings (safe mode, JSON) for the test mini-program, with ``changes`` applied."""
    base = WeChatSettings(appid=APPID, appsecret=APPSECRET, token=TOKEN, encoding_aes_key=AES_KEY, mode="safe",
                          data_format="json", id_hash_key=ID_HASH_KEY)
    return replace(base, **changes)


def environment(**changes: str) -> dict:
    """The same settings as ``WECHAT_*`` environment variables (for a server process)."""
    env = {"WECHAT_APPID": APPID, "WECHAT_APPSECRET": APPSECRET, "WECHAT_TOKEN": TOKEN,
           "WECHAT_ENCODING_AES_KEY": AES_KEY, "WECHAT_MODE": "safe", "WECHAT_DATA_FORMAT": "json",
           "WECHAT_ID_HASH_KEY": ID_HASH_KEY}
    env.update(changes)
    return env
