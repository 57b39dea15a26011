"""Create the compliance record: conversations, turns, the events already counted and the consumer's state
(bot/compliance/schema.py).

Revision ID: 0001_compliance_store
Revises:
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_compliance_store"
down_revision = None
branch_labels = ("compliance",)
depends_on = None


def upgrade() -> None:
    """Create the four tables and their indexes."""
    op.create_table(
        "compliance_conversations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sender_id", sa.String(255), nullable=True, unique=True),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("last_at", sa.Float, nullable=False),
        sa.Column("turns", sa.Integer, nullable=False),
        sa.Column("fallback_turns", sa.Integer, nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=True),
        sa.Column("segment", sa.String(16), nullable=True),
        sa.Column("bank", sa.String(128), nullable=True),
        sa.Column("debt_type", sa.String(64), nullable=True),
        sa.Column("red_flags", sa.Text, nullable=False),
        sa.Column("referrals", sa.Text, nullable=False),
        sa.Column("handoff_ticket", sa.String(64), nullable=True),
        sa.Column("handoff_opened_at", sa.Float, nullable=True),
        sa.Column("handoff_claimed_at", sa.Float, nullable=True),
        sa.Column("handoff_closed_at", sa.Float, nullable=True),
        sa.Column("handoff_outcome", sa.String(32), nullable=True),
    )
    op.create_index("ix_compliance_conversations_started_at", "compliance_conversations", ["started_at"])
    op.create_index("ix_compliance_conversations_last_at", "compliance_conversations", ["last_at"])
    op.create_table(
        "compliance_turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.Integer, nullable=False),
        sa.Column("turn_index", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("last_event_at", sa.Float, nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=True),
        sa.Column("segment", sa.String(16), nullable=True),
        sa.Column("red_flags", sa.Text, nullable=False),
        sa.Column("flag_candidates", sa.Text, nullable=True),
        sa.Column("responses", sa.Text, nullable=False),
        sa.Column("referrals", sa.Text, nullable=False),
        sa.Column("handoff", sa.Text, nullable=False),
        sa.Column("knowledge_version", sa.String(32), nullable=True),
        sa.Column("sealed", sa.Boolean, nullable=False),
        sa.Column("chain_seq", sa.Integer, nullable=True, unique=True),
        sa.Column("prev_hash", sa.String(64), nullable=True),
        sa.Column("row_hash", sa.String(64), nullable=True),
    )
    op.create_index("ix_compliance_turns_conversation", "compliance_turns", ["conversation_id", "turn_index"])
    op.create_index("ix_compliance_turns_at", "compliance_turns", ["at"])
    op.create_table(
        "compliance_seen_events",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_compliance_seen_events_at", "compliance_seen_events", ["at"])
    op.create_table(
        "compliance_state",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    """Drop the four tables (the record is lost)."""
    for name in ("compliance_state", "compliance_seen_events", "compliance_turns", "compliance_conversations"):
        op.drop_table(name)
