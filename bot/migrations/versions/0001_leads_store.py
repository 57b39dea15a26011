"""Create the leads store: consented seller leads and the audit of every read (bot/leads/schema.py).

Revision ID: 0001_leads_store
Revises:
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_leads_store"
down_revision = None
branch_labels = ("leads",)
depends_on = None

_LISTS = ("phones", "wechat_ids", "qq_ids", "emails", "groups", "organisations", "platforms", "fees", "red_flags")


def upgrade() -> None:
    """Create ``leads`` and ``lead_reads`` with their indexes."""
    op.create_table(
        "leads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("consented_at", sa.Float, nullable=False),
        sa.Column("asked_at", sa.Float, nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        *[sa.Column(name, sa.Text, nullable=False) for name in _LISTS],
    )
    op.create_index("ix_leads_consented_at", "leads", ["consented_at"])
    op.create_table(
        "lead_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("reader", sa.String(64), nullable=False),
        sa.Column("credential_id", sa.String(32), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("lead_ids", sa.Text, nullable=False),
    )
    op.create_index("ix_lead_reads_at", "lead_reads", ["at"])


def downgrade() -> None:
    """Drop both tables (the leads and their audit are lost)."""
    op.drop_table("lead_reads")
    op.drop_table("leads")
