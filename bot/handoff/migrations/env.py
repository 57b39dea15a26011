"""Alembic environment for the handoff tables.

Used programmatically by ``bot.handoff.database.upgrade_database`` (which passes an open connection in
``config.attributes["connection"]``), or from the command line with ``-x url=<SQLAlchemy URL>``:
``alembic -c /dev/null -x url=sqlite:///var/handoff.db ...`` is not needed in normal use.
"""
from __future__ import annotations

from alembic import context

from bot.handoff.database import make_engine
from bot.handoff.schema import metadata

VERSION_TABLE = "handoff_alembic_version"
"""Alembic's bookkeeping table, named so it never collides with Rasa's tables in a shared database."""


def _run(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database with -x url=<SQLAlchemy URL>")
    engine = make_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
