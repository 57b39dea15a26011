"""The leads store's tables (SQLAlchemy Core), created only by the ``leads`` branch of bot/migrations
(``bot.db.upgrade_database(url, "leads")``). Its own database by default (``$LEADS_DATABASE_URL``, else
``var/leads.db``), so that its access can be granted apart from the compliance record's.

Times are seconds since the epoch (UTC). JSON columns hold lists as text. A lead holds only what the user
attributed to a seller and agreed to pass on (bot.leads.extract): no sender id, no user text.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

leads = sa.Table(
    "leads", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("consented_at", sa.Float, nullable=False),
    sa.Column("asked_at", sa.Float, nullable=False),
    sa.Column("channel", sa.String(64), nullable=True),
    sa.Column("phones", sa.Text, nullable=False, default="[]"),
    sa.Column("wechat_ids", sa.Text, nullable=False, default="[]"),
    sa.Column("qq_ids", sa.Text, nullable=False, default="[]"),
    sa.Column("emails", sa.Text, nullable=False, default="[]"),
    sa.Column("groups", sa.Text, nullable=False, default="[]"),
    sa.Column("organisations", sa.Text, nullable=False, default="[]"),
    sa.Column("platforms", sa.Text, nullable=False, default="[]"),
    sa.Column("fees", sa.Text, nullable=False, default="[]"),
    sa.Column("red_flags", sa.Text, nullable=False, default="[]"),
    sa.Index("ix_leads_consented_at", "consented_at"),
)

reads = sa.Table(
    "lead_reads", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("reader", sa.String(64), nullable=False),
    sa.Column("credential_id", sa.String(32), nullable=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("lead_ids", sa.Text, nullable=False, default="[]"),
    sa.Index("ix_lead_reads_at", "at"),
)
