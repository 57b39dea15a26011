"""Per-agent credentials: hashed, with a role and an expiry, revocable (bot.handoff.credentials).

Creates ``handoff_agent_credentials``: ``id`` (the first 16 hex digits of the token's SHA-256, the credential's
public id), ``agent`` (the name the desk shows and audits), ``role`` (``agent`` or ``compliance``), ``salt`` and
``token_hash`` (scrypt of the token, hex), ``created_at``, ``expires_at`` and ``revoked_at`` (naive UTC).

Revision ID: 0003_agent_credentials
Revises: 0002_handoff_lifecycle
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_agent_credentials"
down_revision = "0002_handoff_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the credentials table, unless it is there (a database adopted from an earlier release's
    bookkeeping may be recorded at an older revision while already holding it)."""
    if sa.inspect(op.get_bind()).has_table("handoff_agent_credentials"):
        return
    op.create_table(
        "handoff_agent_credentials",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("agent", sa.String(64), nullable=False, index=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
    )


def downgrade() -> None:
    """Drop the credentials table."""
    op.drop_table("handoff_agent_credentials")
