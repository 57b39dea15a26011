"""Hand a conversation over: open a ticket and decide what the user is told (used by ``action_handoff``).

:func:`open_handoff` is the whole decision, testable without Rasa: if the desk answers its health check and
the ticket store accepts the ticket, the conversation is queued (the action then pauses it) and the user is
told what happens next, with the configured opening hours; otherwise the user gets the honest
``unavailable`` answer with the bank's own channel.
"""
from __future__ import annotations

import datetime as dt
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

from bot.handoff.config import HandoffSettings
from bot.handoff.priority import PRIORITY_DISTRESS, REASON_FALLBACK, handoff_reason, ticket_priority
from bot.handoff.store import NewTicket, Ticket, TicketStore
from bot.handoff.summary import build_summary, intents_seen, transcript
from bot.knowledge import Knowledge
from bot.replies import ReplyInstruction, bank_line, identify_institution

logger = logging.getLogger(__name__)

DESK_HEALTH_TIMEOUT_SECONDS = 2.0
"""How long the action waits for the desk's health check before answering ``unavailable``."""


@dataclass(frozen=True)
class HandoffContext:
    """The conversation as the action sees it: ``events`` and ``slots`` from the tracker, the latest user
    intent and text (already masked by the channel), and the input channel's name."""

    sender_id: str
    channel: Optional[str]
    events: List[Mapping[str, Any]]
    slots: Mapping[str, Any]
    latest_intent: Optional[str]
    latest_text: str = ""


@dataclass(frozen=True)
class HandoffResult:
    """What to do: send ``replies`` in order; ``queued`` means a ticket is open and the bot must pause."""

    replies: List[ReplyInstruction]
    queued: bool
    ticket: Optional[Ticket] = None
    problem: Optional[str] = None


def desk_is_up(desk_url: Optional[str], timeout: float = DESK_HEALTH_TIMEOUT_SECONDS) -> bool:
    """True if ``desk_url``/health answers HTTP 200 within ``timeout`` seconds (False if no URL)."""
    if not desk_url:
        return False
    try:
        with urllib.request.urlopen(f"{desk_url}/health", timeout=timeout) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _unavailable(context: HandoffContext, knowledge: Knowledge, problem: str) -> HandoffResult:
    facts = knowledge.template_values()
    replies = [ReplyInstruction("utter_handoff_unavailable", dict(facts))]
    institution = identify_institution(context.slots.get("bank"), context.latest_text, knowledge)
    if institution is not None:
        replies.append(bank_line(institution, knowledge))
    return HandoffResult(replies=replies, queued=False, problem=problem)


def open_handoff(context: HandoffContext, settings: HandoffSettings, store: Optional[TicketStore],
                 knowledge: Knowledge, now: Optional[dt.datetime] = None,
                 desk_up: Optional[bool] = None) -> HandoffResult:
    """Open (or refresh) the sender's ticket and plan the replies.

    ``store`` None or ``desk_up`` False (default: ask ``settings.desk_url``/health) gives the unavailable
    answer; so does a store error (logged). ``now`` (aware, default the current time) decides whether the desk
    is open. Never raises for a store or network problem.
    """
    if store is None:
        return _unavailable(context, knowledge, "no ticket store")
    if desk_up is None:
        desk_up = desk_is_up(settings.desk_url)
    if not desk_up:
        return _unavailable(context, knowledge, "the agent desk is not configured or not reachable")
    reason = handoff_reason(context.latest_intent)
    events = list(context.events)
    priority = ticket_priority(reason, intents_seen(events), context.slots.get("risk_level"))
    new = NewTicket(
        sender_id=context.sender_id, channel=context.channel, priority=priority, reason=reason,
        summary=build_summary(events, context.slots, knowledge, reason, priority),
        transcript=transcript(events),
    )
    try:
        ticket, _created = store.create_ticket(new)
    except Exception as err:  # noqa: BLE001 - any store failure means we cannot promise an agent
        logger.exception("Could not store a handoff ticket: %s", type(err).__name__)
        return _unavailable(context, knowledge, "the ticket store failed")

    facts = knowledge.template_values()
    hours = settings.opening_hours
    variables = {**facts, "opening_hours": hours.describe(), "ticket_id": ticket.id}
    replies: List[ReplyInstruction] = []
    if reason == REASON_FALLBACK:
        replies.append(ReplyInstruction("utter_handoff_after_fallback", dict(facts)))
    moment = now or dt.datetime.now(dt.UTC)
    if hours.is_open(moment):
        replies.append(ReplyInstruction("utter_handoff_queued", variables))
    else:
        replies.append(ReplyInstruction("utter_handoff_queued_after_hours", variables))
        institution = identify_institution(context.slots.get("bank"), context.latest_text, knowledge)
        if institution is not None:
            replies.append(bank_line(institution, knowledge))
        if priority == PRIORITY_DISTRESS:
            replies.append(ReplyInstruction("utter_handoff_distress_reminder", dict(facts)))
    return HandoffResult(replies=replies, queued=True, ticket=ticket)
