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


@dataclass(frozen=True)
class IntakeAnswer:
    """The desk's answer: the ticket's id, whether it was ``created`` (False: the sender's open ticket was
    refreshed), whether agents are at the desk now (``open_now``) and the opening hours in Chinese."""

    ticket_id: str
    created: bool
    open_now: bool
    opening_hours: str

    def to_json(self) -> Dict[str, Any]:
        """The JSON object the desk answers with."""
        return {"ticket_id": self.ticket_id, "created": self.created, "open_now": self.open_now,
                "opening_hours": self.opening_hours}

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
        return cls(ticket_id=ticket_id, created=created, open_now=open_now, opening_hours=hours)
