"""The WeChat channel's shared store: :class:`WeChatStore` (the channel's jobs) on a key-value backend.

:func:`open_store` picks the backend from ``WECHAT_STORE_URL``: ``redis://`` / ``rediss://`` for Redis
(``redis``), anything else is a SQLAlchemy URL (``sql``: ``sqlite:///var/wechat.db``, ``postgresql://user@host/db``).
``base`` has the key-value interface and what the channel keeps in it, and for how long.
"""
from __future__ import annotations

from bot.channels.wechat.store.base import (
    DEDUP_TTL_SECONDS,
    MAX_FAILURE_RECORDS,
    OPTIONS_TTL_SECONDS,
    USER_TTL_SECONDS,
    FailureRecord,
    KeyValueStore,
    WeChatStore,
    hashed_key,
)
from bot.channels.wechat.store.redis import RedisKeyValueStore
from bot.channels.wechat.store.sql import SqlKeyValueStore

__all__ = [
    "DEDUP_TTL_SECONDS", "MAX_FAILURE_RECORDS", "OPTIONS_TTL_SECONDS", "USER_TTL_SECONDS", "FailureRecord",
    "KeyValueStore", "RedisKeyValueStore", "SqlKeyValueStore", "WeChatStore", "hashed_key", "is_redis_url",
    "open_store",
]


def is_redis_url(url: str) -> bool:
    """Whether ``url`` names a Redis server (``redis://`` or ``rediss://``) rather than a SQL database."""
    return url.startswith(("redis://", "rediss://"))


def open_store(url: str) -> WeChatStore:
    """The store for ``url``: Redis for ``redis://``/``rediss://``, SQL (a SQLAlchemy URL) otherwise.

    A SQL database is migrated first (blocking: call this in a worker thread from async code). Raises
    sqlalchemy.exc.ArgumentError for a malformed URL, or the driver's error if the database cannot be reached;
    Redis connects lazily, on first use.
    """
    if is_redis_url(url):
        return WeChatStore(RedisKeyValueStore(url))
    return WeChatStore(SqlKeyValueStore(url))
