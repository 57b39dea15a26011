"""The hand-over lifecycle: follow-up records, queue and silence timers, danger alerts.

Adds to ``handoff_tickets``: ``queued_at`` (when the ticket last entered the queue: created or released; the
unclaimed timer counts from it), ``last_agent_message_at`` (the holder's last reply; the silence timer counts
from it or from the claim), ``returned_at`` (when an unclaimed ticket handed the conversation back to the bot
and became a follow-up record), ``alert_text`` / ``alert_at`` (the latest message that read as danger while
waiting, shown to the agents; alerted tickets come first in the queue). The new ``follow_up`` status needs no
schema change (``status`` is a string). Existing open tickets get ``queued_at = created_at``.

Revision ID: 0002_handoff_lifecycle
Revises: 0001_handoff_tables
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_handoff_lifecycle"
down_revision = "0001_handoff_tables"
branch_labels = None
depends_on = None


COLUMNS = (
    ("queued_at", sa.DateTime),
    ("last_agent_message_at", sa.DateTime),
    ("returned_at", sa.DateTime),
    ("alert_text", sa.Text),
    ("alert_at", sa.DateTime),
)
"""The new columns of ``handoff_tickets``, all nullable."""


def upgrade() -> None:
    """Add the columns that are missing (a database adopted from an earlier release's bookkeeping may be
    recorded at 0001 while already holding some) and fill ``queued_at`` of existing tickets."""
    existing = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("handoff_tickets")}
    missing = [(name, kind) for name, kind in COLUMNS if name not in existing]
    if missing:
        with op.batch_alter_table("handoff_tickets") as batch:
            for name, kind in missing:
                batch.add_column(sa.Column(name, kind, nullable=True))
    op.execute("UPDATE handoff_tickets SET queued_at = created_at WHERE queued_at IS NULL")


def downgrade() -> None:
    """Drop the five columns (follow-up tickets keep their status string)."""
    with op.batch_alter_table("handoff_tickets") as batch:
        for name, _kind in reversed(COLUMNS):
            batch.drop_column(name)
