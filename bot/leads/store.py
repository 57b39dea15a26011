"""The leads store: consented seller leads, who read them, and their retention (docs/compliance.md).

``$LEADS_DATABASE_URL`` (any SQLAlchemy URL; PostgreSQL in production, with its own database user), else
``sqlite:///var/leads.db``. Only :func:`record_lead` writes a lead, and the Rasa server calls it only after the
user tapped 同意 (bot.leads.consent). Reading goes through :class:`LeadReader`, which needs an active desk
credential with the ``leads`` role (bot.handoff.credentials) and writes one ``lead_reads`` row for every read,
export and refusal, in the same transaction as the read.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot import PROJECT_ROOT
from bot.db import make_engine, upgrade_database
from bot.leads.extract import LeadCandidate
from bot.leads.schema import leads, reads

DEFAULT_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'leads.db'}"
"""The embedded default store."""

BRANCH = "leads"
"""The store's branch in bot/migrations."""

ROLE = "leads"
"""The credential role that may read leads (bot.handoff.credentials.ROLES); agents and ``compliance`` may not."""

DAY_SECONDS = 86_400
DEFAULT_LEAD_DAYS = 90
"""Days a lead is kept after consent (``$LEADS_RETENTION_DAYS``): long enough to pass it to the police."""

DEFAULT_AUDIT_DAYS = 1095
"""Days a read of the leads is remembered (``$LEADS_AUDIT_RETENTION_DAYS``); the audit holds no lead data."""

FIELDS = ("phones", "wechat_ids", "qq_ids", "emails", "groups", "organisations", "platforms", "fees")
"""A lead's detail columns (LeadCandidate's fields), then ``red_flags``."""


class LeadAccessRefused(Exception):
    """A token that may not read leads: unknown, revoked, expired, or not of the ``leads`` role (``reason``)."""


def database_url(url: Optional[str] = None) -> str:
    """``url``, else ``$LEADS_DATABASE_URL``, else DEFAULT_URL."""
    return url or os.environ.get("LEADS_DATABASE_URL") or DEFAULT_URL


def open_store(url: Optional[str] = None) -> Engine:
    """An engine on the store at :func:`database_url` (``url``), its tables created or upgraded first.
    Raises SQLAlchemy's error when the database cannot be reached."""
    resolved = database_url(url)
    upgrade_database(resolved, BRANCH)
    return make_engine(resolved)


@dataclass(frozen=True)
class Lead:
    """A stored lead: ``details`` the seller's details, ``red_flags`` the conversation's tactic ids; epoch times."""

    id: int
    consented_at: float
    asked_at: float
    channel: Optional[str]
    details: LeadCandidate
    red_flags: tuple

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 UTC)."""
        return {"id": self.id, "consented_at": _iso(self.consented_at), "asked_at": _iso(self.asked_at),
                "channel": self.channel, **self.details.as_dict(), "red_flags": list(self.red_flags)}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def record_lead(engine: Engine, details: LeadCandidate, *, asked_at: float, channel: Optional[str],
                red_flags: Sequence[str] = (), now: Optional[float] = None) -> int:
    """Store one consented lead; returns its id. Call only after the user's consent."""
    values: Dict[str, Any] = {name: json.dumps(list(getattr(details, name)), ensure_ascii=False)
                              for name in FIELDS}
    values["red_flags"] = json.dumps(list(red_flags))
    with engine.begin() as connection:
        result = connection.execute(sa.insert(leads).values(
            consented_at=time.time() if now is None else now, asked_at=asked_at, channel=channel, **values))
        return int(result.inserted_primary_key[0])


def _lead(row: Any) -> Lead:
    mapping = row._mapping
    details = LeadCandidate.from_dict({name: json.loads(mapping[name]) for name in FIELDS})
    return Lead(id=mapping["id"], consented_at=mapping["consented_at"], asked_at=mapping["asked_at"],
                channel=mapping["channel"], details=details, red_flags=tuple(json.loads(mapping["red_flags"])))


def count_leads(engine: Engine) -> int:
    """How many leads are stored (no details; for tests and the retention report)."""
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(leads)).scalar() or 0)


def _audit(connection: Connection, reader: str, credential: Optional[str], action: str, outcome: str,
           lead_ids: Sequence[int], now: float) -> None:
    connection.execute(sa.insert(reads).values(at=now, reader=reader[:64], credential_id=credential,
                                               action=action, outcome=outcome, lead_ids=json.dumps(list(lead_ids))))


class LeadReader:
    """Reads leads for one person, auditing every read. ``engine``: the leads store; ``credentials``: a
    bot.handoff.credentials.CredentialStore (the desk's); ``clock``: epoch seconds."""

    def __init__(self, engine: Engine, credentials: Any, clock: Any = time.time) -> None:
        self.engine, self.credentials, self.clock = engine, credentials, clock

    def _authorise(self, token: str, action: str) -> Any:
        from bot.handoff.credentials import CredentialRefused

        try:
            agent = self.credentials.verify(token)
        except CredentialRefused as refused:
            self._refuse(refused.agent or "unknown", refused.credential_id, action, refused.reason)
            raise LeadAccessRefused(refused.reason) from None
        if agent.role != ROLE:
            self._refuse(agent.name, agent.credential_id, action, f"role {agent.role}")
            raise LeadAccessRefused(f"the {agent.role} role may not read leads; a {ROLE} credential is needed")
        return agent

    def _refuse(self, reader: str, credential: Optional[str], action: str, reason: str) -> None:
        with self.engine.begin() as connection:
            _audit(connection, reader, credential, action, f"refused: {reason}"[:32], (), self.clock())

    def list(self, token: str, since: Optional[float] = None, until: Optional[float] = None,
             action: str = "list") -> List[Lead]:
        """The leads consented in ``[since, until)`` (epoch seconds; open ends by default), oldest first, with an
        audit row naming the reader and the lead ids. Raises LeadAccessRefused (also audited)."""
        agent = self._authorise(token, action)
        query = sa.select(leads).order_by(leads.c.consented_at, leads.c.id)
        if since is not None:
            query = query.where(leads.c.consented_at >= since)
        if until is not None:
            query = query.where(leads.c.consented_at < until)
        with self.engine.begin() as connection:
            found = [_lead(row) for row in connection.execute(query)]
            _audit(connection, agent.name, agent.credential_id, action, "ok", [lead.id for lead in found],
                   self.clock())
        return found

    def export(self, token: str, fmt: str = "csv", since: Optional[float] = None,
               until: Optional[float] = None) -> str:
        """The leads of :meth:`list` as CSV (one row per lead, lists joined with ``;``) or JSON (``fmt``), audited
        as an ``export``. Raises ValueError for another format, LeadAccessRefused as :meth:`list`."""
        if fmt not in ("csv", "json"):
            raise ValueError("the export format is csv or json")
        found = self.list(token, since, until, action="export")
        rows = [lead.as_dict() for lead in found]
        if fmt == "json":
            return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
        out = io.StringIO()
        columns = ["id", "consented_at", "asked_at", "channel", *FIELDS, "red_flags"]
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([";".join(row[c]) if isinstance(row[c], list) else row[c] for c in columns])
        return out.getvalue()


def reads_audit(engine: Engine) -> List[Dict[str, Any]]:
    """Every audit row, oldest first (reader, action, outcome, lead ids): what ``leads audit`` prints."""
    with engine.connect() as connection:
        return [{**row._mapping, "lead_ids": json.loads(row._mapping["lead_ids"])}
                for row in connection.execute(sa.select(reads).order_by(reads.c.at, reads.c.id))]


@dataclass(frozen=True)
class LeadRetention:
    """Days leads and their read audit are kept (both > 0)."""

    lead_days: int = DEFAULT_LEAD_DAYS
    audit_days: int = DEFAULT_AUDIT_DAYS

    def __post_init__(self) -> None:
        if self.lead_days <= 0 or self.audit_days <= 0:
            raise ValueError("retention periods must be at least one day")

    @classmethod
    def from_env(cls, lead_days: Optional[int] = None) -> LeadRetention:
        """``lead_days``, else ``$LEADS_RETENTION_DAYS``; ``$LEADS_AUDIT_RETENTION_DAYS``; else the defaults.
        Raises ValueError for a value that is not a whole number."""
        def pick(given: Optional[int], variable: str, default: int) -> int:
            if given is not None:
                return given
            raw = os.environ.get(variable)
            try:
                return int(raw) if raw else default
            except ValueError:
                raise ValueError(f"${variable} must be a whole number of days, not {raw!r}") from None

        return cls(pick(lead_days, "LEADS_RETENTION_DAYS", DEFAULT_LEAD_DAYS),
                   pick(None, "LEADS_AUDIT_RETENTION_DAYS", DEFAULT_AUDIT_DAYS))


def apply_retention(engine: Engine, policy: LeadRetention, now: Optional[float] = None) -> Dict[str, int]:
    """Delete leads consented more than ``lead_days`` and audit rows older than ``audit_days`` before ``now``.
    Returns ``{"leads": n, "lead_reads": m}``."""
    now = time.time() if now is None else now
    with engine.begin() as connection:
        deleted_leads = connection.execute(sa.delete(leads).where(
            leads.c.consented_at < now - policy.lead_days * DAY_SECONDS)).rowcount
        deleted_reads = connection.execute(sa.delete(reads).where(
            reads.c.at < now - policy.audit_days * DAY_SECONDS)).rowcount
    return {"leads": deleted_leads, "lead_reads": deleted_reads}
