"""Create the handoff tables: tickets, notes, audit and the webhook outbox.

Revision ID: 0001_handoff_tables
Revises:
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_handoff_tables"
down_revision = None
branch_labels = ("handoff",)
depends_on = None


def upgrade() -> None:
    """Create the four tables and their indexes."""
    op.create_table(
        "handoff_tickets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("transcript", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", sa.DateTime, nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
        sa.Column("closed_at", sa.DateTime, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("timeout_notified_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_handoff_tickets_status_priority", "handoff_tickets", ["status", "priority", "created_at"])
    op.create_index("ix_handoff_tickets_sender", "handoff_tickets", ["sender_id", "status"])
    op.create_table(
        "handoff_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(32), sa.ForeignKey("handoff_tickets.id"), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_handoff_notes_ticket_id", "handoff_notes", ["ticket_id"])
    op.create_table(
        "handoff_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(32), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_handoff_audit_ticket_id", "handoff_audit", ["ticket_id"])
    op.create_table(
        "handoff_webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(32), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("delivered_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_handoff_webhook_due", "handoff_webhook_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_table("handoff_webhook_deliveries")
    op.drop_table("handoff_audit")
    op.drop_table("handoff_notes")
    op.drop_table("handoff_tickets")
