"""Alembic environment of every SQL store (bot.db).

Used programmatically by ``bot.db.upgrade_database``, which passes an open connection in
``config.attributes["connection"]``; there is no alembic.ini. The history has one branch per store.
"""
from __future__ import annotations

from typing import Any

from alembic import context

from bot.channels.wechat.store.sql import metadata as wechat_metadata
from bot.compliance.schema import metadata as compliance_metadata
from bot.db import VERSION_TABLE
from bot.handoff.schema import metadata as handoff_metadata
from bot.leads.schema import metadata as leads_metadata


def _run(connection: Any) -> None:
    context.configure(connection=connection, target_metadata=[handoff_metadata, wechat_metadata, compliance_metadata,
                                                          leads_metadata],
                      version_table=VERSION_TABLE, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is None:
    raise SystemExit("run the migrations with bot.db.upgrade_database(url, branch)")
_run(_connection)
