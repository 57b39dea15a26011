"""The ticket store: create, list, claim, reply to, annotate and close hand-over tickets (SQLAlchemy Core).

Every state change is one transaction that also writes the audit row and, when the webhook is on, the
outbox row for the external desk. A change with an effect outside the database (a message to the user
through Rasa) passes it as ``side_effect``: it runs inside the transaction, after the conditional update,
and an exception from it rolls everything back, so a failed send leaves no trace but the exception.

New tickets arrive as :class:`bot.handoff.contract.NewTicket` (re-exported here), posted by the action
server to the desk, which alone writes to this store.

Claiming is a single conditional ``UPDATE ... WHERE status IN ('queued', 'follow_up') AND claimed_by IS NULL``:
of several agents claiming at once, exactly one updates a row; the others get :class:`TicketConflict`.

The lifecycle (docs/handoff.md)::

    follow_up ──claim──▶ claimed ──close──▶ closed
    queued ────claim──▶ claimed ──release (agent, or silence timer)──▶ queued
    queued ──unclaimed timer──▶ follow_up (the bot talks again; the record stays for an agent)
    queued | claimed | follow_up ──the user leaves──▶ closed (outcome user_left)

Only ``queued`` and ``claimed`` hold the conversation paused.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from bot.db import make_engine
from bot.handoff.contract import NewTicket
from bot.handoff.schema import audit, notes, tickets, webhook_deliveries

QUEUED, CLAIMED, CLOSED = "queued", "claimed", "closed"
"""Ticket statuses, in the order a ticket goes through them."""

FOLLOW_UP = "follow_up"
"""A ticket nobody can answer now (no agent on duty, a channel that cannot receive agents, or unclaimed in
time): the bot keeps talking and an agent reads the record later. Claimable like a queued ticket."""

OPEN_STATUSES = (QUEUED, CLAIMED, FOLLOW_UP)
"""Statuses of a ticket that is not closed."""

USER_AGENT = "user"
"""The ``agent`` of audit rows for what the user did (left the queue, wrote something that reads as danger)."""

OUTCOMES = {
    "referred_hardship_plan": "已引导向银行申请个性化分期",
    "referred_12378": "已引导拨打监管投诉热线",
    "police_report_advised": "已建议报警",
    "resolved": "已解决",
    "no_response": "用户未回应",
    "user_left": "用户不再等待人工",
}
"""Outcome code -> Chinese label on the desk. Closing needs one of these codes."""

UNKNOWN_AGENT = "unknown"
"""The ``agent`` of audit rows for refused requests whose credential named nobody."""

SYSTEM_AGENT = "system"
"""The ``agent`` of audit rows written by the bot or the desk's own timers."""

SideEffect = Callable[["Ticket"], Any]
"""Runs inside a change's transaction; what it returns is ignored, what it raises rolls the change back."""

__all__ = ["AuditEntry", "CLAIMED", "CLOSED", "Delivery", "FOLLOW_UP", "HandoffStoreError", "InvalidInput",
           "NewTicket", "Note", "OPEN_STATUSES", "OUTCOMES", "QUEUED", "SYSTEM_AGENT", "Ticket", "TicketConflict",
           "TicketNotFound", "TicketStore", "USER_AGENT", "iso", "utcnow"]


class HandoffStoreError(Exception):
    """Base of the store's refusals; ``status`` is the HTTP status the desk answers with."""

    status = 400


class TicketNotFound(HandoffStoreError):
    """No ticket has this id."""

    status = 404


class TicketConflict(HandoffStoreError):
    """The ticket is not in a state that allows this (claimed by someone else, not claimed yet, closed)."""

    status = 409


class InvalidInput(HandoffStoreError):
    """An argument is not acceptable (unknown outcome, empty text)."""

    status = 400


def utcnow() -> dt.datetime:
    """The current time as a naive UTC datetime (how the store keeps times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def iso(moment: Optional[dt.datetime]) -> Optional[str]:
    """A stored naive-UTC time as ISO 8601 with ``Z`` (``None`` stays ``None``)."""
    return None if moment is None else moment.isoformat() + "Z"


@dataclass(frozen=True)
class Ticket:
    """A stored ticket. Times are naive UTC datetimes; ``status`` is queued, claimed, follow_up or closed.

    ``queued_at``: when it last entered the queue; ``last_agent_message_at``: the holder's last reply;
    ``returned_at``: when the unclaimed timer gave the conversation back to the bot; ``alert_text`` /
    ``alert_at``: the latest message that read as danger while waiting."""

    id: str
    sender_id: str
    channel: Optional[str]
    status: str
    priority: int
    reason: str
    summary: Dict[str, Any]
    transcript: List[Dict[str, Any]]
    created_at: dt.datetime
    updated_at: dt.datetime
    claimed_by: Optional[str] = None
    claimed_at: Optional[dt.datetime] = None
    closed_by: Optional[str] = None
    closed_at: Optional[dt.datetime] = None
    outcome: Optional[str] = None
    timeout_notified_at: Optional[dt.datetime] = None
    queued_at: Optional[dt.datetime] = None
    last_agent_message_at: Optional[dt.datetime] = None
    returned_at: Optional[dt.datetime] = None
    alert_text: Optional[str] = None
    alert_at: Optional[dt.datetime] = None

    @property
    def holds(self) -> bool:
        """True while the conversation is paused for a person (queued or claimed)."""
        return self.status in (QUEUED, CLAIMED)

    def to_dict(self, include_transcript: bool = True, reference: Optional[str] = None) -> Dict[str, Any]:
        """JSON-ready mapping (times as ISO strings with Z) for agents and the webhook: never the sender id (which
        names the conversation), but ``reference`` (TicketStore.reference) in its place; without the transcript
        when asked."""
        data = {key: (iso(value) if isinstance(value, dt.datetime) else value)
                for key, value in asdict(self).items() if key != "sender_id"}
        data["reference"] = reference
        if not include_transcript:
            data.pop("transcript")
        return data


@dataclass(frozen=True)
class Note:
    """An internal note on a ticket (never shown to the user)."""

    id: int
    ticket_id: str
    agent: str
    text: str
    created_at: dt.datetime

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready mapping."""
        return {**asdict(self), "created_at": iso(self.created_at)}


@dataclass(frozen=True)
class AuditEntry:
    """One audited desk action: who (``agent``), when (``at``), what (``action``, ``ticket_id``, ``detail``)."""

    id: int
    at: dt.datetime
    agent: str
    action: str
    ticket_id: Optional[str]
    detail: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready mapping."""
        return {**asdict(self), "at": iso(self.at)}


@dataclass(frozen=True)
class Delivery:
    """A webhook outbox row: ``status`` pending, delivered or failed; ``attempts`` made so far."""

    id: int
    event: str
    ticket_id: Optional[str]
    payload: Dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: Optional[str]
    last_status_code: Optional[int]
    created_at: dt.datetime
    delivered_at: Optional[dt.datetime]


def reference_for(key: bytes, sender_id: str) -> str:
    """``ref-`` and the first 16 hex digits of HMAC-SHA256(``key``, sender id): see TicketStore.reference."""
    return "ref-" + hmac.new(key, sender_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def _ticket(row: Any) -> Ticket:
    return Ticket(**{column.name: row._mapping[column.name] for column in tickets.columns})


class TicketStore:
    """Ticket operations over one engine. Thread-safe (each call uses its own connection).

    ``webhook_enabled``: also write an outbox row for every event (delivered by bot.handoff.notifier).
    ``clock``: returns naive UTC now (injectable for tests). ``reference_key``: the key of :meth:`reference`
    (default: a random one, so references are stable for this store object only).
    """

    def __init__(self, engine: Engine, webhook_enabled: bool = False,
                 clock: Callable[[], dt.datetime] = utcnow, reference_key: Optional[str] = None) -> None:
        self.engine = engine
        self.webhook_enabled = webhook_enabled
        self.clock = clock
        self._reference_key = (reference_key or secrets.token_urlsafe(32)).encode("utf-8")

    @classmethod
    def from_url(cls, url: str, webhook_enabled: bool = False, reference_key: Optional[str] = None) -> TicketStore:
        """A store on a new engine for ``url``.

        The schema must be migrated first: ``bot.db.upgrade_database(url, "handoff")``.
        """
        return cls(make_engine(url), webhook_enabled=webhook_enabled, reference_key=reference_key)

    def reference(self, sender_id: str) -> str:
        """The opaque reference agents and the webhook see for a conversation instead of its sender id: ``ref-``
        and 16 hex digits of HMAC-SHA256 (reference key) of the sender. The same person's tickets share it; it
        cannot be turned back into the sender id, so it opens no conversation."""
        return reference_for(self._reference_key, sender_id)

    def view(self, ticket: Ticket, include_transcript: bool = True) -> Dict[str, Any]:
        """``ticket.to_dict`` with its reference: what agents and the webhook may see."""
        return ticket.to_dict(include_transcript, reference=self.reference(ticket.sender_id))

    # ----- helpers -----------------------------------------------------------------------------------
    def _audit(self, conn: Connection, agent: str, action: str, ticket_id: Optional[str],
               detail: Optional[Dict[str, Any]] = None) -> None:
        conn.execute(insert(audit).values(at=self.clock(), agent=agent, action=action, ticket_id=ticket_id,
                                          detail=detail or {}))

    def _outbox(self, conn: Connection, event: str, ticket: Ticket, detail: Optional[Dict[str, Any]] = None,
                include_transcript: bool = False) -> None:
        if not self.webhook_enabled:
            return
        now = self.clock()
        payload = {"event": event, "at": iso(now), "ticket": self.view(ticket, include_transcript),
                   "detail": detail or {}}
        conn.execute(insert(webhook_deliveries).values(
            event=event, ticket_id=ticket.id, payload=payload, status="pending", attempts=0,
            next_attempt_at=now, created_at=now))

    @staticmethod
    def _fetch(conn: Connection, ticket_id: str) -> Ticket:
        row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
        if row is None:
            raise TicketNotFound(f"ticket {ticket_id!r} does not exist")
        return _ticket(row)

    @staticmethod
    def _holder_problem(ticket: Ticket, agent: str) -> Optional[str]:
        if ticket.status == CLOSED:
            return f"ticket {ticket.id} is closed"
        if ticket.status in (QUEUED, FOLLOW_UP):
            return f"ticket {ticket.id} has not been claimed; claim it first"
        if ticket.claimed_by != agent:
            return f"ticket {ticket.id} is held by {ticket.claimed_by}"
        return None

    # ----- tickets -----------------------------------------------------------------------------------
    def create_ticket(self, new: NewTicket, status: str = QUEUED) -> Tuple[Ticket, bool]:
        """Open a ticket for ``new.sender_id`` with ``status`` (QUEUED or FOLLOW_UP), or refresh the sender's
        open one.

        Returns ``(ticket, created)``: ``created`` is False when the sender already had an open ticket, whose
        summary and transcript are then replaced and whose priority is raised if the new one is more urgent;
        a queued or follow-up ticket then takes the new ``status`` (re-entering the queue, ``queued_at`` now,
        when it becomes queued), a claimed one stays with its agent.
        """
        if status not in (QUEUED, FOLLOW_UP):
            raise InvalidInput(f"a new ticket is {QUEUED} or {FOLLOW_UP}, not {status!r}")
        now = self.clock()
        with self.engine.begin() as conn:
            existing = conn.execute(
                select(tickets).where(and_(tickets.c.sender_id == new.sender_id, tickets.c.status != CLOSED))
                .order_by(tickets.c.created_at).limit(1)
            ).first()
            if existing is not None:
                ticket = _ticket(existing)
                values: Dict[str, Any] = {"summary": new.summary, "transcript": new.transcript, "updated_at": now,
                                          "priority": min(ticket.priority, new.priority)}
                if ticket.status != CLAIMED and ticket.status != status:
                    values["status"] = status
                    if status == QUEUED:
                        values["queued_at"] = now
                conn.execute(update(tickets).where(tickets.c.id == ticket.id).values(**values))
                ticket = self._fetch(conn, ticket.id)
                self._audit(conn, SYSTEM_AGENT, "refresh", ticket.id, {"reason": new.reason,
                                                                       "status": ticket.status})
                return ticket, False
            ticket_id = uuid.uuid4().hex
            conn.execute(insert(tickets).values(
                id=ticket_id, sender_id=new.sender_id, channel=new.channel, status=status,
                priority=new.priority, reason=new.reason, summary=new.summary, transcript=new.transcript,
                created_at=now, updated_at=now, queued_at=now))
            ticket = self._fetch(conn, ticket_id)
            self._audit(conn, SYSTEM_AGENT, "create", ticket_id, {"reason": new.reason, "priority": new.priority,
                                                                  "status": status})
            self._outbox(conn, "ticket.created", ticket, include_transcript=True)
            return ticket, True

    def get(self, ticket_id: str) -> Ticket:
        """The ticket. Raises TicketNotFound."""
        with self.engine.connect() as conn:
            return self._fetch(conn, ticket_id)

    def open_ticket_of(self, sender_id: str) -> Optional[Ticket]:
        """The sender's open ticket (queued, claimed or follow-up; the oldest if several), or None."""
        query = (select(tickets).where(and_(tickets.c.sender_id == sender_id, tickets.c.status != CLOSED))
                 .order_by(tickets.c.created_at).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _ticket(row)

    def queue(self, include_closed: bool = False, limit: int = 200, offset: int = 0) -> List[Ticket]:
        """Open tickets (queued, claimed, follow-up): those with a danger alert first, then the most urgent, then
        the oldest; closed ones last if asked. ``limit`` tickets from position ``offset`` (0-based) of that order,
        so that a caller can page through all of them."""
        query = select(tickets)
        if not include_closed:
            query = query.where(tickets.c.status != CLOSED)
        query = query.order_by((tickets.c.status == CLOSED), tickets.c.alert_at.is_(None), tickets.c.priority,
                               tickets.c.created_at, tickets.c.id).limit(limit).offset(max(0, offset))
        with self.engine.connect() as conn:
            return [_ticket(row) for row in conn.execute(query)]

    def claim(self, ticket_id: str, agent: str, side_effect: Optional[SideEffect] = None) -> Ticket:
        """Give the ticket to ``agent`` if nobody holds it (one conditional UPDATE; exactly one claimer wins).

        ``side_effect(ticket)`` (e.g. telling the user an agent joined) runs inside the transaction; if it
        raises, the claim is rolled back and the exception propagates.
        Raises TicketNotFound, or TicketConflict if it is claimed by another agent or closed. Claiming a
        ticket one already holds returns it unchanged (no side effect). A follow-up ticket can be claimed too
        (the side effect then pauses the conversation where the channel allows it); the side effect sees the
        claimed ticket, and the audit row records the status it was claimed from.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            before = self._fetch(conn, ticket_id)
            result = conn.execute(
                update(tickets)
                .where(and_(tickets.c.id == ticket_id, tickets.c.status.in_((QUEUED, FOLLOW_UP)),
                            tickets.c.claimed_by.is_(None)))
                .values(status=CLAIMED, claimed_by=agent, claimed_at=now, updated_at=now,
                        last_agent_message_at=None)
            )
            ticket = self._fetch(conn, ticket_id)
            if result.rowcount != 1:
                if ticket.status == CLAIMED and ticket.claimed_by == agent:
                    return ticket
                raise TicketConflict(self._holder_problem(ticket, agent) or f"ticket {ticket_id} is not queued")
            self._audit(conn, agent, "claim", ticket_id, {"from": before.status})
            self._outbox(conn, "ticket.claimed", ticket, {"agent": agent})
            if side_effect is not None:
                side_effect(ticket)
            return ticket

    def require_holder(self, ticket_id: str, agent: str) -> Ticket:
        """The ticket if ``agent`` holds it and it is open. Raises TicketNotFound or TicketConflict."""
        ticket = self.get(ticket_id)
        problem = self._holder_problem(ticket, agent)
        if problem:
            raise TicketConflict(problem)
        return ticket

    def record_reply(self, ticket_id: str, agent: str, text: str, side_effect: SideEffect) -> Ticket:
        """Send an agent's reply (``side_effect`` delivers it) and audit it, if ``agent`` holds the open ticket.

        The holder check is repeated inside the transaction, so a reply racing a close is refused.
        Raises TicketNotFound, TicketConflict, InvalidInput (empty text), or what ``side_effect`` raises.
        """
        if not text.strip():
            raise InvalidInput("the reply is empty")
        with self.engine.begin() as conn:
            # Touch the row first: this takes the write lock, so the check below cannot race a close.
            now = self.clock()
            conn.execute(update(tickets).where(and_(tickets.c.id == ticket_id, tickets.c.status == CLAIMED,
                                                    tickets.c.claimed_by == agent))
                         .values(updated_at=now, last_agent_message_at=now))
            ticket = self._fetch(conn, ticket_id)
            problem = self._holder_problem(ticket, agent)
            if problem:
                raise TicketConflict(problem)
            self._audit(conn, agent, "reply", ticket_id, {"chars": len(text), "text": text})
            self._outbox(conn, "ticket.replied", ticket, {"agent": agent, "text": text})
            side_effect(ticket)
            return ticket

    def close(self, ticket_id: str, agent: str, outcome: str, side_effect: Optional[SideEffect] = None) -> Ticket:
        """Close the ticket with ``outcome`` (a key of OUTCOMES) if ``agent`` holds it.

        ``side_effect(ticket)`` (resuming the bot) runs inside the transaction; if it raises, the ticket stays
        claimed. Raises TicketNotFound, TicketConflict, InvalidInput (unknown outcome).
        """
        if outcome not in OUTCOMES:
            raise InvalidInput(f"unknown outcome {outcome!r}; use one of {', '.join(OUTCOMES)}")
        now = self.clock()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(tickets)
                .where(and_(tickets.c.id == ticket_id, tickets.c.status == CLAIMED, tickets.c.claimed_by == agent))
                .values(status=CLOSED, closed_by=agent, closed_at=now, outcome=outcome, updated_at=now)
            )
            ticket = self._fetch(conn, ticket_id)
            if result.rowcount != 1:
                raise TicketConflict(self._holder_problem(ticket, agent) or f"ticket {ticket_id} cannot be closed")
            self._audit(conn, agent, "close", ticket_id, {"outcome": outcome})
            self._outbox(conn, "ticket.closed", ticket, {"agent": agent, "outcome": outcome})
            if side_effect is not None:
                side_effect(ticket)
            return ticket

    def record_undelivered(self, ticket_id: str, agent: str, text: str, problem: str) -> None:
        """Audit an agent's reply that did not reach the user (``reply_undelivered``, with why); the reply
        itself was rolled back, so the agent's page can say "not delivered", never "sent"."""
        with self.engine.begin() as conn:
            self._audit(conn, agent, "reply_undelivered", ticket_id, {"chars": len(text), "problem": problem})

    def release(self, ticket_id: str, agent: str, reason: str = "agent", holder: Optional[str] = None,
                side_effect: Optional[SideEffect] = None) -> Ticket:
        """Give a claimed ticket back to the queue (``queued``, nobody holds it, ``queued_at`` now).

        ``agent`` is who releases: the holder (``reason`` "agent") or SYSTEM_AGENT for the silence timer
        (``reason`` "silence"), which must name the ``holder`` it found, so that a ticket claimed again
        meanwhile is left alone. ``side_effect(ticket)`` (telling the user) sees the ticket before the release
        (with its holder) and runs inside the transaction. Raises TicketNotFound, TicketConflict.
        """
        expected = holder if agent == SYSTEM_AGENT else agent
        now = self.clock()
        with self.engine.begin() as conn:
            before = self._fetch(conn, ticket_id)
            result = conn.execute(
                update(tickets)
                .where(and_(tickets.c.id == ticket_id, tickets.c.status == CLAIMED,
                            tickets.c.claimed_by == expected))
                .values(status=QUEUED, claimed_by=None, claimed_at=None, queued_at=now, updated_at=now,
                        last_agent_message_at=None)
            )
            if result.rowcount != 1:
                raise TicketConflict(self._holder_problem(before, expected or "")
                                     or f"ticket {ticket_id} cannot be released")
            ticket = self._fetch(conn, ticket_id)
            self._audit(conn, agent, "release", ticket_id, {"reason": reason, "holder": expected})
            self._outbox(conn, "ticket.released", ticket, {"agent": expected, "reason": reason})
            if side_effect is not None:
                side_effect(before)
            return ticket

    def return_to_bot(self, ticket_id: str, side_effect: Optional[SideEffect] = None) -> bool:
        """A queued ticket nobody claimed in time becomes a follow-up record (``returned_at`` now); the
        conversation goes back to the bot (``side_effect`` resumes it, inside the transaction; a failure rolls
        back and the next round retries). Returns False if it was claimed, closed or returned meanwhile."""
        now = self.clock()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(tickets).where(and_(tickets.c.id == ticket_id, tickets.c.status == QUEUED))
                .values(status=FOLLOW_UP, returned_at=now, updated_at=now, timeout_notified_at=now)
            )
            if result.rowcount != 1:
                return False
            ticket = self._fetch(conn, ticket_id)
            self._audit(conn, SYSTEM_AGENT, "return_to_bot", ticket_id)
            self._outbox(conn, "ticket.timeout", ticket)
            if side_effect is not None:
                side_effect(ticket)
            return True

    def leave(self, sender_id: str, side_effect: Optional[SideEffect] = None) -> Optional[Ticket]:
        """The user left the queue: close the sender's open ticket (any open status) with outcome
        ``user_left`` (closed by USER_AGENT). ``side_effect`` runs inside the transaction. Returns the closed
        ticket, or None if the sender had no open ticket."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(tickets).where(and_(tickets.c.sender_id == sender_id,
                                                          tickets.c.status != CLOSED))
                               .order_by(tickets.c.created_at).limit(1)).first()
            if row is None:
                return None
            before = _ticket(row)
            result = conn.execute(update(tickets).where(and_(tickets.c.id == before.id, tickets.c.status != CLOSED))
                                  .values(status=CLOSED, closed_by=USER_AGENT, closed_at=now, outcome="user_left",
                                          updated_at=now))
            if result.rowcount != 1:
                return None
            ticket = self._fetch(conn, before.id)
            self._audit(conn, USER_AGENT, "close", ticket.id, {"outcome": "user_left", "from": before.status,
                                                               "holder": before.claimed_by})
            self._outbox(conn, "ticket.closed", ticket, {"agent": USER_AGENT, "outcome": "user_left"})
            if side_effect is not None:
                side_effect(ticket)
            return ticket

    def raise_alert(self, sender_id: str, text: Optional[str]) -> Optional[Ticket]:
        """A message that reads as danger while the sender waits: their open ticket goes to the top (priority
        1, and alerted tickets come first in :meth:`queue`) with the sentence (PII-masked by the caller) for
        the agents. Audited (USER_AGENT, ``alert``). Returns the ticket, or None without an open ticket."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(tickets).where(and_(tickets.c.sender_id == sender_id,
                                                          tickets.c.status != CLOSED))
                               .order_by(tickets.c.created_at).limit(1)).first()
            if row is None:
                return None
            conn.execute(update(tickets).where(tickets.c.id == row._mapping["id"]).values(
                priority=1, alert_text=text or "", alert_at=now, updated_at=now))
            ticket = self._fetch(conn, row._mapping["id"])
            self._audit(conn, USER_AGENT, "alert", ticket.id, {"chars": len(text or "")})
            self._outbox(conn, "ticket.alert", ticket, {"text": text or ""})
            return ticket

    # ----- notes and audit ---------------------------------------------------------------------------
    def add_note(self, ticket_id: str, agent: str, text: str) -> Note:
        """Add an internal note (any agent, any status). Raises TicketNotFound, InvalidInput (empty)."""
        if not text.strip():
            raise InvalidInput("the note is empty")
        now = self.clock()
        with self.engine.begin() as conn:
            ticket = self._fetch(conn, ticket_id)
            result = conn.execute(insert(notes).values(ticket_id=ticket_id, agent=agent, text=text, created_at=now))
            note_id = result.inserted_primary_key[0]
            self._audit(conn, agent, "note", ticket_id, {"note_id": note_id, "chars": len(text)})
            self._outbox(conn, "ticket.note_added", ticket, {"agent": agent, "text": text})
        return Note(note_id, ticket_id, agent, text, now)

    def notes(self, ticket_id: str) -> List[Note]:
        """The ticket's notes, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(notes).where(notes.c.ticket_id == ticket_id).order_by(notes.c.id))
            return [Note(**row._mapping) for row in rows]

    def record_view(self, ticket_id: str, agent: str) -> Ticket:
        """Audit that ``agent`` opened the ticket (its summary and transcript). Raises TicketNotFound."""
        with self.engine.begin() as conn:
            ticket = self._fetch(conn, ticket_id)
            self._audit(conn, agent, "view", ticket_id)
            return ticket

    def record_read(self, agent: str, action: str, ticket_id: Optional[str] = None,
                    detail: Optional[Dict[str, Any]] = None) -> None:
        """Audit a desk read (``queue``, ``transcript``, ``audit_read``, ...) by ``agent``."""
        with self.engine.begin() as conn:
            self._audit(conn, agent, action, ticket_id, detail)

    def record_refusal(self, agent: Optional[str], detail: Dict[str, Any]) -> None:
        """Audit a refused desk request (``refused``): ``agent`` the credential's name when it was recognised,
        else ``unknown``; ``detail`` says what was asked and why it was refused (never the token)."""
        with self.engine.begin() as conn:
            self._audit(conn, agent or UNKNOWN_AGENT, "refused", None, detail)

    def audit_log(self, ticket_id: Optional[str] = None, limit: int = 500) -> List[AuditEntry]:
        """Audit rows, newest first, optionally of one ticket."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if ticket_id is not None:
            query = query.where(audit.c.ticket_id == ticket_id)
        with self.engine.connect() as conn:
            return [AuditEntry(**row._mapping) for row in conn.execute(query)]

    def counts(self) -> Dict[str, int]:
        """Row counts of every handoff table (used by tests to show a refused request changed nothing)."""
        with self.engine.connect() as conn:
            return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                    for table in (tickets, notes, audit, webhook_deliveries)}

    # ----- timeouts ----------------------------------------------------------------------------------
    def tickets_due_for_return(self, timeout_seconds: int) -> List[Ticket]:
        """Queued tickets that entered the queue (``queued_at``, else ``created_at``) at least
        ``timeout_seconds`` ago, oldest first: nobody claimed them, so the bot takes the conversation back."""
        cutoff = self.clock() - dt.timedelta(seconds=timeout_seconds)
        query = (select(tickets)
                 .where(and_(tickets.c.status == QUEUED,
                             func.coalesce(tickets.c.queued_at, tickets.c.created_at) <= cutoff))
                 .order_by(tickets.c.created_at))
        with self.engine.connect() as conn:
            return [_ticket(row) for row in conn.execute(query)]

    def tickets_due_for_release(self, silence_seconds: int) -> List[Ticket]:
        """Claimed tickets whose holder has sent nothing for ``silence_seconds`` (since their last reply, else
        since the claim), oldest first."""
        cutoff = self.clock() - dt.timedelta(seconds=silence_seconds)
        query = (select(tickets)
                 .where(and_(tickets.c.status == CLAIMED,
                             func.coalesce(tickets.c.last_agent_message_at, tickets.c.claimed_at) <= cutoff))
                 .order_by(tickets.c.created_at))
        with self.engine.connect() as conn:
            return [_ticket(row) for row in conn.execute(query)]

    def tickets_due_for_timeout(self, timeout_seconds: int) -> List[Ticket]:
        """Queued tickets older than ``timeout_seconds`` whose user has not been told yet, oldest first (the
        earlier release's one-notice timer; the desk now uses :meth:`tickets_due_for_return`)."""
        cutoff = self.clock() - dt.timedelta(seconds=timeout_seconds)
        query = (select(tickets)
                 .where(and_(tickets.c.status == QUEUED, tickets.c.created_at <= cutoff,
                             tickets.c.timeout_notified_at.is_(None)))
                 .order_by(tickets.c.created_at))
        with self.engine.connect() as conn:
            return [_ticket(row) for row in conn.execute(query)]

    def mark_timed_out(self, ticket_id: str, side_effect: Optional[SideEffect] = None) -> bool:
        """Record that the user of a still-queued ticket was told nobody has claimed it (at most once).

        ``side_effect`` sends the message inside the transaction (a failure rolls back, so it is retried on
        the next check). Returns False if the ticket was claimed, closed or already marked meanwhile.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(tickets)
                .where(and_(tickets.c.id == ticket_id, tickets.c.status == QUEUED,
                            tickets.c.timeout_notified_at.is_(None)))
                .values(timeout_notified_at=now, updated_at=now)
            )
            if result.rowcount != 1:
                return False
            ticket = self._fetch(conn, ticket_id)
            self._audit(conn, SYSTEM_AGENT, "timeout_notice", ticket_id)
            self._outbox(conn, "ticket.timeout", ticket)
            if side_effect is not None:
                side_effect(ticket)
            return True

    # ----- webhook outbox ----------------------------------------------------------------------------
    def due_deliveries(self, limit: int = 20) -> List[Delivery]:
        """Pending outbox rows whose next attempt is due, oldest first."""
        query = (select(webhook_deliveries)
                 .where(and_(webhook_deliveries.c.status == "pending",
                             webhook_deliveries.c.next_attempt_at <= self.clock()))
                 .order_by(webhook_deliveries.c.id).limit(limit))
        with self.engine.connect() as conn:
            return [Delivery(**row._mapping) for row in conn.execute(query)]

    def deliveries(self, ticket_id: Optional[str] = None) -> List[Delivery]:
        """All outbox rows (optionally of one ticket), oldest first."""
        query = select(webhook_deliveries).order_by(webhook_deliveries.c.id)
        if ticket_id is not None:
            query = query.where(webhook_deliveries.c.ticket_id == ticket_id)
        with self.engine.connect() as conn:
            return [Delivery(**row._mapping) for row in conn.execute(query)]

    def record_delivery(self, delivery_id: int, ok: bool, status_code: Optional[int], error: Optional[str],
                        max_attempts: int, retry_seconds: int) -> str:
        """Record one delivery attempt. On failure the next attempt waits ``retry_seconds * 2**(attempts-1)``;
        after ``max_attempts`` the row is ``failed``. Returns the row's new status."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)).first()
            if row is None:
                raise KeyError(delivery_id)
            attempts = row._mapping["attempts"] + 1
            if ok:
                status, next_at = "delivered", row._mapping["next_attempt_at"]
            elif attempts >= max_attempts:
                status, next_at = "failed", row._mapping["next_attempt_at"]
            else:
                status = "pending"
                next_at = now + dt.timedelta(seconds=retry_seconds * 2 ** (attempts - 1))
            conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(
                attempts=attempts, status=status, next_attempt_at=next_at, last_status_code=status_code,
                last_error=None if ok else (error or "")[:1000], delivered_at=now if ok else None))
            return status
