"""Hand conversations to a human agent (logic in ``bot/handoff/``).

* ``action_handoff`` reads the tracker, opens a ticket for the agent desk, sends the planned replies and
  pauses the conversation (``ConversationPaused``) when a ticket is queued. Rasa then stores the user's
  messages without answering them until the agent closes the ticket and the desk resumes the bot. When no
  agent can be reached it answers honestly and listens again.
* Repeated misunderstandings reach ``action_handoff`` through ``action_clarify_or_answer_risk``
  (actions/guidance_actions.py), which hands over the second ``nlu_fallback`` in a row.
"""
from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from actions.replies import send_replies
from bot.handoff.config import HandoffConfigError, HandoffSettings, load_settings
from bot.handoff.intake import HandoffContext, open_handoff
from bot.handoff.store import TicketStore
from bot.knowledge import default_knowledge

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _settings() -> Optional[HandoffSettings]:
    try:
        return load_settings()
    except HandoffConfigError as err:
        logger.error("Handoff is unavailable: %s", err)
        return None


@lru_cache(maxsize=4)
def _store(database_url: str, webhook_enabled: bool) -> TicketStore:
    return TicketStore.from_url(database_url, webhook_enabled=webhook_enabled)


def handoff_context(tracker: Tracker) -> HandoffContext:
    """What the handoff needs from the tracker: sender, channel, events, slots, latest intent and text."""
    return HandoffContext(
        sender_id=tracker.sender_id,
        channel=tracker.get_latest_input_channel(),
        events=list(tracker.events),
        slots=dict(tracker.slots),
        latest_intent=(tracker.latest_message.get("intent") or {}).get("name"),
        latest_text=tracker.latest_message.get("text") or "",
    )


class ActionHandoff(Action):
    """Open a ticket for the agent desk and pause, or say honestly that no agent can be reached."""

    def name(self) -> Text:
        """The action's name in the domain: ``action_handoff``."""
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        """Send the planned replies; return ``[ConversationPaused()]`` if a ticket was queued, else a follow-up
        ``action_listen`` (so the bot listens again whichever route led here).

        Never raises for a configuration, store or network problem: those give the ``unavailable`` answer.
        """
        settings = _settings()
        if settings is None:
            from bot.handoff.hours import OpeningHours

            settings = HandoffSettings(opening_hours=OpeningHours({}))
            store = None
        else:
            store = _store(settings.database_url, bool(settings.webhook_url))
        result = await asyncio.to_thread(open_handoff, handoff_context(tracker), settings, store,
                                         default_knowledge())
        if result.problem:
            logger.warning("Handoff unavailable for one conversation: %s", result.problem)
        send_replies(dispatcher, result.replies)
        return [ConversationPaused()] if result.queued else [FollowupAction("action_listen")]
