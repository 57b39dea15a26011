"""The key-value store in a SQL database: SQLite for one server, PostgreSQL for several (any SQLAlchemy URL).

Two SQLAlchemy Core tables, created and changed only by the ``wechat`` branch of the project's Alembic history
(``bot/migrations/versions/0001_wechat_store.py``, run by :func:`migrate`):

* ``wechat_kv``: ``key`` (primary key), ``value``, ``expires_at`` (Unix seconds). A row whose ``expires_at``
  has passed is treated as absent at once and deleted by the next cleanup (every
  :data:`CLEANUP_INTERVAL_SECONDS`, on a write).
* ``wechat_log``: the capped logs, ``id`` (ascending: newest last), ``log`` (its name), ``entry``.

Writes are single upserts (``INSERT ... ON CONFLICT``, which SQLite >= 3.24 and PostgreSQL both have), so
:meth:`SqlKeyValueStore.add` is atomic across servers: the conflict on the primary key decides, and only an
expired row is replaced. Other dialects fall back to update-then-insert. The engine is ``bot.db.make_engine``'s
(SQLite in WAL mode, errors without bound parameters, so an openid never lands in a log); SQLAlchemy is
synchronous, so every statement runs in a worker thread (``asyncio.to_thread``) and the event loop never waits
for the database.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, List, Optional, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.channels.wechat.store.base import KeyValueStore, check_ttl
from bot.db import make_engine, upgrade_database

logger = logging.getLogger(__name__)

BRANCH = "wechat"
"""The store's branch in the Alembic history (``bot.db.BRANCHES``)."""

CLEANUP_INTERVAL_SECONDS = 600
"""How often (at most) a writing server deletes the expired rows, in seconds."""

metadata = sa.MetaData()
"""The store's tables, as the ``wechat`` migrations create them (``bot/migrations/env.py`` compares to it)."""

kv_table = sa.Table(
    "wechat_kv", metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_wechat_kv_expires_at", "expires_at"),
)

log_table = sa.Table(
    "wechat_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("log", sa.String(64), nullable=False),
    sa.Column("entry", sa.Text, nullable=False),
    sa.Index("ix_wechat_log_log_id", "log", "id"),
)

T = TypeVar("T")


def migrate(url: str) -> None:
    """Create or upgrade the store's tables at ``url`` (idempotent; ``bot.db.upgrade_database(url, "wechat")``).

    Safe when several servers migrate one new database at once (see ``bot.db.upgrade_database``). Raises
    SQLAlchemy's error if the database stays unreachable, Alembic's if a migration is broken.
    """
    upgrade_database(url, BRANCH)


class SqlKeyValueStore(KeyValueStore):
    """The key-value store in the database at ``url`` (a SQLAlchemy URL such as ``sqlite:///var/wechat.db`` or
    ``postgresql://user@host/db``). Migrates the schema first unless ``migrate_schema`` is False.

    Raises sqlalchemy.exc.ArgumentError for a malformed URL, the driver's error if the database is unreachable.
    """

    def __init__(self, url: str, migrate_schema: bool = True) -> None:
        if migrate_schema:
            migrate(url)
        self._engine = make_engine(url)
        self._dialect = self._engine.dialect.name
        self._last_cleanup = 0.0

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)

    def _insert(self) -> Any:
        """The dialect's ``insert`` with ``on_conflict_do_update``, or None where there is none."""
        if self._dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            return postgresql_insert
        return None

    def _cleanup_if_due(self, now: float) -> None:
        if now - self._last_cleanup < CLEANUP_INTERVAL_SECONDS:
            return
        self._last_cleanup = now
        with self._engine.begin() as connection:
            connection.execute(sa.delete(kv_table).where(kv_table.c.expires_at <= now))

    def _put(self, connection: Connection, key: str, value: str, expires_at: float, now: float,
             only_if_expired: bool) -> bool:
        """Upsert one row; with ``only_if_expired`` a live row is left alone. True if a row was written."""
        insert = self._insert()
        if insert is not None:
            statement = insert(kv_table).values(key=key, value=value, expires_at=expires_at)
            statement = statement.on_conflict_do_update(
                index_elements=[kv_table.c.key],
                set_={"value": statement.excluded.value, "expires_at": statement.excluded.expires_at},
                where=(kv_table.c.expires_at <= now) if only_if_expired else None)
            return connection.execute(statement).rowcount == 1
        condition = kv_table.c.key == key
        if only_if_expired:
            condition = sa.and_(condition, kv_table.c.expires_at <= now)
        if connection.execute(sa.update(kv_table).where(condition)
                              .values(value=value, expires_at=expires_at)).rowcount:
            return True
        try:
            with connection.begin_nested():
                connection.execute(sa.insert(kv_table).values(key=key, value=value, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    async def get(self, key: str) -> Optional[str]:
        """See :meth:`KeyValueStore.get`."""
        def work() -> Optional[str]:
            with self._engine.connect() as connection:
                return connection.execute(
                    sa.select(kv_table.c.value).where(kv_table.c.key == key, kv_table.c.expires_at > time.time())
                ).scalar()

        return await self._run(work)

    async def set(self, key: str, value: str, ttl: float) -> None:
        """See :meth:`KeyValueStore.set`."""
        check_ttl(ttl)

        def work() -> None:
            now = time.time()
            self._cleanup_if_due(now)
            with self._engine.begin() as connection:
                self._put(connection, key, value, now + ttl, now, only_if_expired=False)

        await self._run(work)

    async def add(self, key: str, value: str, ttl: float) -> bool:
        """See :meth:`KeyValueStore.add`. One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired``."""
        check_ttl(ttl)

        def work() -> bool:
            now = time.time()
            self._cleanup_if_due(now)
            with self._engine.begin() as connection:
                return self._put(connection, key, value, now + ttl, now, only_if_expired=True)

        return await self._run(work)

    async def delete(self, key: str) -> None:
        """See :meth:`KeyValueStore.delete`."""
        def work() -> None:
            with self._engine.begin() as connection:
                connection.execute(sa.delete(kv_table).where(kv_table.c.key == key))

        await self._run(work)

    async def append(self, log: str, entry: str, cap: int) -> None:
        """See :meth:`KeyValueStore.append`. Inserts and trims in one transaction."""
        def work() -> None:
            self._cleanup_if_due(time.time())
            with self._engine.begin() as connection:
                connection.execute(sa.insert(log_table).values(log=log, entry=entry))
                oldest_dropped = connection.execute(
                    sa.select(log_table.c.id).where(log_table.c.log == log)
                    .order_by(log_table.c.id.desc()).offset(max(cap, 0)).limit(1)
                ).scalar()
                if oldest_dropped is not None:
                    connection.execute(sa.delete(log_table).where(log_table.c.log == log,
                                                                  log_table.c.id <= oldest_dropped))

        await self._run(work)

    async def recent(self, log: str, limit: int) -> List[str]:
        """See :meth:`KeyValueStore.recent`."""
        if limit < 1:
            return []

        def work() -> List[str]:
            with self._engine.connect() as connection:
                return list(connection.execute(
                    sa.select(log_table.c.entry).where(log_table.c.log == log)
                    .order_by(log_table.c.id.desc()).limit(limit)
                ).scalars())

        return await self._run(work)

    async def close(self) -> None:
        """See :meth:`KeyValueStore.close`."""
        await self._run(self._engine.dispose)
