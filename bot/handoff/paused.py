"""The paused-conversation gate: a conversation waiting for (or talking with) a human still gets an answer
when it matters.

While a conversation is paused (``ConversationPaused``), Rasa stores the user's messages without predicting,
so nothing of the bot answers. Hooked into every channel's message wrapper (bot.channels.guard), this gate
looks at each message to a paused conversation and asks the desk about it (``POST
/api/intake/paused-message``, bot.handoff.contract.PausedMessage, within ``HANDOFF_GATE_TIMEOUT_SECONDS``,
default 1.5 s):

* the desk cannot be reached, or holds no open ticket for the sender that a person can answer (none, or only a
  follow-up record): the conversation is resumed (``ConversationResumed``) with an honest note and the
  message goes on to the bot, which answers it;
* the message reads as danger (bot.crisis.reads_as_danger): the care message with the psychological
  assistance hotline and 110/120 goes out at once (``utter_handoff_distress_while_waiting``), the desk moves
  the ticket to the top with the sentence for the agents, and the message is stored for them;
* the message is a wish to leave the queue (data/handoff/leave_phrases.yml: "不等了", "继续和机器人聊"...):
  the desk closes the ticket (``user_left``), the conversation is resumed and the user told; ``/restart``
  also closes it and then goes on to Rasa, which restarts the conversation;
* otherwise the message is stored for the agent (Rasa, paused, does not answer it).

:func:`plan_paused_reply` is the decision, free of servers; :func:`gate_paused_message` carries it out on the
Rasa server (tracker store, lock store, the message's output channel). The texts are domain responses filled
with knowledge values (bot.texts.render_response), as the desk renders its own.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Protocol

from bot.handoff.contract import PAUSED_MESSAGE_PATH, ContractError, PausedAnswer, PausedMessage
from bot.handoff.decision import is_restart_command, read_paused_message
from bot.handoff.intake import _OPENER, DeskUnavailable

logger = logging.getLogger(__name__)

GATE_TIMEOUT_SECONDS = 1.5
"""Default wait for the desk's answer, in seconds: the user is waiting meanwhile."""

GATE_POLICY = "handoff_gate"
"""The ``policy`` recorded on the ``action_listen`` the gate appends when it resumes a conversation."""


class GateDesk(Protocol):
    """What the gate needs from the desk: one call reporting the message."""

    def report(self, message: PausedMessage) -> PausedAnswer:
        """Tell the desk; its answer. Raises DeskUnavailable when the desk cannot be reached in time."""
        ...


class HttpGateDesk:
    """POST PausedMessages to the desk at ``base_url`` with ``token`` (the service token or Rasa's API token,
    bot.handoff.auth.GateAuth), the whole exchange bounded by ``timeout`` seconds. Synchronous (call it from a
    worker thread); no proxy, no redirects."""

    def __init__(self, base_url: str, token: Optional[str], timeout: float = GATE_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Optional[HttpGateDesk]:
        """The client for ``HANDOFF_DESK_URL`` with ``HANDOFF_INTAKE_TOKEN`` or else ``RASA_AUTH_TOKEN`` and
        ``HANDOFF_GATE_TIMEOUT_SECONDS``; None without a desk URL. Raises ValueError for a bad timeout."""
        env = os.environ if env is None else env
        url = (env.get("HANDOFF_DESK_URL") or "").strip()
        if not url:
            return None
        token = (env.get("HANDOFF_INTAKE_TOKEN") or env.get("RASA_AUTH_TOKEN") or "").strip() or None
        timeout = float(env.get("HANDOFF_GATE_TIMEOUT_SECONDS") or GATE_TIMEOUT_SECONDS)
        if not 0 < timeout <= 10:
            raise ValueError("HANDOFF_GATE_TIMEOUT_SECONDS must be between 0 and 10")
        return cls(url, token, timeout)

    def report(self, message: PausedMessage) -> PausedAnswer:
        """Post ``message``; the desk's answer. Raises DeskUnavailable (no token, unreachable, slow, not 2xx,
        malformed answer)."""
        if not self.token:
            raise DeskUnavailable("no token for the desk (HANDOFF_INTAKE_TOKEN or RASA_AUTH_TOKEN)")
        outcome: List[Any] = []

        def exchange() -> None:
            try:
                outcome.append(self._post(message))
            except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
                outcome.append(err)

        worker = threading.Thread(target=exchange, name="desk-gate", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not outcome:
            raise DeskUnavailable(f"the agent desk did not answer within {self.timeout:g} s")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        answer: PausedAnswer = outcome[0]
        return answer

    def _post(self, message: PausedMessage) -> PausedAnswer:
        body = json.dumps(message.to_json(), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.base_url + PAUSED_MESSAGE_PATH, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {self.token}"})
        try:
            with _OPENER.open(request, timeout=self.timeout) as answer:
                data = json.loads(answer.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            raise DeskUnavailable(f"the agent desk answered HTTP {err.code}") from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise DeskUnavailable(f"the agent desk is not reachable: {type(err).__name__}") from err
        try:
            return PausedAnswer.from_json(data)
        except ContractError as err:
            raise DeskUnavailable(f"the agent desk's answer is malformed: {err}") from err


@dataclass(frozen=True)
class GatePlan:
    """What the gate does with one message: send ``replies`` (response names) at once, ``resume`` the
    conversation (the bot answers again), and pass the message on to Rasa (``pass_on``: False only for a
    wish to leave, which the replies already answer). ``ticket_id`` fills the responses' payloads."""

    kind: str
    replies: List[str] = field(default_factory=list)
    resume: bool = False
    pass_on: bool = True
    ticket_id: Optional[str] = None


def plan_paused_reply(text: str, answer: Optional[PausedAnswer]) -> GatePlan:
    """The gate's decision for ``text`` sent to a paused conversation, given the desk's ``answer`` (None: the
    desk could not be reached). Danger always gets the crisis hotlines first."""
    kind = read_paused_message(text)
    restart = is_restart_command(text)
    danger = kind == "danger"
    if answer is None:
        replies = (["utter_handoff_distress_reminder"] if danger else []) + ["utter_handoff_desk_unreachable"]
        return GatePlan(kind, replies, resume=True, pass_on=kind != "leave" or restart)
    if kind == "leave":
        if restart:
            return GatePlan(kind, [], resume=True, pass_on=True, ticket_id=answer.ticket_id)
        note = "utter_handoff_user_left" if answer.closed else "utter_handoff_no_open_ticket"
        return GatePlan(kind, [note], resume=True, pass_on=False, ticket_id=answer.ticket_id)
    if answer.ticket_id is None or not answer.hold:
        note = "utter_handoff_returned_to_bot" if answer.status == "follow_up" else "utter_handoff_no_open_ticket"
        replies = (["utter_handoff_distress_reminder"] if danger else []) + [note]
        return GatePlan(kind, replies, resume=True, pass_on=True, ticket_id=answer.ticket_id)
    if danger:
        care = "utter_handoff_distress_while_waiting" if answer.prioritised else "utter_handoff_distress_reminder"
        return GatePlan(kind, [care], resume=False, pass_on=True, ticket_id=answer.ticket_id)
    return GatePlan(kind, [], resume=False, pass_on=True, ticket_id=answer.ticket_id)


def _rendered(plan: GatePlan) -> List[Dict[str, Any]]:
    from bot.knowledge import default_knowledge
    from bot.texts import render_response

    values = {**default_knowledge().template_values(), "ticket_id": plan.ticket_id or ""}
    return [render_response(name, values) for name in plan.replies]


def _rasa_agent() -> Any:
    """The Rasa server's Agent (``app.ctx.agent`` of the running Sanic app), or None outside a Rasa server."""
    from sanic import Sanic

    for name in ("rasa_server", "rasa_core_no_api"):
        try:
            agent = getattr(Sanic.get_app(name).ctx, "agent", None)
        except Exception:  # noqa: BLE001 - SanicException when no app of that name is registered
            continue
        if agent is not None:
            return agent
    return None


def _bot_uttered(message: Dict[str, Any], plan: GatePlan) -> Any:
    from rasa.shared.core.events import BotUttered

    data = {"custom": message["custom"]} if message.get("custom") else {}
    return BotUttered(message.get("text"), data=data,
                      metadata={"handoff": {"ticket_id": plan.ticket_id, "kind": f"gate_{plan.kind}"}})


async def _append(agent: Any, sender_id: str, events: List[Any]) -> None:
    async with agent.lock_store.lock(sender_id):
        tracker = await agent.tracker_store.retrieve(sender_id)
        if tracker is None:
            return
        for event in events:
            tracker.update(event)
        await agent.tracker_store.save(tracker)


PAUSE_STATE_EVENTS = ("pause", "resume", "restart", "session_started", "rewind", "undo")
"""The ``type_name`` of the events that can change whether a tracker is paused: ConversationPaused and
ConversationResumed set and clear it, Restarted and SessionStarted reset the tracker (unpaused), and
UserUtteranceReverted and ActionReverted replay it (Rasa 3.6, rasa/shared/core/events.py)."""

NOT_PAUSED_MARKERS = frozenset({"", "resume", "restart", "session_started"})
"""Latest pause-state events (``""``: none at all) after which the conversation is certainly not paused."""


def latest_pause_marker(store: Any, sender_id: str) -> Optional[str]:
    """The ``type_name`` of the conversation's latest PAUSE_STATE_EVENTS event in a SQL tracker store (one
    indexed query of one row; ``""`` when it has none), or None when that cannot tell: not a SQL store (or
    Rasa's wrappers around one), a conversation with a tracker still pending in memory
    (bot.tracker_store.BufferedSQLTrackerStore), or a failed query. Never raises."""
    from rasa.core.tracker_store import SQLTrackerStore

    from bot.channels.turns import primary_tracker_store

    primary = primary_tracker_store(store)
    if not isinstance(primary, SQLTrackerStore) or sender_id in getattr(primary, "pending", {}):
        return None
    event = primary.SQLEvent
    try:
        with primary.session_scope() as session:
            row = (session.query(event.type_name)
                   .filter(event.sender_id == sender_id, event.type_name.in_(PAUSE_STATE_EVENTS))
                   .order_by(event.id.desc()).limit(1).first())
    except Exception as err:  # noqa: BLE001 - the full read below decides (fail-safe, as before)
        logger.debug("Pause marker query failed: %s", err)
        return None
    return "" if row is None else str(row[0])


async def _is_paused(agent: Any, sender_id: str) -> bool:
    """Whether the conversation is paused now. The common answer, not paused, comes from one query of one row
    (:func:`latest_pause_marker`); only a conversation whose latest such event is a pause (or a revert, or a
    store that cannot say) is read whole, for Rasa's own ``is_paused`` and session expiry."""
    if latest_pause_marker(agent.tracker_store, sender_id) in NOT_PAUSED_MARKERS:
        return False
    tracker = await agent.tracker_store.retrieve(sender_id)
    if tracker is None or not tracker.is_paused():
        return False
    try:  # an expired session starts anew, unpaused (Rasa's session handling): nothing to gate
        return not agent.processor._has_session_expired(tracker)
    except Exception:  # noqa: BLE001 - a private Rasa helper; without it, gate as paused
        return True


def desk_for_gate() -> Optional[GateDesk]:
    """The desk from the environment (read at each message, so a desk started later is found), or None."""
    try:
        return HttpGateDesk.from_env()
    except ValueError as err:
        logger.error("Paused-conversation gate: %s", err)
        return None


async def gate_paused_message(message: Any, on_new_message: Callable[[Any], Awaitable[None]],
                              desk: Optional[GateDesk] = None, agent: Any = None) -> bool:
    """Handle ``message`` (a screened rasa UserMessage) if its conversation is paused.

    Returns False when the conversation is not paused (or this is not a Rasa server): the caller passes the
    message on as usual. Returns True when the gate handled it (replied, resumed, passed it on itself or kept
    it back). Never raises for a desk problem: an unreachable desk resumes the bot.
    """
    agent = agent if agent is not None else _rasa_agent()
    if agent is None or not await _is_paused(agent, message.sender_id):
        return False
    from rasa.shared.core.constants import ACTION_LISTEN_NAME
    from rasa.shared.core.events import ActionExecuted, ConversationResumed

    text = message.text or ""
    kind = read_paused_message(text)
    desk = desk if desk is not None else desk_for_gate()
    answer: Optional[PausedAnswer] = None
    if desk is not None:
        report = PausedMessage(message.sender_id, kind, text if kind == "danger" else None)
        try:
            answer = await asyncio.to_thread(desk.report, report)
        except DeskUnavailable as err:
            logger.warning("Paused conversation, desk unavailable; resuming the bot: %s", err)
        except Exception as err:  # noqa: BLE001 - any failure means no person is known to be there
            logger.error("Paused conversation, the desk client failed (%s); resuming the bot", type(err).__name__)
    plan = plan_paused_reply(text, answer)
    rendered = _rendered(plan)
    if plan.resume:
        await _append(agent, message.sender_id,
                      [ConversationResumed(), ActionExecuted(ACTION_LISTEN_NAME, policy=GATE_POLICY)]
                      + [_bot_uttered(m, plan) for m in rendered])
    for reply in rendered:
        await message.output_channel.send_response(message.sender_id, reply)
    if plan.pass_on:
        await on_new_message(message)
    if rendered and not plan.resume:
        await _append(agent, message.sender_id, [_bot_uttered(m, plan) for m in rendered])
    return True
