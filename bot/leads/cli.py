"""``python -m bot leads list|export|audit`` (bot.__main__): the consented seller leads for a person with a
``leads`` credential (``python -m bot agents issue <name> --role leads``), every read audited.

The token is read from ``$LEADS_TOKEN``, else from the terminal (never a command-line argument, which other
users of the machine could see). ``--from``/``--to`` are days (YYYY-MM-DD, UTC; ``--to`` inclusive).
"""
from __future__ import annotations

import argparse
import calendar
import datetime as dt
import getpass
import os
import sys
from pathlib import Path
from typing import Any, Optional


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add the ``leads`` command and its sub-commands to ``commands``."""
    db_help = "SQLAlchemy URL of the leads store (default: $LEADS_DATABASE_URL or var/leads.db)"
    leads = commands.add_parser("leads", help="list or export the consented seller leads (leads role)")
    actions = leads.add_subparsers(dest="action", required=True)
    for name, text in (("list", "print the leads"), ("export", "write the leads as CSV or JSON")):
        command = actions.add_parser(name, help=text)
        command.add_argument("--from", dest="start", default=None, help="first day, YYYY-MM-DD (UTC)")
        command.add_argument("--to", dest="end", default=None, help="last day, YYYY-MM-DD (UTC, inclusive)")
        command.add_argument("--db", default=None, help=db_help)
        if name == "export":
            command.add_argument("--format", choices=("csv", "json"), default="csv")
            command.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    audit = actions.add_parser("audit", help="print who read the leads, when, and which (no lead data)")
    audit.add_argument("--db", default=None, help=db_help)


def _day(value: Optional[str], next_day: bool = False) -> Optional[float]:
    if not value:
        return None
    day = dt.date.fromisoformat(value) + dt.timedelta(days=1 if next_day else 0)
    return float(calendar.timegm(day.timetuple()))


def _token() -> str:
    token = os.environ.get("LEADS_TOKEN")
    if token:
        return token.strip()
    return getpass.getpass("leads credential token: ").strip()


def main(args: argparse.Namespace) -> int:
    """Run ``leads <action>``; 0 on success, 1 when access is refused, 2 for a bad date."""
    from bot.leads.store import LeadAccessRefused, LeadReader, open_store, reads_audit

    engine = open_store(args.db)
    try:
        if args.action == "audit":
            for row in reads_audit(engine):
                at = dt.datetime.fromtimestamp(row["at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
                print(f"{at}  {row['reader']}  {row['action']}  {row['outcome']}  leads {row['lead_ids']}")
            return 0
        try:
            since, until = _day(args.start), _day(args.end, next_day=True)
        except ValueError as err:
            print(f"leads: {err}", file=sys.stderr)
            return 2
        reader = LeadReader(engine, _credential_store())
        try:
            if args.action == "list":
                found = reader.list(_token(), since, until)
                for lead in found:
                    details = "; ".join(f"{k}: {', '.join(v)}" for k, v in lead.details.as_dict().items() if v)
                    print(f"#{lead.id}  {lead.as_dict()['consented_at']}  {lead.channel or '-'}  {details}")
                print(f"{len(found)} leads.")
            else:
                text = reader.export(_token(), args.format, since, until)
                if args.out:
                    args.out.write_text(text, encoding="utf-8")
                    args.out.chmod(0o600)
                    print(f"Written: {args.out}")
                else:
                    sys.stdout.write(text)
        except LeadAccessRefused as refused:
            print(f"Refused: {refused}", file=sys.stderr)
            return 1
        return 0
    finally:
        engine.dispose()


def _credential_store() -> Any:
    """The desk's credentials (the ticket store at $HANDOFF_DATABASE_URL, default var/handoff.db)."""
    from bot import PROJECT_ROOT
    from bot.db import make_engine, upgrade_database
    from bot.handoff.config import DEFAULT_DATABASE_URL
    from bot.handoff.credentials import CredentialStore

    url = os.environ.get("HANDOFF_DATABASE_URL") or DEFAULT_DATABASE_URL
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + str(PROJECT_ROOT / url[len("sqlite:///"):])
    upgrade_database(url, "handoff")
    return CredentialStore(make_engine(url))
