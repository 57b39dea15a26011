"""One custom action per core intent, each answering it with ``bot.guidance.plan_guidance``.

The logic (which responses, which facts, which bank) lives in ``bot/guidance.py``; an action here only reads
the tracker into a :class:`bot.guidance.ConversationState`, sends the planned responses and sets the slots
the plan established.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.guidance import ConversationState, plan_guidance
from bot.knowledge import default_knowledge


def conversation_state(tracker: Tracker) -> ConversationState:
    """Read what the guidance needs from the tracker (latest text and the bank/debt_type slots)."""
    return ConversationState(
        latest_message=tracker.latest_message.get("text") or "",
        bank=tracker.get_slot("bank"),
        debt_type=tracker.get_slot("debt_type"),
    )


class GuidanceAction(Action):
    """Answer ``topic`` with the planned responses. Subclasses set ``topic`` and ``action_name``."""

    topic: Text = ""
    action_name: Text = ""

    def name(self) -> Text:
        return self.action_name

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        plan = plan_guidance(self.topic, conversation_state(tracker), default_knowledge())
        for reply in plan.replies:
            dispatcher.utter_message(response=reply.response, **reply.variables)
        return [SlotSet(name, value) for name, value in plan.slots.items()]


def _guidance_action(topic: Text, action_name: Text) -> type:
    return type(
        "".join(part.title() for part in action_name.split("_")),
        (GuidanceAction,),
        {"topic": topic, "action_name": action_name, "__doc__": f"Answers `{topic}` ({action_name})."},
    )


ACTION_FOR_TOPIC = {
    "seek_debt_agency": "action_warn_debt_agency",
    "seek_credit_repair": "action_warn_credit_repair",
    "agency_victim": "action_support_agency_victim",
    "ask_evade_debt": "action_explain_evasion_risk",
    "ask_legal_risk": "action_explain_legal_risk",
    "ask_hardship_plan": "action_guide_hardship_plan",
    "report_collection_abuse": "action_guide_collection_complaint",
    "ask_credit_record": "action_answer_credit_record",
    "ask_complaint_channel": "action_list_complaint_channels",
    "express_distress": "action_support_distress",
}
"""Core intent -> the action that answers it (the same pairs as the rules in data/dialogue/). ``request_human``
is answered by ``action_handoff`` (actions/handoff_actions.py)."""

GUIDANCE_ACTIONS = [_guidance_action(topic, name) for topic, name in ACTION_FOR_TOPIC.items()]
globals().update({cls.__name__: cls for cls in GUIDANCE_ACTIONS})
