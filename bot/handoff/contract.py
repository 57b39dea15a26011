"""The intake contract between the action server and the agent desk: the new ticket, and the desk's answer.

``action_handoff`` (bot.handoff.intake) sends a :class:`NewTicket` as JSON to the desk's
``POST /api/intake/tickets`` (bot.handoff.desk.service_api), which stores it and answers with an
:class:`IntakeAnswer`. Both sides read and write the JSON only through this module, so the shapes cannot drift
apart. It imports no web or database package: the action server uses it and must run with rasa-sdk alone.

Readers are strict about the fields they need (types, known codes, the ticket table's column widths) and
ignore fields they do not know, so that a desk and an action server of neighbouring releases still agree.
Error messages name fields, never their values: values may be a user's words.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

from bot.handoff.priority import PRIORITY_LABELS, REASON_LABELS
from bot.handoff.summary import MAX_TRANSCRIPT_MESSAGES

INTAKE_PATH = "/api/intake/tickets"
"""The desk's intake route (POST, service token in ``Authorization: Bearer``)."""

MAX_SENDER_ID_CHARS = 255
"""Width of ``handoff_tickets.sender_id``."""

MAX_CHANNEL_CHARS = 64
"""Width of ``handoff_tickets.channel``."""


TRANSCRIPT_ROLES = ("user", "bot", "agent")
"""Who said a transcript line (bot.handoff.summary.message_entry)."""


class ContractError(ValueError):
    """A JSON document that is not a valid ticket or answer; the message names the field (not its value)."""


def parse_body(raw: bytes) -> Any:
    """A request body as JSON, strictly: ``NaN`` and ``Infinity``, which Python's reader accepts but no browser's
    does, are refused, so that no ticket the agents' page cannot read is stored. Raises ContractError."""

    def refuse(constant: str) -> Any:
        raise ContractError(f"the ticket holds {constant}, which is not JSON")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ContractError("the ticket must be a JSON object") from err



@dataclass(frozen=True)
class NewTicket:
    """What the bot knows when it hands over. ``summary`` and ``transcript`` are JSON-serialisable and
    already PII-masked by the action side (see bot.handoff.summary); ``priority`` is 1 (most urgent) to 3."""

    sender_id: str
    channel: Optional[str]
    priority: int
    reason: str
    summary: Dict[str, Any]
    transcript: List[Dict[str, Any]]

    def to_json(self) -> Dict[str, Any]:
        """The JSON object the action server posts."""
        return {"sender_id": self.sender_id, "channel": self.channel, "priority": self.priority,
                "reason": self.reason, "summary": self.summary, "transcript": self.transcript}

    @classmethod
    def from_json(cls, data: Any) -> NewTicket:
        """The ticket in ``data`` (parsed JSON). Raises ContractError for a missing or malformed field."""
        if not isinstance(data, Mapping):
            raise ContractError("the ticket must be a JSON object")
        sender_id = data.get("sender_id")
        if not isinstance(sender_id, str) or not sender_id or len(sender_id) > MAX_SENDER_ID_CHARS:
            raise ContractError(f"'sender_id' must be a string of 1-{MAX_SENDER_ID_CHARS} characters")
        channel = data.get("channel")
        if channel is not None and (not isinstance(channel, str) or len(channel) > MAX_CHANNEL_CHARS):
            raise ContractError(f"'channel' must be null or a string of at most {MAX_CHANNEL_CHARS} characters")
        priority = data.get("priority")
        if not isinstance(priority, int) or isinstance(priority, bool) or priority not in PRIORITY_LABELS:
            raise ContractError(f"'priority' must be one of {', '.join(map(str, sorted(PRIORITY_LABELS)))}")
        reason = data.get("reason")
        if not isinstance(reason, str) or reason not in REASON_LABELS:
            raise ContractError(f"'reason' must be one of {', '.join(REASON_LABELS)}")
        summary = data.get("summary")
        if not isinstance(summary, dict):
            raise ContractError("'summary' must be a JSON object")
        transcript = data.get("transcript")
        if (not isinstance(transcript, list) or len(transcript) > MAX_TRANSCRIPT_MESSAGES
                or not all(isinstance(line, dict) for line in transcript)):
            raise ContractError(f"'transcript' must be a list of at most {MAX_TRANSCRIPT_MESSAGES} JSON objects")
        if not all(line.get("role") in TRANSCRIPT_ROLES and isinstance(line.get("text"), str) for line in transcript):
            raise ContractError(f"every 'transcript' line needs a 'role' ({', '.join(TRANSCRIPT_ROLES)}) and a "
                                "'text' string")
        return cls(sender_id=sender_id, channel=channel, priority=priority, reason=reason, summary=summary,
                   transcript=transcript)


TICKET_STATUSES = ("queued", "claimed", "follow_up", "closed")
"""A ticket's status as the desk reports it: ``queued`` and ``claimed`` mean a person can answer now (the
conversation is paused); ``follow_up`` is a record an agent reads later while the bot keeps talking."""

HOLDING_STATUSES = ("queued", "claimed")
"""Statuses under which the conversation stays paused."""


@dataclass(frozen=True)
class IntakeAnswer:
    """The desk's answer: the ticket's id, whether it was ``created`` (False: the sender's open ticket was
    refreshed), whether the desk is inside its opening hours (``open_now``), the opening hours in Chinese,
    whether a person can answer now (``agents_on_duty``: inside the hours AND at least one agent present at
    the desk) and the ticket's ``status`` (TICKET_STATUSES).

    Tolerant of an earlier desk: a missing ``agents_on_duty`` reads as False (nobody is known to be there, so
    nothing is promised) and a missing ``status`` as ``queued`` when agents are on duty, else ``follow_up``.
    """

    ticket_id: str
    created: bool
    open_now: bool
    opening_hours: str
    agents_on_duty: bool = False
    status: str = "follow_up"

    @property
    def holds(self) -> bool:
        """True when a person can answer now: the ticket is queued with an agent on duty, or claimed."""
        return self.status == "claimed" or (self.status == "queued" and self.agents_on_duty)

    def to_json(self) -> Dict[str, Any]:
        """The JSON object the desk answers with."""
        return {"ticket_id": self.ticket_id, "created": self.created, "open_now": self.open_now,
                "opening_hours": self.opening_hours, "agents_on_duty": self.agents_on_duty,
                "status": self.status}

    @classmethod
    def from_json(cls, data: Any) -> IntakeAnswer:
        """The answer in ``data`` (parsed JSON). Raises ContractError for a missing or malformed field."""
        if not isinstance(data, Mapping):
            raise ContractError("the answer must be a JSON object")
        ticket_id, created, open_now, hours = (data.get(key) for key in
                                               ("ticket_id", "created", "open_now", "opening_hours"))
        if not isinstance(ticket_id, str) or not ticket_id:
            raise ContractError("'ticket_id' must be a non-empty string")
        if not isinstance(created, bool) or not isinstance(open_now, bool):
            raise ContractError("'created' and 'open_now' must be true or false")
        if not isinstance(hours, str) or not hours:
            raise ContractError("'opening_hours' must be a non-empty string")
        on_duty = data.get("agents_on_duty", False)
        if not isinstance(on_duty, bool):
            raise ContractError("'agents_on_duty' must be true or false")
        status = data.get("status", "queued" if on_duty else "follow_up")
        if status not in TICKET_STATUSES:
            raise ContractError(f"'status' must be one of {', '.join(TICKET_STATUSES)}")
        return cls(ticket_id=ticket_id, created=created, open_now=open_now, opening_hours=hours,
                   agents_on_duty=on_duty, status=status)


PAUSED_MESSAGE_PATH = "/api/intake/paused-message"
"""The desk's route for a message to a paused conversation (POST, service token), see :class:`PausedMessage`."""

PAUSED_KINDS = ("message", "danger", "leave")
"""What the paused-conversation gate (bot.handoff.paused) saw: an ordinary message, one that reads as danger
(bot.crisis.reads_as_danger), or a wish to leave the queue."""

MAX_ALERT_CHARS = 1000
"""Longest danger sentence passed to the desk (characters); longer ones are cut."""


@dataclass(frozen=True)
class PausedMessage:
    """A message to a paused conversation, from the Rasa side's gate to the desk.

    ``kind`` is one of PAUSED_KINDS. ``text`` (PII-masked by the channel guard) is sent only for ``danger``, so
    that the agents see the sentence; ordinary messages reach the agents through the live transcript.
    """

    sender_id: str
    kind: str
    text: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        """The JSON object the gate posts."""
        return {"sender_id": self.sender_id, "kind": self.kind, "text": self.text}

    @classmethod
    def from_json(cls, data: Any) -> PausedMessage:
        """The message in ``data`` (parsed JSON). Raises ContractError for a missing or malformed field."""
        if not isinstance(data, Mapping):
            raise ContractError("the message must be a JSON object")
        sender_id, kind, text = data.get("sender_id"), data.get("kind"), data.get("text")
        if not isinstance(sender_id, str) or not sender_id or len(sender_id) > MAX_SENDER_ID_CHARS:
            raise ContractError(f"'sender_id' must be a string of 1-{MAX_SENDER_ID_CHARS} characters")
        if kind not in PAUSED_KINDS:
            raise ContractError(f"'kind' must be one of {', '.join(PAUSED_KINDS)}")
        if text is not None and not isinstance(text, str):
            raise ContractError("'text' must be null or a string")
        return cls(sender_id=sender_id, kind=kind, text=text[:MAX_ALERT_CHARS] if text else None)


@dataclass(frozen=True)
class PausedAnswer:
    """The desk's answer to a :class:`PausedMessage`.

    ``ticket_id`` and ``status`` describe the sender's open ticket (both None: there is none); ``hold`` is True
    when the conversation should stay paused (a person can answer: status queued or claimed, and the ticket was
    not closed by this message); ``prioritised`` that the ticket was moved to the top for a danger message;
    ``closed`` that this message closed it (kind ``leave``, outcome ``user_left``).
    """

    ticket_id: Optional[str]
    status: Optional[str]
    hold: bool
    prioritised: bool = False
    closed: bool = False

    def to_json(self) -> Dict[str, Any]:
        """The JSON object the desk answers with."""
        return {"ticket_id": self.ticket_id, "status": self.status, "hold": self.hold,
                "prioritised": self.prioritised, "closed": self.closed}

    @classmethod
    def from_json(cls, data: Any) -> PausedAnswer:
        """The answer in ``data`` (parsed JSON); missing flags read as False. Raises ContractError."""
        if not isinstance(data, Mapping):
            raise ContractError("the answer must be a JSON object")
        ticket_id, status = data.get("ticket_id"), data.get("status")
        if ticket_id is not None and (not isinstance(ticket_id, str) or not ticket_id):
            raise ContractError("'ticket_id' must be null or a non-empty string")
        if status is not None and status not in TICKET_STATUSES:
            raise ContractError(f"'status' must be null or one of {', '.join(TICKET_STATUSES)}")
        flags = [data.get(key, False) for key in ("hold", "prioritised", "closed")]
        if not all(isinstance(flag, bool) for flag in flags):
            raise ContractError("'hold', 'prioritised' and 'closed' must be true or false")
        return cls(ticket_id=ticket_id, status=status, hold=flags[0], prioritised=flags[1], closed=flags[2])
