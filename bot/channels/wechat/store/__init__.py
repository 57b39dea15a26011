"""The WeChat channel's shared state, in SQL (SQLAlchemy) or Redis, so that several servers behave as one.

What it keeps, and for how long:

* **dedup keys** (a push's MsgId, or FromUserName+CreateTime for events, hashed): a day. WeChat retries a
  push it got no answer for three times within about 15 s; :meth:`WeChatStore.claim` lets exactly one
  server process each push, however many servers receive retries.
* **user id -> openid**: the Rasa sender id is a keyed hash of the openid (``security``); replying
  needs the openid back. Kept for a week after the user's last message (WeChat allows customer-service
  replies for 48 hours).
* **numbered options**: the payloads of the buttons last shown to a user as "1. ...", "2. ...", so a reply
  "2" can be mapped back. A day.
* **hand-over windows**: until when a user's messages are transferred to WeChat's customer-service tool.
* **the API access token**, shared by all servers (WeChat invalidates older tokens when a new one is
  fetched, so servers must not each fetch their own).
* **failure records**: API errors and undeliverable replies, so none is lost silently (the last 1,000).

:func:`open_store` picks the backend from ``WECHAT_DEDUP_URL``: ``redis://`` / ``rediss://`` for Redis,
anything else is a SQLAlchemy URL (``sqlite:///var/wechat.db``, ``postgresql://user@host/db``). The SQL
backend runs SQLAlchemy 1.4 in 2.0 style in worker threads, so it never blocks the event loop.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

logger = logging.getLogger(__name__)

DEDUP_TTL_SECONDS = 24 * 3600
"""How long a processed push is remembered. WeChat's retries come within seconds; a day is generous."""

USER_TTL_SECONDS = 7 * 24 * 3600
"""How long the user id -> openid mapping is kept after the user's last message."""

OPTIONS_TTL_SECONDS = 24 * 3600
"""How long numbered options stay answerable."""

MAX_FAILURE_RECORDS = 1000
"""Failure records kept (the oldest are dropped first)."""

_CLEANUP_INTERVAL_SECONDS = 600

T = TypeVar("T")


@dataclass(frozen=True)
class FailureRecord:
    """A reply that could not be delivered, or another API error. ``created_at`` is Unix seconds."""

    created_at: float
    kind: str
    """``send`` (customer-service send API), ``token`` (access token), ``processing`` (dialogue error) ..."""
    user_id: Optional[str]
    """The hashed Rasa sender id (never the openid), if the failure concerns one user."""
    errcode: Optional[int]
    """WeChat's ``errcode`` (e.g. 45015 reply window expired), or None for transport errors."""
    detail: str
    """``errmsg`` or the exception, and what was being sent."""


def hashed_key(raw: str) -> str:
    """Hex SHA-256 of ``raw``: dedup keys contain openids, which the store should not hold in clear."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class WeChatStore:
    """Interface of the shared store. All methods are coroutines; times are Unix seconds (``time.time()``)."""

    async def claim(self, key: str, ttl: int = DEDUP_TTL_SECONDS) -> bool:
        """Atomically record ``key``; True if this call recorded it first, False if it was already there."""
        raise NotImplementedError

    async def remember_openid(self, user_id: str, openid: str) -> None:
        """Store (or refresh) the openid behind the hashed ``user_id``."""
        raise NotImplementedError

    async def openid_for(self, user_id: str) -> Optional[str]:
        """The openid behind ``user_id``, or None if unknown or expired."""
        raise NotImplementedError

    async def save_options(self, user_id: str, payloads: Sequence[str]) -> None:
        """Remember the payloads of the numbered options just shown (option n is ``payloads[n-1]``).

        An empty sequence forgets the previous options.
        """
        raise NotImplementedError

    async def load_options(self, user_id: str) -> List[str]:
        """The payloads of the options last shown to ``user_id`` (empty if none or expired)."""
        raise NotImplementedError

    async def start_transfer(self, user_id: str, until: float) -> None:
        """Transfer ``user_id``'s messages to WeChat's customer-service tool until ``until``."""
        raise NotImplementedError

    async def transfer_active(self, user_id: str) -> bool:
        """Whether ``user_id`` is inside a hand-over window."""
        raise NotImplementedError

    async def load_token(self, appid: str) -> Optional[Tuple[str, float]]:
        """The shared access token of ``appid`` and its expiry time, or None."""
        raise NotImplementedError

    async def save_token(self, appid: str, token: str, expires_at: float) -> None:
        """Share a freshly fetched access token with the other servers."""
        raise NotImplementedError

    async def record_failure(self, kind: str, user_id: Optional[str], errcode: Optional[int], detail: str) -> None:
        """Keep a failure record (see :class:`FailureRecord`)."""
        raise NotImplementedError

    async def recent_failures(self, limit: int = 50) -> List[FailureRecord]:
        """The newest failure records, newest first."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------- SQL

_metadata = sa.MetaData()
_dedup = sa.Table(
    "wechat_dedup", _metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)
_users = sa.Table(
    "wechat_users", _metadata,
    sa.Column("user_id", sa.String(80), primary_key=True),
    sa.Column("openid", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)
_options = sa.Table(
    "wechat_options", _metadata,
    sa.Column("user_id", sa.String(80), primary_key=True),
    sa.Column("payloads", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
_transfers = sa.Table(
    "wechat_transfers", _metadata,
    sa.Column("user_id", sa.String(80), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)
_tokens = sa.Table(
    "wechat_tokens", _metadata,
    sa.Column("appid", sa.String(64), primary_key=True),
    sa.Column("token", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
_failures = sa.Table(
    "wechat_failures", _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("user_id", sa.String(80), nullable=True),
    sa.Column("errcode", sa.Integer, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
)


def _sqlite_file(url: str) -> Optional[Path]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database)
    return None


class SqlWeChatStore(WeChatStore):
    """The store in a SQL database (SQLite for one server, PostgreSQL for several); creates its tables."""

    def __init__(self, url: str) -> None:
        sqlite_file = _sqlite_file(url)
        connect_args: Dict[str, Any] = {}
        if sqlite_file is not None:
            sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            connect_args = {"timeout": 15, "check_same_thread": False}
        # hide_parameters: SQL errors would otherwise quote the openids they were storing
        self._engine: Engine = sa.create_engine(url, future=True, pool_pre_ping=True, hide_parameters=True,
                                                connect_args=connect_args)
        self._dialect = self._engine.dialect.name
        self._last_cleanup = 0.0
        self._create_tables()

    def _create_tables(self) -> None:
        try:
            _metadata.create_all(self._engine)
        except (OperationalError, ProgrammingError, IntegrityError):
            # another server created them at the same moment; a second pass only checks they exist
            _metadata.create_all(self._engine)

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)

    def _upsert(self, connection: sa.engine.Connection, table: sa.Table, key: Dict[str, Any],
                values: Dict[str, Any]) -> None:
        row = {**key, **values}
        if self._dialect in ("sqlite", "postgresql"):
            if self._dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            statement = insert(table).values(**row).on_conflict_do_update(index_elements=list(key), set_=values)
            connection.execute(statement)
            return
        condition = sa.and_(*(table.c[name] == value for name, value in key.items()))
        if connection.execute(sa.update(table).where(condition).values(**values)).rowcount == 0:
            connection.execute(sa.insert(table).values(**row))

    def _cleanup(self, connection: sa.engine.Connection, now: float) -> None:
        if now - self._last_cleanup < _CLEANUP_INTERVAL_SECONDS:
            return
        self._last_cleanup = now
        for table in (_dedup, _users, _options, _transfers):
            connection.execute(sa.delete(table).where(table.c.expires_at < now))
        newest = connection.execute(
            sa.select(_failures.c.id).order_by(_failures.c.id.desc()).offset(MAX_FAILURE_RECORDS).limit(1)
        ).scalar()
        if newest is not None:
            connection.execute(sa.delete(_failures).where(_failures.c.id <= newest))

    async def claim(self, key: str, ttl: int = DEDUP_TTL_SECONDS) -> bool:
        """See :meth:`WeChatStore.claim`. Relies on the primary key: the second insert fails."""
        digest = hashed_key(key)

        def work() -> bool:
            now = time.time()
            with self._engine.begin() as connection:
                self._cleanup(connection, now)
                connection.execute(sa.delete(_dedup).where(_dedup.c.key == digest, _dedup.c.expires_at < now))
            try:
                with self._engine.begin() as connection:
                    connection.execute(sa.insert(_dedup).values(key=digest, expires_at=now + ttl))
                return True
            except IntegrityError:
                return False

        return await self._run(work)

    async def remember_openid(self, user_id: str, openid: str) -> None:
        """See :meth:`WeChatStore.remember_openid`."""
        def work() -> None:
            with self._engine.begin() as connection:
                self._upsert(connection, _users, {"user_id": user_id},
                             {"openid": openid, "expires_at": time.time() + USER_TTL_SECONDS})

        await self._run(work)

    async def openid_for(self, user_id: str) -> Optional[str]:
        """See :meth:`WeChatStore.openid_for`."""
        def work() -> Optional[str]:
            with self._engine.connect() as connection:
                return connection.execute(
                    sa.select(_users.c.openid).where(_users.c.user_id == user_id, _users.c.expires_at >= time.time())
                ).scalar()

        return await self._run(work)

    async def save_options(self, user_id: str, payloads: Sequence[str]) -> None:
        """See :meth:`WeChatStore.save_options`."""
        def work() -> None:
            with self._engine.begin() as connection:
                if not payloads:
                    connection.execute(sa.delete(_options).where(_options.c.user_id == user_id))
                    return
                self._upsert(connection, _options, {"user_id": user_id},
                             {"payloads": json.dumps(list(payloads), ensure_ascii=False),
                              "expires_at": time.time() + OPTIONS_TTL_SECONDS})

        await self._run(work)

    async def load_options(self, user_id: str) -> List[str]:
        """See :meth:`WeChatStore.load_options`."""
        def work() -> List[str]:
            with self._engine.connect() as connection:
                raw = connection.execute(
                    sa.select(_options.c.payloads).where(_options.c.user_id == user_id,
                                                         _options.c.expires_at >= time.time())
                ).scalar()
            return json.loads(raw) if raw else []

        return await self._run(work)

    async def start_transfer(self, user_id: str, until: float) -> None:
        """See :meth:`WeChatStore.start_transfer`."""
        def work() -> None:
            with self._engine.begin() as connection:
                self._upsert(connection, _transfers, {"user_id": user_id}, {"expires_at": until})

        await self._run(work)

    async def transfer_active(self, user_id: str) -> bool:
        """See :meth:`WeChatStore.transfer_active`."""
        def work() -> bool:
            with self._engine.connect() as connection:
                return connection.execute(
                    sa.select(_transfers.c.user_id).where(_transfers.c.user_id == user_id,
                                                          _transfers.c.expires_at > time.time())
                ).first() is not None

        return await self._run(work)

    async def load_token(self, appid: str) -> Optional[Tuple[str, float]]:
        """See :meth:`WeChatStore.load_token`."""
        def work() -> Optional[Tuple[str, float]]:
            with self._engine.connect() as connection:
                row = connection.execute(
                    sa.select(_tokens.c.token, _tokens.c.expires_at).where(_tokens.c.appid == appid)
                ).first()
            return (row.token, row.expires_at) if row else None

        return await self._run(work)

    async def save_token(self, appid: str, token: str, expires_at: float) -> None:
        """See :meth:`WeChatStore.save_token`."""
        def work() -> None:
            with self._engine.begin() as connection:
                self._upsert(connection, _tokens, {"appid": appid}, {"token": token, "expires_at": expires_at})

        await self._run(work)

    async def record_failure(self, kind: str, user_id: Optional[str], errcode: Optional[int], detail: str) -> None:
        """See :meth:`WeChatStore.record_failure`."""
        def work() -> None:
            with self._engine.begin() as connection:
                connection.execute(sa.insert(_failures).values(
                    created_at=time.time(), kind=kind[:32], user_id=user_id, errcode=errcode, detail=detail[:4000]))

        await self._run(work)

    async def recent_failures(self, limit: int = 50) -> List[FailureRecord]:
        """See :meth:`WeChatStore.recent_failures`."""
        def work() -> List[FailureRecord]:
            with self._engine.connect() as connection:
                rows = connection.execute(
                    sa.select(_failures).order_by(_failures.c.id.desc()).limit(limit)).fetchall()
            return [FailureRecord(row.created_at, row.kind, row.user_id, row.errcode, row.detail) for row in rows]

        return await self._run(work)

    async def close(self) -> None:
        """See :meth:`WeChatStore.close`."""
        await self._run(self._engine.dispose)


# -------------------------------------------------------------------------------------------------- Redis

class RedisWeChatStore(WeChatStore):
    """The store in Redis (``redis://host:port/db``). Keys start with ``prefix`` (``wechat_mp:``); every key
    has a TTL except the failure list, which is trimmed to MAX_FAILURE_RECORDS."""

    PREFIX = "wechat_mp:"

    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def claim(self, key: str, ttl: int = DEDUP_TTL_SECONDS) -> bool:
        """See :meth:`WeChatStore.claim`. ``SET NX EX`` is atomic across servers."""
        return bool(await self._redis.set(self._key("dedup", hashed_key(key)), "1", nx=True, ex=ttl))

    async def remember_openid(self, user_id: str, openid: str) -> None:
        """See :meth:`WeChatStore.remember_openid`."""
        await self._redis.set(self._key("user", user_id), openid, ex=USER_TTL_SECONDS)

    async def openid_for(self, user_id: str) -> Optional[str]:
        """See :meth:`WeChatStore.openid_for`."""
        return await self._redis.get(self._key("user", user_id))

    async def save_options(self, user_id: str, payloads: Sequence[str]) -> None:
        """See :meth:`WeChatStore.save_options`."""
        if not payloads:
            await self._redis.delete(self._key("options", user_id))
            return
        await self._redis.set(self._key("options", user_id), json.dumps(list(payloads), ensure_ascii=False),
                              ex=OPTIONS_TTL_SECONDS)

    async def load_options(self, user_id: str) -> List[str]:
        """See :meth:`WeChatStore.load_options`."""
        raw = await self._redis.get(self._key("options", user_id))
        return json.loads(raw) if raw else []

    async def start_transfer(self, user_id: str, until: float) -> None:
        """See :meth:`WeChatStore.start_transfer`."""
        milliseconds = int((until - time.time()) * 1000)
        if milliseconds > 0:
            await self._redis.set(self._key("transfer", user_id), "1", px=milliseconds)

    async def transfer_active(self, user_id: str) -> bool:
        """See :meth:`WeChatStore.transfer_active`."""
        return bool(await self._redis.exists(self._key("transfer", user_id)))

    async def load_token(self, appid: str) -> Optional[Tuple[str, float]]:
        """See :meth:`WeChatStore.load_token`."""
        raw = await self._redis.get(self._key("token", appid))
        if not raw:
            return None
        stored = json.loads(raw)
        return stored["token"], float(stored["expires_at"])

    async def save_token(self, appid: str, token: str, expires_at: float) -> None:
        """See :meth:`WeChatStore.save_token`."""
        seconds = max(1, int(expires_at - time.time()))
        await self._redis.set(self._key("token", appid), json.dumps({"token": token, "expires_at": expires_at}),
                              ex=seconds)

    async def record_failure(self, kind: str, user_id: Optional[str], errcode: Optional[int], detail: str) -> None:
        """See :meth:`WeChatStore.record_failure`."""
        record = {"created_at": time.time(), "kind": kind, "user_id": user_id, "errcode": errcode,
                  "detail": detail[:4000]}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self._key("failures"), json.dumps(record, ensure_ascii=False))
            pipe.ltrim(self._key("failures"), 0, MAX_FAILURE_RECORDS - 1)
            await pipe.execute()

    async def recent_failures(self, limit: int = 50) -> List[FailureRecord]:
        """See :meth:`WeChatStore.recent_failures`."""
        rows = await self._redis.lrange(self._key("failures"), 0, limit - 1)
        return [FailureRecord(**json.loads(row)) for row in rows]

    async def close(self) -> None:
        """See :meth:`WeChatStore.close`."""
        await self._redis.close()
        await self._redis.connection_pool.disconnect()


def open_store(url: str) -> WeChatStore:
    """The store for ``url``: Redis for ``redis://``/``rediss://``, SQL (SQLAlchemy URL) otherwise.

    Raises sqlalchemy.exc.ArgumentError for a malformed URL, or the driver's error if the database cannot be
    reached when the tables are created (Redis connects lazily, on first use).
    """
    if url.startswith(("redis://", "rediss://")):
        return RedisWeChatStore(url)
    return SqlWeChatStore(url)
