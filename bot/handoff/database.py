"""Engines for the ticket store and its schema migrations (Alembic, ``bot/handoff/migrations/``).

SQLite (the default, ``var/handoff.db``) runs in WAL mode with a generous busy timeout so that the action
server can write tickets while the desk reads and claims them; PostgreSQL needs nothing special.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, create_engine, make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic's script location."""

SQLITE_BUSY_TIMEOUT_SECONDS = 30
"""How long a SQLite writer waits for another one before failing, in seconds."""


def make_engine(url: str) -> Engine:
    """A SQLAlchemy 2.0-style engine (``future=True``) for ``url``, creating a SQLite file's folder.

    Raises sqlalchemy.exc.ArgumentError for a malformed URL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, future=True,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, future=True, pool_pre_ping=True)


def upgrade_database(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations on ``url`` up to ``revision`` (idempotent; creates the tables first time).

    Raises alembic/SQLAlchemy errors if the database is unreachable or a migration fails.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
