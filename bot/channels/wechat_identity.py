"""The Rasa sender id of a WeChat user: a keyed hash of the openid, so trackers never hold the openid.

``user_id(openid) = "wx-" + hex(HMAC-SHA256(WECHAT_ID_HASH_KEY, openid))``. Without the key the id cannot be
linked back to the WeChat account; the channel keeps the id -> openid mapping it needs to reply in its own
store (``bot.channels.wechat_store``), not in the tracker.
"""
from __future__ import annotations

import hashlib
import hmac

PREFIX = "wx-"
"""Prefix of every WeChat sender id (tells the channel's users apart in the tracker store)."""


def user_id(openid: str, key: str) -> str:
    """The sender id for ``openid``: ``wx-`` and 64 hex characters. ``key`` must be non-empty."""
    if not key:
        raise ValueError("an empty WECHAT_ID_HASH_KEY would make the sender id a plain hash of the openid")
    return PREFIX + hmac.new(key.encode("utf-8"), openid.encode("utf-8"), hashlib.sha256).hexdigest()
