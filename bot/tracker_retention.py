"""Retention of the tracker store (part of ``python -m bot retention apply``).

The tracker store holds every conversation's events (user text PII-masked, bot.privacy). A conversation whose
latest event is older than ``days`` (``$TRACKER_RETENTION_DAYS``, default 180, the compliance record's turn
period: docs/compliance.md) is deleted whole: all of its events, so that no conversation is left starting
mid-way. A conversation with any newer event is kept whole. Works on Rasa's SQL tracker store (``type: SQL`` or
bot.tracker_store.BufferedSQLTrackerStore) as the endpoints file configures it, SQLite or PostgreSQL.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, Tuple

import sqlalchemy as sa

DEFAULT_TRACKER_DAYS = 180
DAY_SECONDS = 86_400


def tracker_days_from_env(given: Optional[int] = None) -> int:
    """``given``, else ``$TRACKER_RETENTION_DAYS``, else DEFAULT_TRACKER_DAYS. Raises ValueError unless a positive
    whole number of days."""
    raw = given if given is not None else os.environ.get("TRACKER_RETENTION_DAYS") or DEFAULT_TRACKER_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise ValueError(f"$TRACKER_RETENTION_DAYS must be a whole number of days, not {raw!r}") from None
    if days <= 0:
        raise ValueError("the tracker retention period must be at least one day")
    return days


def tracker_store_url(endpoints: Path) -> Optional[str]:
    """The SQLAlchemy URL of the SQL tracker store that ``endpoints`` (a Rasa endpoints file, ``${VAR}``s filled
    from the environment) configures, relative SQLite paths taken from the working directory; None when it
    configures another kind of store. Raises what Rasa raises for an unreadable file or a missing variable."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.utils.endpoints import read_endpoint_config

    config = read_endpoint_config(str(endpoints), "tracker_store")
    if config is None:
        return None
    kind = str(config.type or "")
    if kind.lower() != "sql" and not kind.endswith("BufferedSQLTrackerStore"):
        return None
    kwargs = config.kwargs
    return str(SQLTrackerStore.get_db_url(
        dialect=kwargs.get("dialect", "sqlite"), host=config.url, port=kwargs.get("port"),
        db=kwargs.get("db", "rasa.db"), username=kwargs.get("username"), password=kwargs.get("password"),
        query=kwargs.get("query")))


def apply(url: str, days: int, now: Optional[float] = None) -> Tuple[int, int]:
    """Delete from the tracker store at ``url`` every conversation whose latest event is more than ``days`` days
    before ``now`` (epoch seconds, default the current time). Returns ``(conversations, events)`` deleted. A store
    with no ``events`` table yet (never started) deletes nothing."""
    cutoff = (time.time() if now is None else now) - days * DAY_SECONDS
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).has_table("events"):
            return 0, 0
        events = sa.table("events", sa.column("sender_id"), sa.column("timestamp"))
        stale = (sa.select(events.c.sender_id).group_by(events.c.sender_id)
                 .having(sa.func.max(events.c.timestamp) < cutoff))
        with engine.begin() as connection:
            senders = connection.execute(stale).scalars().all()
            deleted = 0
            for start in range(0, len(senders), 500):
                batch = senders[start:start + 500]
                deleted += connection.execute(sa.delete(events).where(events.c.sender_id.in_(batch))).rowcount
        return len(senders), deleted
    finally:
        engine.dispose()
