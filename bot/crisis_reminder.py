"""While a person who was given the crisis answer waits for a human, every reply names the hotline.

After ``utter_support_distress`` (danger: bot.guidance.distress_reading) the bot keeps talking when no agent
can answer, and a person may write about other things (the bank, the form, "谢谢"). For the next
REMINDER_USER_TURNS user messages, until an agent joins, a turn whose replies do not name the psychological
assistance hotline is followed by ``utter_crisis_reminder`` (12356 and 110/120 from data/knowledge/): the
route of shared/DOMAIN.md §4 stays one glance away. Pure functions over Rasa's event JSON; the turn
supervisor (bot/channels/) calls them after each turn.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

CRISIS_RESPONSE = "utter_support_distress"
"""The crisis answer; a BotUttered carrying it (``metadata.utter_action``) starts the reminders."""

REMINDER_RESPONSE = "utter_crisis_reminder"
"""The reminder sent after a turn that did not name the hotline."""

REMINDER_USER_TURNS = 10
"""How many user messages after the crisis answer get the reminder (a count, not a time: a person who writes
again an hour later is still the person who said it)."""

AGENT_PRESENT_KINDS = frozenset({"agent_joined", "agent_message"})
"""``metadata.handoff.kind`` of the desk's BotUttered events that mean a person is talking with the user."""


def _metadata(event: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = event.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def reminder_due(events: Sequence[Mapping[str, Any]], turn_texts: Iterable[str], hotline: str) -> bool:
    """True when the turn that just ended needs ``utter_crisis_reminder``.

    ``events``: the conversation's events (Rasa's JSON form, oldest first), this turn's user message included;
    ``turn_texts``: the texts sent to the user in this turn; ``hotline``: the psychological assistance hotline
    (knowledge key ``psychological_hotline``). Due when a crisis answer was given within the last
    REMINDER_USER_TURNS user messages, no agent has joined since, and no text of this turn names the hotline.
    """
    if any(hotline in (text or "") for text in turn_texts):
        return False
    user_messages = 0
    for event in reversed(events):
        kind = event.get("event")
        if kind == "user":
            user_messages += 1
            if user_messages > REMINDER_USER_TURNS:
                return False
        elif kind == "bot":
            metadata = _metadata(event)
            handoff = metadata.get("handoff")
            if isinstance(handoff, Mapping) and handoff.get("kind") in AGENT_PRESENT_KINDS:
                return False
            if metadata.get("utter_action") == CRISIS_RESPONSE:
                return user_messages >= 1
    return False
