"""Hand conversations to a human agent (logic in ``bot/handoff/``).

* ``action_handoff`` reads the tracker, sends a ticket to the agent desk over the desk's intake API (the
  action server never touches the ticket database, so it runs with rasa-sdk alone), sends the planned
  replies and pauses the conversation (``ConversationPaused``) only when a person can answer now (an agent on
  duty, the desk reachable, a channel that can receive agent messages; bot.handoff.intake). Rasa then stores
  the user's messages without predicting; the gate (bot.handoff.paused) still answers danger, a wish to leave
  the queue and a desk that is gone. Otherwise the ticket is a follow-up record: the bot answers honestly
  and listens again.
* Repeated misunderstandings reach ``action_handoff`` through ``action_clarify_or_answer_risk``
  (actions/guidance_actions.py), which hands over the second ``nlu_fallback`` in a row.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from actions.replies import send_replies
from bot.handoff.intake import DeskClient, HandoffContext, HttpDeskClient, open_handoff
from bot.knowledge import default_knowledge

logger = logging.getLogger(__name__)


def desk_client() -> Optional[DeskClient]:
    """The agent desk's intake API from ``HANDOFF_DESK_URL`` / ``HANDOFF_INTAKE_TOKEN`` (None: no desk).

    Read at every hand-over, so that a desk started or moved later is found without restarting the action
    server.
    """
    return HttpDeskClient.from_env()


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
        """Send the planned replies; return ``[ConversationPaused()]`` if a person can answer now, else a
        follow-up ``action_listen`` (so the bot listens again whichever route led here).

        Never raises for a configuration, desk or network problem: those give the ``unavailable`` answer. The
        desk call (at most a few seconds, bot.handoff.intake.DESK_TIMEOUT_SECONDS) runs in a worker thread.
        """
        result = await asyncio.to_thread(open_handoff, handoff_context(tracker), desk_client(), default_knowledge())
        if result.problem:
            logger.warning("Handoff unavailable for one conversation: %s", result.problem)
        events = send_replies(dispatcher, result.replies, tracker)
        return events + ([ConversationPaused()] if result.queued else [FollowupAction("action_listen")])
