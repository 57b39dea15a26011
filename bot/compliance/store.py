"""Where the compliance record lives, and how to open it (migrated to the newest schema).

``$COMPLIANCE_DATABASE_URL`` (any SQLAlchemy URL; PostgreSQL in production), else the embedded default
``sqlite:///var/compliance.db``. The tables are in bot.compliance.schema.
"""
from __future__ import annotations

import os
from typing import Optional

from sqlalchemy.engine import Engine

from bot import PROJECT_ROOT
from bot.db import make_engine, upgrade_database

DEFAULT_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'compliance.db'}"
"""The embedded default store."""

BRANCH = "compliance"
"""The store's branch in bot/migrations."""


def database_url(url: Optional[str] = None) -> str:
    """``url``, else ``$COMPLIANCE_DATABASE_URL``, else DEFAULT_URL."""
    return url or os.environ.get("COMPLIANCE_DATABASE_URL") or DEFAULT_URL


def open_store(url: Optional[str] = None) -> Engine:
    """An engine on the store at :func:`database_url` (``url``), its tables created or upgraded first.

    Raises SQLAlchemy's error when the database cannot be reached.
    """
    resolved = database_url(url)
    upgrade_database(resolved, BRANCH)
    return make_engine(resolved)
