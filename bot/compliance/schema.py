"""The compliance store's tables (SQLAlchemy Core). Created and changed only by the migrations of the
``compliance`` branch in bot/migrations (``bot.db.upgrade_database(url, "compliance")``).

Times are seconds since the epoch (UTC) as Rasa's events carry them. JSON columns hold lists as text. No user
text is stored: only response names, lexicon ids with the masked matched span, intents and slots' values.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

conversations = sa.Table(
    "compliance_conversations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # Rasa's sender id; NULL once the turns are past retention (the counts stay, the person is no longer named)
    sa.Column("sender_id", sa.String(255), nullable=True, unique=True),
    sa.Column("channel", sa.String(64), nullable=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
    sa.Column("turns", sa.Integer, nullable=False, default=0),
    sa.Column("fallback_turns", sa.Integer, nullable=False, default=0),
    sa.Column("risk_level", sa.String(16), nullable=True),
    sa.Column("segment", sa.String(16), nullable=True),
    sa.Column("bank", sa.String(128), nullable=True),
    sa.Column("debt_type", sa.String(64), nullable=True),
    sa.Column("red_flags", sa.Text, nullable=False, default="[]"),
    sa.Column("referrals", sa.Text, nullable=False, default="[]"),
    # the referral cards' call buttons tapped, "<channel key or bank name>:<reason>" (migration 0002)
    sa.Column("taps", sa.Text, nullable=False, default="[]", server_default="[]"),
    sa.Column("handoff_ticket", sa.String(64), nullable=True),
    sa.Column("handoff_opened_at", sa.Float, nullable=True),
    sa.Column("handoff_claimed_at", sa.Float, nullable=True),
    sa.Column("handoff_closed_at", sa.Float, nullable=True),
    sa.Column("handoff_outcome", sa.String(32), nullable=True),
    sa.Index("ix_compliance_conversations_started_at", "started_at"),
    sa.Index("ix_compliance_conversations_last_at", "last_at"),
)

turns = sa.Table(
    "compliance_turns", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.Integer, nullable=False),
    sa.Column("turn_index", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("last_event_at", sa.Float, nullable=False),
    sa.Column("channel", sa.String(64), nullable=True),
    sa.Column("intent", sa.String(64), nullable=True),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("fallback", sa.Boolean, nullable=False, default=False),
    sa.Column("risk_level", sa.String(16), nullable=True),
    sa.Column("segment", sa.String(16), nullable=True),
    sa.Column("red_flags", sa.Text, nullable=False, default="[]"),
    sa.Column("flag_candidates", sa.Text, nullable=True),
    sa.Column("responses", sa.Text, nullable=False, default="[]"),
    sa.Column("referrals", sa.Text, nullable=False, default="[]"),
    sa.Column("handoff", sa.Text, nullable=False, default="[]"),
    sa.Column("knowledge_version", sa.String(32), nullable=True),
    sa.Column("sealed", sa.Boolean, nullable=False, default=False),
    sa.Column("chain_seq", sa.Integer, nullable=True, unique=True),
    sa.Column("prev_hash", sa.String(64), nullable=True),
    sa.Column("row_hash", sa.String(64), nullable=True),
    sa.Index("ix_compliance_turns_conversation", "conversation_id", "turn_index"),
    sa.Index("ix_compliance_turns_at", "at"),
)

seen_events = sa.Table(
    "compliance_seen_events", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_compliance_seen_events_at", "at"),
)

state = sa.Table(
    "compliance_state", metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
