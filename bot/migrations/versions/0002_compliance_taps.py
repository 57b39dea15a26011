"""Referral taps: the call buttons a user tapped on the referral cards (bot.referral_taps).

Adds ``taps`` to ``compliance_conversations``: a JSON list of ``"<channel key or bank name>:<reason>"`` entries,
in the order tapped, each once. Existing rows get ``[]``.

Revision ID: 0002_compliance_taps
Revises: 0001_compliance_store
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_compliance_taps"
down_revision = "0001_compliance_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column, ``[]`` for every existing conversation."""
    with op.batch_alter_table("compliance_conversations") as batch:
        batch.add_column(sa.Column("taps", sa.Text, nullable=False, server_default="[]"))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("compliance_conversations") as batch:
        batch.drop_column("taps")
