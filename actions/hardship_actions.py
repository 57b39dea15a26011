"""The hardship-plan form: slot validation, handing over the plan, and stopping the form.

Thin: reading answers and building the plan live in ``bot/hardship.py``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecutionRejected, ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.replies import send_replies
from bot import hardship
from bot.crisis import reads_as_danger
from bot.knowledge import default_knowledge
from bot.risk import VICTIM_FLAGS, default_risk_engine


def _latest_text(tracker: Tracker) -> str:
    return tracker.latest_message.get("text") or ""


def _invalid(slot: str, tracker: Tracker, dispatcher: CollectingDispatcher) -> Dict[Text, Any]:
    """Re-ask once with a hint; after that, skip the question with its skip value."""
    retries = dict(tracker.get_slot("hardship_form_retries") or {})
    if retries.get(slot, 0) < hardship.MAX_REASKS:
        retries[slot] = retries.get(slot, 0) + 1
        dispatcher.utter_message(response=hardship.REASK_RESPONSES[slot])
        return {slot: None, "hardship_form_retries": retries}
    dispatcher.utter_message(response="utter_hardship_skip")
    return {slot: hardship.SKIP_VALUES[slot]}


def _intent(tracker: Tracker) -> Optional[str]:
    return (tracker.latest_message.get("intent") or {}).get("name")


def _victim_at_the_summary(tracker: Tracker) -> bool:
    """True when the reply to the summary reports a payment or data handed to a seller (the risk engine's
    victim flags): the form's turn is rejected so that the victim's rule answers it."""
    if tracker.get_slot("requested_slot") != hardship.CONFIRM_SLOT:
        return False
    return bool(VICTIM_FLAGS & set(default_risk_engine().find_flags(_latest_text(tracker))))


def _answer_despite_intent(slot: str, tracker: Tracker) -> Dict[Text, Any]:
    if tracker.get_slot("requested_slot") != slot or tracker.get_slot(slot) not in (None, ""):
        return {}
    text = _latest_text(tracker)
    red_flags = bool(default_risk_engine().find_flags(text))
    answer = hardship.answer_despite_intent(slot, text, _intent(tracker), red_flags)
    return {slot: answer} if answer is not None else {}


class ValidateHardshipPlanForm(FormValidationAction):
    """Validates each answer of ``hardship_plan_form`` with bot.hardship's readers, reads a stated reason or
    amount that the NLU classified as despair or evasion (bot.hardship.answer_despite_intent), and rejects the
    form's turn for a message that reads as danger, so that the rules answer it with care first."""

    def name(self) -> Text:
        """The form validation action's name in the domain."""
        return "validate_hardship_plan_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        """Reject the form's turn (``ActionExecutionRejected``: Rasa then predicts the rules' care and
        hand-over, and the answers given so far are kept) when the message reads as danger; else validate."""
        if reads_as_danger(_latest_text(tracker)) or _victim_at_the_summary(tracker):
            return [ActionExecutionRejected(hardship.FORM_NAME)]
        return await super().run(dispatcher, tracker, domain)

    async def extract_hardship_reason(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: DomainDict) -> Dict[Text, Any]:
        """A hardship reason stated in a message the NLU called despair or evasion ("生意赔了")."""
        return _answer_despite_intent("hardship_reason", tracker)

    async def extract_monthly_repayment_capacity(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                                 domain: DomainDict) -> Dict[Text, Any]:
        """An amount stated in a message the NLU called despair or evasion."""
        return _answer_despite_intent("monthly_repayment_capacity", tracker)

    def validate_bank(self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: DomainDict) -> Dict[Text, Any]:
        """Canonical institution, or 其他 for an unknown or declined lender (never a guessed bank)."""
        lender = hardship.read_lender(str(slot_value or ""), _latest_text(tracker), default_knowledge())
        return {"bank": lender} if lender else _invalid("bank", tracker, dispatcher)

    def validate_debt_type(self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: DomainDict) -> Dict[Text, Any]:
        """One of 信用卡/网贷/消费贷/房贷/车贷; re-asked once, then skipped."""
        if hardship.declined(_latest_text(tracker)):
            return {"debt_type": hardship.UNSTATED}
        debt_type = hardship.read_debt_type(str(slot_value or ""), _latest_text(tracker))
        return {"debt_type": debt_type} if debt_type else _invalid("debt_type", tracker, dispatcher)

    def validate_hardship_reason(self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                 domain: DomainDict) -> Dict[Text, Any]:
        """失业/疾病/收入下降/其他, or 未说明 when declined."""
        reason = hardship.read_hardship_reason(str(slot_value or ""))
        return {"hardship_reason": reason} if reason else _invalid("hardship_reason", tracker, dispatcher)

    def validate_monthly_repayment_capacity(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                            tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        """Yuan per month (optional: 未说明 when declined); negative, absurd or non-numeric is re-asked."""
        value, _problem = hardship.read_monthly_capacity(str(slot_value or ""))
        if value is None:
            return _invalid("monthly_repayment_capacity", tracker, dispatcher)
        return {"monthly_repayment_capacity": value}

    def validate_already_overdue(self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                 domain: DomainDict) -> Dict[Text, Any]:
        """"yes", "no" or 未说明."""
        value = hardship.read_already_overdue(str(slot_value or ""), _latest_text(tracker))
        return {"already_overdue": value} if value else _invalid("already_overdue", tracker, dispatcher)


    def validate_hardship_confirmed(self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> Dict[Text, Any]:
        """The reply to the summary: "yes" gives the plan; a wish to change one answer (a button, or
        "改一下每月金额") empties that answer, so the form asks it again and then shows
        the summary again, keeping the others; a new bank, debt type or amount in the same message is taken at
        once; a bare no asks which one; anything else is re-asked once, then taken as yes."""
        text = _latest_text(tracker)
        target = hardship.change_target(text)
        if target is not None:
            return _change(target, text, tracker, dispatcher)
        answer = hardship.read_confirmation(text, _intent(tracker))
        if answer == hardship.CONFIRMED:
            return {hardship.CONFIRM_SLOT: hardship.CONFIRMED}
        if answer == "no":
            dispatcher.utter_message(response="utter_hardship_confirm_which")
            return {hardship.CONFIRM_SLOT: None}
        return _invalid(hardship.CONFIRM_SLOT, tracker, dispatcher)


def _change(target: str, text: str, tracker: Tracker, dispatcher: CollectingDispatcher) -> Dict[Text, Any]:
    """Empty ``target`` (an answer slot) for the form to ask again, unless this message already gives its new
    value: a bank or debt type the NLU extracted (validated by its own validator in this same turn), or an
    amount."""
    changed: Dict[Text, Any] = {hardship.CONFIRM_SLOT: None}
    retries = dict(tracker.get_slot("hardship_form_retries") or {})
    retries.pop(target, None)
    retries.pop(hardship.CONFIRM_SLOT, None)
    changed["hardship_form_retries"] = retries
    if tracker.slots_to_validate().get(target) not in (None, ""):
        return changed  # e.g. "银行说错了，是建行": the bank slot was set from the entity this turn
    if target == "monthly_repayment_capacity":
        value, _problem = hardship.read_monthly_capacity(text)
        if value not in (None, hardship.UNSTATED):
            return {**changed, target: value}
    dispatcher.utter_message(response="utter_hardship_change_noted")
    return {**changed, target: None}


def hardship_case(tracker: Tracker) -> hardship.HardshipCase:
    """The filled form as a HardshipCase; missing values become 其他/未说明."""
    def slot(name: str, default: str) -> str:
        value: Optional[Any] = tracker.get_slot(name)
        return str(value) if value not in (None, "") else default

    return hardship.HardshipCase(
        lender=slot("bank", hardship.OTHER),
        debt_type=slot("debt_type", hardship.UNSTATED),
        reason=slot("hardship_reason", hardship.UNSTATED),
        monthly_capacity=slot("monthly_repayment_capacity", hardship.UNSTATED),
        already_overdue=slot("already_overdue", hardship.UNSTATED),
    )


class ActionGiveHardshipPlan(Action):
    """Hand over the plan (text plus a channel_card payload) and record the referrals."""

    def name(self) -> Text:
        """The action's name in the domain."""
        return "action_give_hardship_plan"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        """Send the plan; set ``referrals`` and reset the re-ask counters."""
        plan = hardship.build_plan(hardship_case(tracker), default_knowledge())
        events = send_replies(dispatcher, plan.replies, tracker, reserved_bubbles=1)  # the channel card follows
        dispatcher.utter_message(json_message=plan.channel_card)
        referrals = list(tracker.get_slot("referrals") or []) + plan.referrals
        return [SlotSet("referrals", referrals), SlotSet("hardship_form_retries", None), *events]


class ActionStopHardshipForm(Action):
    """Stop the form at the user's wish and clear what it collected, so nothing half-filled lingers."""

    def name(self) -> Text:
        """The action's name in the domain."""
        return "action_stop_hardship_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        """Say so, deactivate the form and clear the slots only the form fills."""
        dispatcher.utter_message(response="utter_hardship_form_stopped")
        return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("hardship_form_retries", None),
                *(SlotSet(name, None) for name in hardship.FORM_ONLY_SLOTS)]
