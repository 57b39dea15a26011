"""The one way an action sends what a planner in ``bot/`` decided: the turn is cut to its limits
(bot.details.fit_turn: what does not fit goes behind a detail button), then each ReplyInstruction becomes one
``utter_message`` of its domain response, which Rasa's NLG fills with the instruction's variables.

Each message also carries ``knowledge_version`` (bot.knowledge.default_knowledge_version): Rasa keeps an
action's extra message keys in the ``BotUttered`` event's metadata, so the compliance record knows which version
of ``data/knowledge/`` the facts shown came from. No response text uses it.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.crisis_reminder import reminder_due
from bot.details import PENDING_SLOT, default_details, fit_action_turn, pending_value
from bot.knowledge import default_knowledge, default_knowledge_version
from bot.replies import ReplyInstruction


def turn_so_far(tracker: Optional[Tracker]) -> Tuple[List[str], int]:
    """The responses the bot already sent in this turn (since the latest user message) and their characters."""
    names: List[str] = []
    chars = 0
    for event in reversed(list(tracker.events) if tracker is not None else []):
        if event.get("event") == "user":
            break
        if event.get("event") == "bot":
            names.append(str((event.get("metadata") or {}).get("utter_action") or "bot_message"))
            chars += len(event.get("text") or "")
    return names, chars


def send_replies(dispatcher: CollectingDispatcher, replies: Iterable[ReplyInstruction],
                 tracker: Optional[Tracker] = None, reserved_bubbles: int = 0,
                 handoff_follows: bool = False) -> List[Dict[Text, Any]]:
    """Queue ``replies`` on ``dispatcher`` in order (``response=<name>``, placeholders and buttons as keyword
    arguments, and ``knowledge_version``), cut to the turn's limits; return the ``pending_details`` SlotSet
    when something went behind a button (else no event).

    ``tracker``: what this turn already sent counts against the limits, and room is kept for the crisis
    reminder when one may follow (bot.crisis_reminder); ``reserved_bubbles``: messages the caller sends after
    these (a channel card); ``handoff_follows``: the rules run the hand-over next in this turn."""
    before, chars = turn_so_far(tracker)
    hotline = default_knowledge().template_values().get("psychological_hotline", "")
    reminder = tracker is not None and reminder_due(list(tracker.events), [], hotline)
    fitted = fit_action_turn(list(replies), default_details(), before, chars, reminder, reserved_bubbles,
                             handoff_follows)
    version = default_knowledge_version()
    for reply in fitted.replies:
        extra: Dict[str, Any] = {"buttons": list(reply.buttons)} if reply.buttons else {}
        dispatcher.utter_message(response=reply.response,
                                 **{"knowledge_version": version, **reply.variables, **extra})
    if not fitted.deferred:
        return []
    previous = tracker.get_slot(PENDING_SLOT) if tracker is not None else None
    return [SlotSet(PENDING_SLOT, pending_value(fitted, previous if isinstance(previous, dict) else None))]
