"""The key-value store in Redis (``redis://host:port/db`` or ``rediss://`` for TLS), for several servers.

Every key is the store's ``prefix`` (default ``wechat_mp:``) followed by the key, with Redis's own TTL
(``SET ... PX``), so Redis expires it; :meth:`RedisKeyValueStore.add` is ``SET NX PX``, atomic across servers.
A capped log is a list (``LPUSH`` then ``LTRIM`` in one ``MULTI``), newest first. With the keys of
``base.WeChatStore`` this is the layout of the channel's earlier Redis store (``wechat_mp:dedup:<sha256>``,
``wechat_mp:user:<id>``, ..., the list ``wechat_mp:failures``), so servers of both versions can share one Redis.

redis-py's asyncio client connects on first use, with 5-second connect and socket timeouts.
"""
from __future__ import annotations

from typing import List, Optional

import redis.asyncio as aioredis

from bot.channels.wechat.store.base import KeyValueStore, check_ttl

PREFIX = "wechat_mp:"
"""The default prefix of every key of the store."""

TIMEOUT_SECONDS = 5
"""Connect and socket timeout of every Redis call, in seconds."""


def _milliseconds(ttl: float) -> int:
    return max(1, round(ttl * 1000))


class RedisKeyValueStore(KeyValueStore):
    """The key-value store in the Redis database at ``url``; keys start with ``prefix``.

    Raises redis.exceptions.ConnectionError/TimeoutError from any call when Redis is unreachable.
    """

    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        self._redis = aioredis.from_url(url, decode_responses=True, socket_timeout=TIMEOUT_SECONDS,
                                        socket_connect_timeout=TIMEOUT_SECONDS)
        self.prefix = prefix

    async def get(self, key: str) -> Optional[str]:
        """See :meth:`KeyValueStore.get`."""
        return await self._redis.get(self.prefix + key)

    async def set(self, key: str, value: str, ttl: float) -> None:
        """See :meth:`KeyValueStore.set`."""
        check_ttl(ttl)
        await self._redis.set(self.prefix + key, value, px=_milliseconds(ttl))

    async def add(self, key: str, value: str, ttl: float) -> bool:
        """See :meth:`KeyValueStore.add`. ``SET NX PX``."""
        check_ttl(ttl)
        return bool(await self._redis.set(self.prefix + key, value, nx=True, px=_milliseconds(ttl)))

    async def delete(self, key: str) -> None:
        """See :meth:`KeyValueStore.delete`."""
        await self._redis.delete(self.prefix + key)

    async def append(self, log: str, entry: str, cap: int) -> None:
        """See :meth:`KeyValueStore.append`."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self.prefix + log, entry)
            if cap < 1:  # LTRIM 0 -1 would keep everything
                pipe.delete(self.prefix + log)
            else:
                pipe.ltrim(self.prefix + log, 0, cap - 1)
            await pipe.execute()

    async def recent(self, log: str, limit: int) -> List[str]:
        """See :meth:`KeyValueStore.recent`."""
        if limit < 1:
            return []
        return list(await self._redis.lrange(self.prefix + log, 0, limit - 1))

    async def close(self) -> None:
        """See :meth:`KeyValueStore.close`."""
        await self._redis.close()
        await self._redis.connection_pool.disconnect()
