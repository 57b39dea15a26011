"""Hand a conversation over: send a ticket to the agent desk and decide what the user is told (``action_handoff``).

:func:`open_handoff` is the whole decision, testable without Rasa or a desk: it builds the PII-masked ticket,
gives it to a :class:`DeskClient` and plans the replies from the desk's answer. The conversation is paused
(``queued``) only when a person can answer: the desk took the ticket, says agents are on duty (inside the
hours with an agent present) and holds it queued or claimed, and the user's channel can receive an agent's
messages (bot.handoff.decision). Otherwise the ticket is a follow-up record, the bot keeps talking and the
user is told honestly when a person will read it, with the bank's official line; a desk that does not take
the ticket gives the honest ``unavailable`` answer with the bank's own channel.

The action server runs with rasa-sdk alone, so this module reaches the desk over its HTTP API
(:class:`HttpDeskClient`, standard library only), never the ticket database: the desk owns the tickets and
the opening hours. The action server's only handoff settings are ``HANDOFF_DESK_URL`` and
``HANDOFF_INTAKE_TOKEN``.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Protocol

from bot.handoff.contract import INTAKE_PATH, ContractError, IntakeAnswer, NewTicket
from bot.handoff.decision import channel_can_receive_agent
from bot.handoff.priority import PRIORITY_DISTRESS, REASON_FALLBACK, handoff_reason, ticket_priority
from bot.handoff.summary import build_summary, intents_seen, transcript
from bot.knowledge import Knowledge
from bot.replies import ReplyInstruction, bank_line, identify_institution

logger = logging.getLogger(__name__)

DESK_TIMEOUT_SECONDS = 2.0
"""How long the action waits for the desk's answer, in seconds, all in all, before answering ``unavailable``:
the user is waiting for the bot's reply meanwhile."""

NOT_CONFIGURED = "the agent desk is not configured (HANDOFF_DESK_URL is not set)"
"""The problem reported when the action server knows no desk."""


class DeskUnavailable(RuntimeError):
    """The desk did not take the ticket. The message says why and holds no personal data (safe to log)."""


class DeskClient(Protocol):
    """What :func:`open_handoff` needs from the desk: one call that stores the ticket."""

    def open_ticket(self, ticket: NewTicket) -> IntakeAnswer:
        """Store ``ticket`` (or refresh the sender's open one). Raises DeskUnavailable if it was not taken."""
        ...


def read_answer(status: int, body: bytes) -> IntakeAnswer:
    """The desk's answer from an HTTP ``status`` and raw ``body``.

    Raises DeskUnavailable for a status outside 2xx (with the desk's ``error`` text when it sent one, which
    never quotes the ticket) or a body that is not a valid answer.
    """
    try:
        data: Any = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not 200 <= status < 300:
        error = data.get("error") if isinstance(data, dict) else None
        raise DeskUnavailable(error if isinstance(error, str) and error else f"the agent desk answered HTTP {status}")
    try:
        return IntakeAnswer.from_json(data)
    except ContractError as err:
        raise DeskUnavailable(f"the agent desk's answer is malformed: {err}") from err


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: following one would resend the service token, perhaps to another host."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
"""Straight to the desk: no proxy from the environment (it would see the token and the ticket), no redirects."""


class HttpDeskClient:
    """POST tickets to the desk at ``base_url`` (e.g. ``http://127.0.0.1:5056``) with the service ``token``.

    Synchronous (call it from a worker thread). The whole exchange is bounded by ``timeout`` seconds: a desk that
    answers slowly is treated as unreachable. Never uses an HTTP proxy or follows a redirect.
    """

    def __init__(self, base_url: str, token: Optional[str], timeout: float = DESK_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Optional[HttpDeskClient]:
        """The client for ``HANDOFF_DESK_URL`` and ``HANDOFF_INTAKE_TOKEN`` in ``env`` (default ``os.environ``),
        or None when no desk URL is set."""
        env = os.environ if env is None else env
        url = (env.get("HANDOFF_DESK_URL") or "").strip().rstrip("/")
        if not url:
            return None
        return cls(url, (env.get("HANDOFF_INTAKE_TOKEN") or "").strip() or None)

    def open_ticket(self, ticket: NewTicket) -> IntakeAnswer:
        """POST ``ticket`` to the desk's intake route and read its answer.

        Raises DeskUnavailable without a service token, when the desk cannot be reached or does not answer in
        time, answers outside 2xx, or answers with something that is not an IntakeAnswer.
        """
        if not self.token:
            raise DeskUnavailable("HANDOFF_INTAKE_TOKEN is not set")
        outcome: List[Any] = []

        def exchange() -> None:
            try:
                outcome.append(self._post(ticket))
            except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
                outcome.append(err)

        worker = threading.Thread(target=exchange, name="desk-intake", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not outcome:
            raise DeskUnavailable(f"the agent desk at {self.base_url} is not reachable: no answer within "
                                  f"{self.timeout:g} s")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        answer: IntakeAnswer = outcome[0]
        return answer

    def _post(self, ticket: NewTicket) -> IntakeAnswer:
        body = json.dumps(ticket.to_json(), ensure_ascii=False).encode("utf-8")
        try:
            request = urllib.request.Request(self.base_url + INTAKE_PATH, data=body, method="POST", headers={
                "Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {self.token}"})
            with _OPENER.open(request, timeout=self.timeout) as answer:
                return read_answer(answer.status, answer.read())
        except urllib.error.HTTPError as err:
            try:
                payload = err.read()
            except OSError:
                payload = b""
            return read_answer(err.code, payload)
        except (urllib.error.URLError, OSError, ValueError) as err:  # ValueError: a malformed URL
            reason = getattr(err, "reason", err)
            raise DeskUnavailable(f"the agent desk at {self.base_url} is not reachable: "
                                  f"{type(reason).__name__}") from err


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
    """What to do: send ``replies`` in order; ``queued`` means a person can answer now and the bot must pause.

    ``ticket_id`` and ``created`` (False: the sender's open ticket was refreshed) come from the desk;
    ``follow_up`` means the desk keeps the ticket as a record for later while the bot keeps talking;
    ``problem`` says why the handoff is unavailable (no personal data).
    """

    replies: List[ReplyInstruction]
    queued: bool
    ticket_id: Optional[str] = None
    created: Optional[bool] = None
    problem: Optional[str] = None
    follow_up: bool = False


def should_pause(answer: IntakeAnswer, channel: Optional[str]) -> bool:
    """True only when a person can answer now (the desk holds the ticket queued with agents on duty, or an
    agent has it) and the user's ``channel`` can receive the agent's messages."""
    return answer.holds and channel_can_receive_agent(channel)


def new_ticket(context: HandoffContext, knowledge: Knowledge) -> NewTicket:
    """The ticket for ``context``: reason and priority, the summary and the transcript, PII-masked."""
    reason = handoff_reason(context.latest_intent)
    events = list(context.events)
    priority = ticket_priority(reason, intents_seen(events), context.slots.get("risk_level"))
    return NewTicket(
        sender_id=context.sender_id, channel=context.channel, priority=priority, reason=reason,
        summary=build_summary(events, context.slots, knowledge, reason, priority),
        transcript=transcript(events),
    )


def _unavailable(context: HandoffContext, knowledge: Knowledge, problem: str) -> HandoffResult:
    facts = knowledge.template_values()
    replies = [ReplyInstruction("utter_handoff_unavailable", dict(facts))]
    institution = identify_institution(context.slots.get("bank"), context.latest_text, knowledge)
    if institution is not None:
        replies.append(bank_line(institution, knowledge))
    return HandoffResult(replies=replies, queued=False, problem=problem)


def open_handoff(context: HandoffContext, desk: Optional[DeskClient], knowledge: Knowledge) -> HandoffResult:
    """Give the sender's ticket to ``desk`` and plan the replies.

    ``desk`` None (no desk configured) or a desk that does not take the ticket gives the unavailable answer.
    Whether agents are on duty, the ticket's status and the hours the user is told are the desk's answer;
    whether the channel can receive an agent is :func:`bot.handoff.decision.channel_can_receive_agent`.
    Never raises for a desk or network problem (a client that raises something other than DeskUnavailable is
    logged by type only: an exception's message may quote the ticket).
    """
    if desk is None:
        return _unavailable(context, knowledge, NOT_CONFIGURED)
    ticket = new_ticket(context, knowledge)
    try:
        answer = desk.open_ticket(ticket)
    except DeskUnavailable as err:
        return _unavailable(context, knowledge, str(err))
    except Exception as err:  # noqa: BLE001 - any failure means we cannot promise an agent
        logger.error("The desk client failed: %s", type(err).__name__)
        return _unavailable(context, knowledge, f"the desk client failed ({type(err).__name__})")

    facts = knowledge.template_values()
    variables = {**facts, "opening_hours": answer.opening_hours, "ticket_id": answer.ticket_id}
    replies: List[ReplyInstruction] = []
    if ticket.reason == REASON_FALLBACK:
        replies.append(ReplyInstruction("utter_handoff_after_fallback", dict(facts)))
    if should_pause(answer, context.channel):
        replies.append(ReplyInstruction("utter_handoff_queued", variables))
        return HandoffResult(replies=replies, queued=True, ticket_id=answer.ticket_id, created=answer.created)
    follow_up = ("utter_handoff_follow_up" if channel_can_receive_agent(context.channel)
                 else "utter_handoff_follow_up_no_push")
    replies.append(ReplyInstruction(follow_up, variables))
    institution = identify_institution(context.slots.get("bank"), context.latest_text, knowledge)
    if institution is not None:
        replies.append(bank_line(institution, knowledge))
    if ticket.priority == PRIORITY_DISTRESS:
        replies.append(ReplyInstruction("utter_handoff_distress_reminder", dict(facts)))
    return HandoffResult(replies=replies, queued=False, ticket_id=answer.ticket_id, created=answer.created,
                         follow_up=True)
