"""The ticket store's tables (SQLAlchemy Core, 2.0 style). The migrations in ``migrations/`` create them.

All times are naive UTC ``DateTime`` values (SQLite has no time zones; PostgreSQL stores them as given).

* ``handoff_tickets``: one row per hand-over; ``status`` is ``queued`` -> ``claimed`` -> ``closed``, with
  ``follow_up`` (a record an agent reads later while the bot talks) and the way back from ``claimed`` to
  ``queued`` (released); see bot/handoff/store.py.
* ``handoff_notes``: internal notes by agents (never shown to the user).
* ``handoff_audit``: every desk action: who (``agent``), when (``at``), what (``action`` and ``detail``).
* ``handoff_webhook_deliveries``: the outgoing webhook's outbox, with attempts, errors and outcome.
* ``handoff_agent_credentials``: per-agent sign-in credentials, hashed, with role, expiry and revocation.
"""
from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()
"""All handoff tables; ``migrations/env.py`` compares against it."""

tickets = Table(
    "handoff_tickets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("sender_id", String(255), nullable=False),
    Column("channel", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("transcript", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", DateTime, nullable=True),
    Column("closed_by", String(64), nullable=True),
    Column("closed_at", DateTime, nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("timeout_notified_at", DateTime, nullable=True),
    Column("queued_at", DateTime, nullable=True),
    Column("last_agent_message_at", DateTime, nullable=True),
    Column("returned_at", DateTime, nullable=True),
    Column("alert_text", Text, nullable=True),
    Column("alert_at", DateTime, nullable=True),
    Index("ix_handoff_tickets_status_priority", "status", "priority", "created_at"),
    Index("ix_handoff_tickets_sender", "sender_id", "status"),
)

notes = Table(
    "handoff_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(32), ForeignKey("handoff_tickets.id"), nullable=False, index=True),
    Column("agent", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

audit = Table(
    "handoff_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("agent", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("ticket_id", String(32), nullable=True, index=True),
    Column("detail", JSON, nullable=False),
)

webhook_deliveries = Table(
    "handoff_webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", String(32), nullable=False),
    Column("ticket_id", String(32), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("delivered_at", DateTime, nullable=True),
    Index("ix_handoff_webhook_due", "status", "next_attempt_at"),
)

agent_credentials = Table(
    "handoff_agent_credentials",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("agent", String(64), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("token_hash", String(128), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
)
"""Per-agent credentials (bot.handoff.credentials): only a scrypt hash of each token is stored."""
