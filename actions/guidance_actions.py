"""One custom action per core intent, each answering it with ``bot.guidance.plan_guidance``.

The logic (which responses, which facts, which bank) lives in ``bot/guidance.py``; an action here only reads
the tracker into a :class:`bot.guidance.ConversationState`, sends the planned responses and sets the slots
the plan established.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.handoff.priority import is_repeated_fallback
from bot.guidance import ConversationState, fallback_topic, plan_guidance
from bot.knowledge import default_knowledge
from bot.risk import default_risk_engine

HARDSHIP_FORM_SLOTS = ("bank", "debt_type", "hardship_reason", "monthly_repayment_capacity", "already_overdue")
"""The required slots of hardship_plan_form (domain/hardship.yml)."""


def conversation_state(tracker: Tracker) -> ConversationState:
    """Read what the guidance needs from the tracker: latest text and intent, bank/debt_type and risk slots."""
    return ConversationState(
        latest_message=tracker.latest_message.get("text") or "",
        intent=(tracker.latest_message.get("intent") or {}).get("name"),
        bank=tracker.get_slot("bank"),
        debt_type=tracker.get_slot("debt_type"),
        red_flags=tuple(tracker.get_slot("red_flags") or ()),
        risk_level=tracker.get_slot("risk_level"),
        user_segment=tracker.get_slot("user_segment"),
        hardship_case_complete=all(tracker.get_slot(name) for name in HARDSHIP_FORM_SLOTS),
        referrals=tuple(tracker.get_slot("referrals") or ()),
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
        plan = plan_guidance(self.topic, conversation_state(tracker), default_knowledge(), default_risk_engine())
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


class ActionClarifyOrAnswerRisk(Action):
    """For nlu_fallback and out_of_scope: answer the red flags a message carries, else ask to clarify, and
    hand over to a human (FollowupAction action_handoff) on the second nlu_fallback in a row.

    The worst failure is to miss a person about to pay a seller; a low NLU confidence must not hide the red
    flags the lexicon finds (bot.guidance.fallback_topic).
    """

    def name(self) -> Text:
        return "action_clarify_or_answer_risk"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        state = conversation_state(tracker)
        topic = fallback_topic(state.latest_message, default_risk_engine())
        if topic is None:
            intent = (tracker.latest_message.get("intent") or {}).get("name")
            if intent == "nlu_fallback" and is_repeated_fallback(list(tracker.events)):
                return [FollowupAction("action_handoff")]
            dispatcher.utter_message(response="utter_out_of_scope" if intent == "out_of_scope" else "utter_clarify")
            return []
        plan = plan_guidance(topic, state, default_knowledge(), default_risk_engine())
        for reply in plan.replies:
            dispatcher.utter_message(response=reply.response, **reply.variables)
        return [SlotSet(name, value) for name, value in plan.slots.items()]
