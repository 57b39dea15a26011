"""One custom action per core intent, each answering it with ``bot.guidance.plan_guidance``, and the action
that answers a message the NLU could not place.

The logic (which responses, which facts, which bank) lives in ``bot/guidance.py``; an action here only reads
the tracker into a :class:`bot.guidance.ConversationState`, sends the planned responses and sets the slots
the plan established. Which action answers which intent: ``bot.intents.ACTION_FOR_TOPIC`` (checked against the
rules by tests/unit/test_domain_consistency.py).
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.replies import send_replies
from bot import intents
from bot.crisis import CrisisLevel
from bot.guidance import (
    ConversationState,
    GuidancePlan,
    distress_reading,
    fallback_topic,
    handoff_follows,
    plan_guidance,
)
from bot.handoff.priority import is_repeated_fallback
from bot.hardship import FORM_NAME as HARDSHIP_FORM
from bot.hardship import FORM_SLOTS
from bot.intents import ACTION_FOR_TOPIC
from bot.knowledge import default_knowledge
from bot.risk import default_risk_engine

__all__ = ["ACTION_FOR_TOPIC", "GUIDANCE_ACTIONS", "GuidanceAction", "ActionClarifyOrAnswerRisk", "conversation_state"]


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
        hardship_case_complete=all(tracker.get_slot(name) for name in FORM_SLOTS),
        referrals=tuple(tracker.get_slot("referrals") or ()),
    )


def _carry_out(plan: GuidancePlan, dispatcher: CollectingDispatcher, tracker: Tracker,
               handoff_follows: bool = False) -> List[Dict[Text, Any]]:
    events = send_replies(dispatcher, plan.replies, tracker, handoff_follows=handoff_follows)
    return [SlotSet(name, value) for name, value in plan.slots.items()] + events


class GuidanceAction(Action):
    """Answer ``topic`` (a core intent) with the planned responses; subclasses set ``topic`` and ``action_name``."""

    topic: Text = ""
    action_name: Text = ""

    def name(self) -> Text:
        """The action's name in the domain."""
        return self.action_name

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        """Send the plan's replies; return SlotSet events for the bank, the risk slots and the referrals."""
        plan = plan_guidance(self.topic, conversation_state(tracker), default_knowledge(), default_risk_engine())
        return _carry_out(plan, dispatcher, tracker, handoff_follows(self.topic, tracker.latest_message.get("text")))


class ActionWarnDebtAgency(GuidanceAction):
    """Answers ``seek_debt_agency``: the risk of a paid debt agency, a real case, the free lawful route."""

    topic, action_name = intents.SEEK_DEBT_AGENCY, "action_warn_debt_agency"


class ActionWarnCreditRepair(GuidanceAction):
    """Answers ``seek_credit_repair``: no one can remove a true record for a fee; the objection route."""

    topic, action_name = intents.SEEK_CREDIT_REPAIR, "action_warn_credit_repair"


class ActionSupportAgencyVictim(GuidanceAction):
    """Answers ``agency_victim``: stop the loss, report it, protect the accounts."""

    topic, action_name = intents.AGENCY_VICTIM, "action_support_agency_victim"


class ActionExplainEvasionRisk(GuidanceAction):
    """Answers ``ask_evade_debt``: what evading a debt leads to, and the lawful route instead."""

    topic, action_name = intents.ASK_EVADE_DEBT, "action_explain_evasion_risk"


class ActionExplainLegalRisk(GuidanceAction):
    """Answers ``ask_legal_risk``: the consequences of not paying."""

    topic, action_name = intents.ASK_LEGAL_RISK, "action_explain_legal_risk"


class ActionGuideHardshipPlan(GuidanceAction):
    """Answers ``ask_hardship_plan`` outside the form (the form itself: actions/hardship_actions.py)."""

    topic, action_name = intents.ASK_HARDSHIP_PLAN, "action_guide_hardship_plan"


class ActionGuideCollectionComplaint(GuidanceAction):
    """Answers ``report_collection_abuse``: how and where to complain about abusive collection."""

    topic, action_name = intents.REPORT_COLLECTION_ABUSE, "action_guide_collection_complaint"


class ActionAnswerCreditRecord(GuidanceAction):
    """Answers ``ask_credit_record``: how credit records and objections work."""

    topic, action_name = intents.ASK_CREDIT_RECORD, "action_answer_credit_record"


class ActionListComplaintChannels(GuidanceAction):
    """Answers ``ask_complaint_channel``: the official complaint channels."""

    topic, action_name = intents.ASK_COMPLAINT_CHANNEL, "action_list_complaint_channels"


class ActionSupportDistress(GuidanceAction):
    """Answers ``express_distress``: danger gets care and the crisis hotlines, and the rules then hand over to a
    human (leaving the hardship form with its answers kept); stress gets care and the lawful route, and the
    conversation (or the form) goes on. Which is which: bot.guidance.distress_reading."""

    topic, action_name = intents.EXPRESS_DISTRESS, "action_support_distress"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        """The plan's replies and slots; for stress, a follow-up that skips the rules' hand-over: the form's
        question again inside the hardship form, else listening."""
        events = await super().run(dispatcher, tracker, domain)
        if distress_reading(tracker.latest_message.get("text") or "") is CrisisLevel.STRESS:
            in_form = tracker.active_loop.get("name") == HARDSHIP_FORM
            events.append(FollowupAction(HARDSHIP_FORM if in_form else "action_listen"))
        return events


GUIDANCE_ACTIONS = [ActionWarnDebtAgency, ActionWarnCreditRepair, ActionSupportAgencyVictim, ActionExplainEvasionRisk,
                    ActionExplainLegalRisk, ActionGuideHardshipPlan, ActionGuideCollectionComplaint,
                    ActionAnswerCreditRecord, ActionListComplaintChannels, ActionSupportDistress]
"""Every guidance action, one per entry of ACTION_FOR_TOPIC."""


class ActionClarifyOrAnswerRisk(Action):
    """For nlu_fallback and out_of_scope: answer the red flags a message carries, else ask to clarify, and
    hand over to a human (FollowupAction action_handoff) on the second nlu_fallback in a row.

    The worst failure is to miss a person about to pay a seller; a low NLU confidence must not hide the red
    flags the lexicon finds (bot.guidance.fallback_topic).
    """

    def name(self) -> Text:
        """The action's name in the domain."""
        return intents.CLARIFY_ACTION

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        """The red flags' topic answered, or the clarifying (or out-of-scope) reply, or the hand-over."""
        state = conversation_state(tracker)
        topic = fallback_topic(state.latest_message, default_risk_engine(), state.intent or intents.NLU_FALLBACK)
        if topic is None:
            if state.intent == intents.NLU_FALLBACK and is_repeated_fallback(list(tracker.events)):
                return [FollowupAction(intents.HANDOFF_ACTION)]
            dispatcher.utter_message(response="utter_out_of_scope" if state.intent == intents.OUT_OF_SCOPE
                                     else "utter_clarify")
            return []
        return _carry_out(plan_guidance(topic, state, default_knowledge(), default_risk_engine()), dispatcher, tracker)
