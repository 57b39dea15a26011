"""``action_give_detail``: answers a detail button (``/ask_detail{"detail":"<id>"}``) with what the turn moved
behind it (logic: bot.details.plan_detail)."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.replies import send_replies
from bot.details import DETAIL_ENTITY, PENDING_SLOT, default_details, plan_detail
from bot.knowledge import default_knowledge


class ActionGiveDetail(Action):
    """Send the detail named by the payload's ``detail`` entity, cut to the turn limits like every turn."""

    def name(self) -> Text:
        """The action's name in the domain: ``action_give_detail``."""
        return "action_give_detail"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        """The detail's replies (or ``utter_detail_unknown``); a SlotSet if part of it went behind a button."""
        detail_id = next(tracker.get_latest_entity_values(DETAIL_ENTITY), None)
        pending = tracker.get_slot(PENDING_SLOT)
        replies = plan_detail(detail_id, pending if isinstance(pending, dict) else None, default_knowledge(),
                              default_details())
        return send_replies(dispatcher, replies, tracker)
