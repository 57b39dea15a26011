"""One way to reach every SQL store of the project: the engine factory and the Alembic history.

The ticket store (bot.handoff.store), the WeChat channel's store (bot.channels.wechat.store.sql), the
compliance record (bot.compliance.schema) and the consented seller leads (bot.leads.schema) are SQLAlchemy Core
tables. Their schemas are created and changed only by the migrations in ``bot/migrations/``, one Alembic history
with a branch per store (``handoff``, ``wechat``, ``compliance``, ``leads``), so that each store can live in its
own database or share one, and each upgrades only its own tables.

SQLite (the embedded default, files under ``var/``) runs in WAL mode with a generous busy timeout, so that
several processes can write while others read; PostgreSQL needs nothing special. Errors never quote bound
parameters (``hide_parameters``): a failing statement must not copy a user's data into a log.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine, create_engine, make_url
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic's script location."""

VERSION_TABLE = "bot_alembic_version"
"""Alembic's bookkeeping table (one row per branch head), named so it never collides with Rasa's tables in a
shared database."""

LEGACY_VERSION_TABLES = {"handoff": "handoff_alembic_version"}
"""Version tables of earlier releases, per branch: a database migrated by them is adopted, not re-created."""

SQLITE_BUSY_TIMEOUT_SECONDS = 30
"""How long a SQLite writer waits for another one before failing, in seconds."""

BRANCHES = ("handoff", "wechat", "compliance", "leads")
"""The stores with tables in the history (Alembic branch labels)."""

MIGRATION_ATTEMPTS = 4
"""Passes :func:`upgrade_database` makes before giving up, 0.1 s, 0.2 s, 0.4 s apart."""

_ALEMBIC = threading.Lock()
"""Alembic's ``context`` is one global per process: two migrations must not run in two threads at once."""


def make_engine(url: str) -> Engine:
    """A SQLAlchemy 2.0-style engine (``future=True``) for ``url``, creating a SQLite file's folder.

    Raises sqlalchemy.exc.ArgumentError for a malformed URL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, future=True, pool_pre_ping=True, hide_parameters=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, hide_parameters=True,
                           connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def upgrade_database(url: str, branch: str) -> None:
    """Run the migrations of ``branch`` (one of BRANCHES) on ``url`` up to its head.

    Idempotent: creates the branch's tables the first time, applies newer migrations later. Servers that start
    together may migrate one new database at the same moment, and all but one then fail ("table already
    exists"); a later pass finds the work done, so a SQL failure is retried after a pause. Raises ValueError for
    an unknown branch; SQLAlchemy's error if the last pass fails too (e.g. the database is unreachable);
    Alembic's if a migration is broken.
    """
    if branch not in BRANCHES:
        raise ValueError(f"unknown store {branch!r}; the history has {', '.join(BRANCHES)}")
    with _ALEMBIC:
        for attempt in range(1, MIGRATION_ATTEMPTS + 1):
            try:
                _upgrade(url, branch)
                return
            except SQLAlchemyError:
                if attempt == MIGRATION_ATTEMPTS:
                    raise
                logger.info("Migrating the %s store failed (another server migrating?); trying again.", branch)
                time.sleep(0.1 * 2 ** (attempt - 1))


def _upgrade(url: str, branch: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        _transactional_ddl(engine)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            _adopt_legacy_version(connection, branch, config)
            command.upgrade(config, f"{branch}@head")
    finally:
        engine.dispose()


def _transactional_ddl(engine: Engine) -> None:
    """Make a SQLite engine run DDL inside its transaction, so that an interrupted migration leaves nothing.

    Python's sqlite3 commits on its own before a ``CREATE`` or ``DROP``; with its implicit transactions off and an
    explicit ``BEGIN``, a migration's tables, copies and drops commit together or not at all (SQLAlchemy's
    documented pysqlite recipe, "Serializable isolation / Savepoints / Transactional DDL").
    """

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _explicit_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


def _branch_revisions(config: Any, branch: str) -> set:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    return {revision.revision for revision in script.iterate_revisions(f"{branch}@head", "base")}


def _adopt_legacy_version(connection: Any, branch: str, config: Any) -> None:
    """Stamp ``branch`` at the revision an earlier release's own version table records, when the shared version
    table holds no revision of ``branch`` yet (whether or not another store's migrations created it)."""
    from alembic import command

    legacy = LEGACY_VERSION_TABLES.get(branch)
    tables = set(inspect(connection).get_table_names())
    if legacy is None or legacy not in tables:
        return
    if VERSION_TABLE in tables:
        recorded = {row[0] for row in connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}")}
        if recorded & _branch_revisions(config, branch):
            return
    revision = connection.exec_driver_sql(f"SELECT version_num FROM {legacy}").scalar()
    if revision:
        command.stamp(config, revision)
