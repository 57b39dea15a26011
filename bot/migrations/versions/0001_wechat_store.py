"""Create the WeChat channel's key-value store: wechat_kv and wechat_log (bot/channels/wechat/store/sql.py).

Earlier releases created six tables of their own (wechat_dedup, wechat_users, wechat_options, wechat_transfers,
wechat_tokens, wechat_failures) without migrations. Where they exist, their live rows move into the new tables
under the keys the store uses now, so that an upgrade loses no pending dedup key, openid mapping, hand-over
window, token or failure record, and the old tables are dropped: nothing would ever expire their rows again,
and wechat_users holds openids. The downgrade drops the new tables and does not bring the old ones back.

Revision ID: 0001_wechat_store
Revises:
Create Date: 2026-12-01
"""
import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0001_wechat_store"
down_revision = None
branch_labels = ("wechat",)
depends_on = None

LEGACY_TABLES = ("wechat_dedup", "wechat_users", "wechat_options", "wechat_transfers", "wechat_tokens",
                 "wechat_failures")
MAX_FAILURE_RECORDS = 1000


def upgrade() -> None:
    """Create the two tables and their indexes, then adopt the earlier release's tables."""
    op.create_table(
        "wechat_kv",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_wechat_kv_expires_at", "wechat_kv", ["expires_at"])
    op.create_table(
        "wechat_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("log", sa.String(64), nullable=False),
        sa.Column("entry", sa.Text, nullable=False),
    )
    op.create_index("ix_wechat_log_log_id", "wechat_log", ["log", "id"])
    _adopt_legacy_tables()


def _adopt_legacy_tables() -> None:
    bind = op.get_bind()
    present = set(sa.inspect(bind).get_table_names()) & set(LEGACY_TABLES)
    if not present:
        return
    now = time.time()
    kv = sa.table("wechat_kv", sa.column("key", sa.String), sa.column("value", sa.Text),
                  sa.column("expires_at", sa.Float))
    log = sa.table("wechat_log", sa.column("log", sa.String), sa.column("entry", sa.Text))

    def legacy(name: str, *columns: str) -> sa.sql.TableClause:
        return sa.table(name, *(sa.column(column) for column in columns))

    # key-value rows, copied inside the database: a busy day's dedup keys need not pass through Python
    for name, prefix, key_column, value in (("wechat_dedup", "dedup:", "key", None),
                                            ("wechat_users", "user:", "user_id", "openid"),
                                            ("wechat_options", "options:", "user_id", "payloads"),
                                            ("wechat_transfers", "transfer:", "user_id", None)):
        if name not in present:
            continue
        table = legacy(name, key_column, "expires_at", *([value] if value else []))
        rows = sa.select(sa.literal(prefix, sa.String) + table.c[key_column],
                         table.c[value] if value else sa.literal("1", sa.Text),
                         table.c.expires_at).where(table.c.expires_at > now)
        bind.execute(kv.insert().from_select(["key", "value", "expires_at"], rows))
    if "wechat_tokens" in present:
        tokens = legacy("wechat_tokens", "appid", "token", "expires_at")
        for row in bind.execute(sa.select(tokens).where(tokens.c.expires_at > now)):
            bind.execute(kv.insert().values(key=f"token:{row.appid}", expires_at=row.expires_at,
                                            value=json.dumps({"token": row.token, "expires_at": row.expires_at})))
    if "wechat_failures" in present:
        failures = legacy("wechat_failures", "id", "created_at", "kind", "user_id", "errcode", "detail")
        newest = bind.execute(sa.select(failures).order_by(failures.c.id.desc()).limit(MAX_FAILURE_RECORDS)).all()
        entries = [{"log": "failures", "entry": json.dumps(
            {"created_at": row.created_at, "kind": row.kind, "user_id": row.user_id, "errcode": row.errcode,
             "detail": row.detail}, ensure_ascii=False)} for row in reversed(newest)]
        if entries:
            bind.execute(log.insert(), entries)
    for name in LEGACY_TABLES:
        if name in present:
            op.drop_table(name)


def downgrade() -> None:
    """Drop the two tables (their data is lost)."""
    op.drop_table("wechat_log")
    op.drop_table("wechat_kv")
