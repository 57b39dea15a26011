"""Supervise each dialogue turn so that every user message gets a useful reply within a few seconds.

:func:`supervise_turns` wraps the ``on_new_message`` callback (``Agent.handle_message``) that Rasa gives each
input channel; ``bot.channels.guard`` composes it after screening. Per message it

1. puts a :class:`WatchedOutput` between the dialogue and the channel, which forwards and counts what the
   dialogue sends;
2. runs the turn with a deadline (``TURN_DEADLINE`` seconds, ``$TURN_DEADLINE_SECONDS``), and alongside it
   one probe of the action server's health (at most ``action_watch.PROBE_TIMEOUT`` seconds);
3. judges the outcome (:func:`judge`): the turn ``answered``; or it ``failed`` (raised: e.g. the lock store or
   the tracker store failed), ``timed_out``, was ``silent`` (sent nothing: typically every custom action
   failed), or was ``degraded`` (sent something while the action server failed or is known down:
   bot.channels.action_watch);
4. in every case but ``answered`` and ``paused``, sends the outage reply itself: ``utter_outage_fallback`` (the official
   route: the bank's own service number, 12378 and the mini-program), or ``utter_outage_fallback_danger``
   (12356 and 110/120 first) when the message reads as danger (``bot.crisis.reads_as_danger``) or the NLU
   reads it as ``express_distress``; a silent turn while nothing is down gets ``utter_clarify`` instead of
   the outage reply (unless it reads as danger). Texts are domain responses filled from ``data/knowledge/``.
5. after the crisis answer, until an agent joins, follows a turn that did not name the hotline with
   ``utter_crisis_reminder`` (bot.crisis_reminder);
6. records the outage reply in the tracker in the background (never delaying the reply), under the
   conversation's lock; when the turn left no record of the user's message (it timed out or failed before
   saving), the message is recorded with it, so the conversation's record is complete. If the store (or the
   lock store) is down the record is tried again every ``RECORD_RETRY_SECONDS`` until ``RECORD_TIMEOUT``, so a
   short outage (a restarted Redis) loses no turn; it is then appended after any turn answered meanwhile. After
   that it is skipped, and logged.

The late reply: a timed-out turn is cancelled and its output is sealed first, so nothing it sends afterwards
reaches the user (dropped, logged). Cancellation happens at an ``await``: Rasa saves a turn's tracker once,
at the end, and the SQL store writes all of a turn's events in one transaction, so a cancelled turn leaves
either its whole record or none. The one exception is code that blocks the event loop (a synchronous
database call hanging); nothing can answer then, which is why the database URL sets a connect timeout.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional

from rasa.core.channels.channel import OutputChannel, UserMessage

from bot.channels import action_watch
from bot.crisis import reads_as_danger
from bot.crisis_reminder import REMINDER_RESPONSE, REMINDER_USER_TURNS, reminder_due

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[None]]

TURN_DEADLINE = float(os.environ.get("TURN_DEADLINE_SECONDS", "6"))
"""Seconds a turn may take before the supervisor answers it (longer than the action server's timeout,
bot.channels.action_watch.DEFAULT_ACTION_TIMEOUT, so a failed call still leaves time for the rest)."""

RECORD_TIMEOUT = 30.0
"""Seconds the background recording of an outage reply may take (lock wait and retries included) before it
gives up."""

RECORD_RETRY_SECONDS = 1.0
"""Seconds between two attempts to record an outage reply while the tracker or lock store is down."""

FALLBACK = "utter_outage_fallback"
"""The outage reply: the official route."""

FALLBACK_DANGER = "utter_outage_fallback_danger"
"""The outage reply to a message that reads as danger: 12356 and 110/120, then the official route."""

CLARIFY = "utter_clarify"
"""The reply to a turn that was silent while nothing was down (the dialogue predicted no reply): ask again,
rather than claim an outage."""

DISTRESS_INTENT = "express_distress"
"""The intent that makes the outage reply the danger one."""


class Outcome(enum.StrEnum):
    """How a supervised turn ended; every value but ``answered`` and ``paused`` (a silent turn of a conversation
    paused for a human agent: Rasa predicts nothing then, by design) gets the outage reply."""

    ANSWERED = "answered"
    PAUSED = "paused"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SILENT = "silent"
    DEGRADED = "degraded"


class WatchedOutput(OutputChannel):
    """An output channel that forwards to ``inner``, keeps what it forwarded in ``sent``, and after
    :meth:`seal` drops (and logs) whatever a late turn still sends. Other attributes are the inner channel's
    (e.g. ``messages`` of Rasa's collecting channel)."""

    def __init__(self, inner: OutputChannel) -> None:
        self.inner = inner
        self.sent: List[Dict[str, Any]] = []
        self.sealed = False

    def name(self) -> str:
        """The inner channel's name (Rasa reads it to tell channels apart)."""
        return str(self.inner.name())

    def seal(self) -> None:
        """Stop forwarding: the supervisor has answered this turn."""
        self.sealed = True

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        """Forward ``message`` (Rasa's bot message dict) unless sealed."""
        if self.sealed:
            logger.warning("Dropped a late reply of a turn the supervisor already answered (sender %s).",
                           recipient_id)
            return
        self.sent.append(dict(message))  # Rasa's send_response pops keys off the dict it gets
        await self.inner.send_response(recipient_id, message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def judge(*, raised: bool, timed_out: bool, sent: int, action_failures: int, action_server_down: bool) -> Outcome:
    """The outcome of a turn from what the supervisor saw: whether it raised or passed the deadline, how many
    messages it sent, how many calls to the action server failed during it, and whether the server is known
    down now. Timing out outranks raising, which outranks silence, which outranks degradation."""
    if timed_out:
        return Outcome.TIMED_OUT
    if raised:
        return Outcome.FAILED
    if sent == 0:
        return Outcome.SILENT
    if action_failures or action_server_down:
        return Outcome.DEGRADED
    return Outcome.ANSWERED


def fallback_response(text: Optional[str], intent: Optional[str]) -> str:
    """The outage response for a message: FALLBACK_DANGER when ``text`` reads as danger or ``intent`` is
    ``express_distress``, else FALLBACK."""
    return FALLBACK_DANGER if reads_as_danger(text) or intent == DISTRESS_INTENT else FALLBACK


def render_fallback(name: str) -> Dict[str, Any]:
    """Response ``name`` rendered with the knowledge values, as a bot message dict (``{"text": ...}``)."""
    from bot.knowledge import default_knowledge
    from bot.texts import render_response

    return render_response(name, default_knowledge().template_values())


@dataclass
class TurnServices:
    """What the supervisor needs from the running Rasa server, each replaceable in tests.

    * ``agent``: returns the running ``rasa.core.agent.Agent`` or None (then nothing is parsed or recorded);
    * ``watch``: the action server's watch;
    * ``render``: response name -> bot message dict;
    * ``deadline``: seconds per turn.
    """

    agent: Callable[[], Any] = field(default=lambda: current_agent())
    watch: action_watch.ActionServerWatch = field(default_factory=lambda: action_watch.WATCH)
    render: Callable[[str], Dict[str, Any]] = render_fallback
    deadline: float = TURN_DEADLINE


def current_agent() -> Any:
    """The agent of the Rasa server running in this process (``app.ctx.agent`` of Rasa's Sanic app), or None."""
    from sanic import Sanic

    for name in ("rasa_server", "rasa_core_no_api"):
        try:
            app = Sanic.get_app(name)
        except Exception:  # noqa: BLE001  (Sanic raises SanicException for an unknown name)
            continue
        return getattr(app.ctx, "agent", None)
    return None


async def intent_of(agent: Any, text: str, timeout: float = 2.0) -> Optional[str]:
    """The intent the agent's NLU gives ``text``, or None (no agent, an error, or more than ``timeout`` s)."""
    if agent is None or not text:
        return None
    try:
        parsed = await asyncio.wait_for(agent.parse_message(text), timeout)
    except Exception as err:  # noqa: BLE001  (any failure means: no intent to go by)
        logger.warning("Could not parse a message for the outage reply: %s", err)
        return None
    return ((parsed or {}).get("intent") or {}).get("name")


async def record_fallback(agent: Any, message: UserMessage, sent: List[Dict[str, Any]],
                          marker: str = "outage_fallback") -> bool:
    """Append the supervisor's reply ``sent`` (bot message dicts) to the conversation of ``message`` in the
    tracker store, under the conversation's lock, each BotUttered marked ``metadata[marker] = True``; with the
    user's message first when the store has no record of it (matched by ``message_id``). Returns True when
    recorded, False when the store (or the lock) failed.

    Reads and writes the primary store itself, not Rasa's fail-safe wrapper: a failed read must stop the
    record, not start an empty conversation that a later save would write over the real one.
    """
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

    try:
        store = primary_tracker_store(agent.tracker_store)
        async with agent.lock_store.lock(message.sender_id):
            tracker = await store.retrieve(message.sender_id)
            if tracker is None:
                tracker = await agent.processor.fetch_tracker_with_initial_session(message.sender_id)
            recorded = any(getattr(event, "message_id", None) == message.message_id for event in tracker.events)
            if not recorded:
                parse_data = await _parse_data(agent, message.text)
                tracker.update(UserUttered(message.text, parse_data.get("intent"), parse_data.get("entities"),
                                           parse_data, input_channel=message.input_channel,
                                           message_id=message.message_id, metadata=message.metadata))
            for bot_message in sent:
                tracker.update(BotUttered(bot_message.get("text"), {k: v for k, v in bot_message.items()
                                                                    if k != "text"},
                                          metadata={marker: True}))
            if not recorded:
                tracker.update(ActionExecuted("action_listen"))
            await store.save(tracker)
    except Exception as err:  # noqa: BLE001  (the store is down: the reply went out, the record cannot)
        logger.error("The supervisor's reply (%s) to sender %s was not recorded: %s", marker, message.sender_id, err)
        return False
    return True


async def _parse_data(agent: Any, text: Optional[str]) -> Dict[str, Any]:
    try:
        parsed = await asyncio.wait_for(agent.parse_message(text or ""), 5)
    except Exception:  # noqa: BLE001  (record the text without a parse rather than nothing)
        return {"text": text}
    return dict(parsed or {"text": text})


async def is_paused(agent: Any, sender_id: str, timeout: float = 2.0) -> bool:
    """True when the conversation is paused for a human agent (``ConversationPaused``), so that its silence is
    by design. False when it is not, when there is no agent, or when the store cannot tell within ``timeout``."""
    if agent is None:
        return False
    try:
        tracker = await asyncio.wait_for(primary_tracker_store(agent.tracker_store).retrieve(sender_id), timeout)
    except Exception:  # noqa: BLE001  (cannot tell: answer rather than stay silent)
        return False
    return bool(tracker is not None and tracker.is_paused())


def primary_tracker_store(store: Any) -> Any:
    """The store inside Rasa's ``FailSafeTrackerStore`` and ``AwaitableTrackerStore`` wrappers (their
    ``_tracker_store``), or ``store`` itself."""
    while hasattr(store, "_tracker_store"):
        store = store._tracker_store
    return store


class TurnSupervisor:
    """The ``on_new_message`` wrapper described in the module docstring; call it with a ``UserMessage``.

    ``last_outcome`` is the outcome of the latest turn (for logs and tests); ``background`` holds the recording
    tasks still running.
    """

    def __init__(self, on_new_message: OnNewMessage, services: Optional[TurnServices] = None) -> None:
        self._on_new_message = on_new_message
        self.services = services or TurnServices()
        self.last_outcome: Optional[Outcome] = None
        self.background: set[asyncio.Task] = set()

    async def __call__(self, message: UserMessage) -> None:
        """Run the turn of ``message`` under the deadline; answer it with the outage reply unless it answered."""
        agent = self.services.agent()
        if agent is not None:
            action_watch.install(agent, self.services.watch)
        watched = WatchedOutput(message.output_channel)
        inner = message.output_channel
        message.output_channel = watched
        failures = action_watch.begin_turn()  # the turn's task copies this context, so it appends here
        check = asyncio.ensure_future(self.services.watch.probe_now())
        turn = asyncio.ensure_future(self._on_new_message(message))
        raised = timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(turn), self.services.deadline)
        except TimeoutError:
            timed_out = True
            watched.seal()
            turn.cancel()
            logger.error("A turn of sender %s took over %g s; cancelled, the outage reply sent.",
                         message.sender_id, self.services.deadline)
        except Exception:  # noqa: BLE001  (a failed turn is answered, never silent)
            raised = True
            logger.exception("A turn of sender %s failed; the outage reply is sent.", message.sender_id)
        finally:
            message.output_channel = inner
        watched.seal()
        await self._settle(check)
        outcome = judge(raised=raised, timed_out=timed_out, sent=len(watched.sent), action_failures=len(failures),
                        action_server_down=self.services.watch.down)
        if outcome is Outcome.SILENT and await is_paused(agent, message.sender_id):
            outcome = Outcome.PAUSED
        self.last_outcome = outcome
        if outcome is Outcome.ANSWERED or outcome is Outcome.PAUSED:
            await self._remind_of_the_hotline(agent, message, inner, watched.sent)
            return
        if outcome is Outcome.DEGRADED or outcome is Outcome.SILENT:
            logger.warning("Turn of sender %s: %s (action server: %s); the outage reply is sent.",
                           message.sender_id, outcome.value, "; ".join(failures) or self.services.watch.last_error)
        intent = None if reads_as_danger(message.text) else await intent_of(agent, message.text or "")
        name = fallback_response(message.text, intent)
        if outcome is Outcome.SILENT and not failures and not self.services.watch.down and name == FALLBACK:
            name = CLARIFY
        reply = self.services.render(name)
        try:
            await inner.send_response(message.sender_id, dict(reply))  # a copy: send_response pops its keys
        except Exception:  # noqa: BLE001  (the channel itself is gone: nothing else can reach the user)
            logger.exception("Could not send the outage reply to sender %s.", message.sender_id)
            return
        if agent is not None:
            task = asyncio.ensure_future(self._record(agent, message, [reply]))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def _remind_of_the_hotline(self, agent: Any, message: UserMessage, inner: OutputChannel,
                                     sent: List[Dict[str, Any]]) -> None:
        """After the crisis answer, until an agent joins, a turn that did not name the hotline is followed by
        ``utter_crisis_reminder`` (bot.crisis_reminder). Skipped when the store cannot be read in time."""
        if agent is None:
            return
        from bot.knowledge import default_knowledge
        from bot.tracker_store import recent_events

        hotline = default_knowledge().template_values()["psychological_hotline"]
        texts = [str(m.get("text") or "") for m in sent]
        if any(hotline in text for text in texts):
            return  # this turn named the hotline: nothing to read
        store = primary_tracker_store(agent.tracker_store)
        events = recent_events(store, message.sender_id, REMINDER_USER_TURNS)
        if events is None:  # not a SQL store: read the whole tracker
            try:
                tracker = await asyncio.wait_for(store.retrieve(message.sender_id), 2.0)
            except Exception as err:  # noqa: BLE001  (no record to go by: the turn's own answer stands)
                logger.warning("Could not read the tracker for the hotline reminder: %s", err)
                return
            if tracker is None:
                return
            events = [event.as_dict() for event in tracker.events]
        if not reminder_due(events, texts, hotline):
            return
        reply = self.services.render(REMINDER_RESPONSE)
        try:
            await inner.send_response(message.sender_id, dict(reply))
        except Exception:  # noqa: BLE001  (the channel itself is gone)
            logger.exception("Could not send the hotline reminder to sender %s.", message.sender_id)
            return
        task = asyncio.ensure_future(self._record(agent, message, [reply], "crisis_reminder"))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _settle(self, check: asyncio.Future) -> None:
        """Wait (at most the probe's own timeout) for the probe run alongside the turn."""
        try:
            await asyncio.wait_for(check, action_watch.PROBE_TIMEOUT + 0.5)
        except Exception:  # noqa: BLE001  (a probe that cannot finish says nothing new)
            check.cancel()

    async def _record(self, agent: Any, message: UserMessage, sent: List[Dict[str, Any]],
                      marker: str = "outage_fallback") -> None:
        async def until_recorded() -> None:
            while not await record_fallback(agent, message, sent, marker):
                await asyncio.sleep(RECORD_RETRY_SECONDS)

        try:
            await asyncio.wait_for(until_recorded(), RECORD_TIMEOUT)
        except TimeoutError:
            logger.error("Recording the outage reply to sender %s took over %g s; given up.", message.sender_id,
                         RECORD_TIMEOUT)


def supervise_turns(on_new_message: OnNewMessage, services: Optional[TurnServices] = None) -> OnNewMessage:
    """``on_new_message`` run under a :class:`TurnSupervisor` (see the module docstring)."""
    return TurnSupervisor(on_new_message, services)
