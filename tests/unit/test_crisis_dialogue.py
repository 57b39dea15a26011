"""Danger and stress answered apart, and everyday hardship answers kept in the form, without a Rasa server.

Covers bot.guidance.distress_reading, bot.hardship.answer_despite_intent, actions' ActionSupportDistress and
ValidateHardshipPlanForm, and the NLU's DangerSignalClassifier (issue: "Hardship is not a crisis").
"""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

import pytest
from rasa.shared.nlu.training_data.message import Message
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from actions.guidance_actions import ActionSupportDistress
from actions.hardship_actions import ValidateHardshipPlanForm
from bot import hardship
from bot.crisis import CrisisLevel
from bot.guidance import distress_reading
from bot.nlu.danger_signals import DangerSignalClassifier
from bot.risk import default_risk_engine

FORM = {"name": "hardship_plan_form", "validate": True, "rejected": False, "trigger_message": {}}
DOMAIN: Dict[str, Any] = {"forms": {"hardship_plan_form": {"required_slots": list(hardship.FORM_SLOTS)}},
                          "slots": {name: {"type": "text", "mappings": [{"type": "from_text"}]}
                                    for name in hardship.FORM_SLOTS}}


def _tracker(text: str, intent: str, active_loop: Optional[dict] = None, **slots: Any) -> Tracker:
    return Tracker(sender_id="test-user", slots={"bank": None, "debt_type": None, **slots},
                   latest_message={"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []},
                   events=[], paused=False, followup_action=None, active_loop=active_loop or {},
                   latest_action_name="action_listen")


def _run(action: Any, tracker: Tracker, domain: Optional[dict] = None) -> tuple:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, domain or {}))
    return [m.get("response") for m in dispatcher.messages], events


@pytest.mark.parametrize("text", ["我真的不想活了", "活着没意思", "我不知道明天还有没有意义"])
def test_danger_and_the_unplaced_get_the_crisis_answer(text: str) -> None:
    assert distress_reading(text) is CrisisLevel.DANGER


@pytest.mark.parametrize("text", ["压力很大，每天都睡不着", "生意赔了，钱都花光了", "家里有人生病，真的太难了"])
def test_stress_and_hardship_get_the_stress_answer(text: str) -> None:
    assert distress_reading(text) is CrisisLevel.STRESS


def test_danger_gets_the_hotlines_and_goes_on_to_the_hand_over() -> None:
    responses, events = _run(ActionSupportDistress(), _tracker("我真的不想活了", "express_distress"))
    assert responses == ["utter_support_distress"]
    assert not any(e.get("event") == "followup" for e in events)


def test_stress_outside_the_form_gets_care_and_no_hand_over() -> None:
    responses, events = _run(ActionSupportDistress(), _tracker("压力太大了，天天失眠", "express_distress"))
    assert responses == ["utter_support_stress"]
    assert events[-1] == FollowupAction("action_listen")


def test_stress_inside_the_form_asks_the_form_question_again() -> None:
    tracker = _tracker("我快崩溃了", "express_distress", active_loop=FORM, requested_slot="hardship_reason")
    responses, events = _run(ActionSupportDistress(), tracker)
    assert responses == ["utter_support_stress"]
    assert events[-1] == FollowupAction("hardship_plan_form")


@pytest.mark.parametrize("text,intent", [
    ("生意赔了", "express_distress"), ("家里有人生病，钱都花光了", "express_distress"),
    ("公司倒闭了工资也没发", "ask_evade_debt"), ("被裁员了，唉", "express_distress"),
    ("老公生病住院花了十几万", "ask_legal_risk")])
def test_a_stated_reason_answers_the_form_whatever_the_intent(text: str, intent: str) -> None:
    assert hardship.answer_despite_intent("hardship_reason", text, intent) == text


@pytest.mark.parametrize("text,intent", [
    ("生意赔了，我真的不想活了", "express_distress"),      # danger leaves the form
    ("失业了可以不还吗", "ask_evade_debt"),                 # a question gets its own answer first
    ("压力很大", "express_distress"),                       # no reason stated
    ("我失业了，有中介说能停息挂账", "seek_debt_agency"),   # a seller's pitch is never swallowed by the form
])
def test_danger_questions_and_pitches_are_not_answers(text: str, intent: str) -> None:
    red_flags = bool(default_risk_engine().find_flags(text))
    assert hardship.answer_despite_intent("hardship_reason", text, intent, red_flags) is None


@pytest.mark.parametrize("text,intent", [
    ("公司裁员，我被裁了", "agency_victim"), ("年纪大了，找工作没人要", "request_human"),
    ("做生意失败，亏了二十万", "seek_debt_agency")])
def test_a_reason_misread_as_a_risk_intent_answers_when_it_has_no_red_flag(text: str, intent: str) -> None:
    red_flags = bool(default_risk_engine().find_flags(text))
    assert hardship.answer_despite_intent("hardship_reason", text, intent, red_flags) == text


def test_a_request_for_a_person_is_never_an_answer() -> None:
    assert hardship.answer_despite_intent("hardship_reason", "失业了，帮我转人工", "request_human") is None


def test_an_amount_answers_the_capacity_question_under_a_distress_intent() -> None:
    text = "每个月最多还两千，真的很难"
    assert hardship.answer_despite_intent("monthly_repayment_capacity", text, "express_distress") == text


def test_the_form_takes_a_reason_classified_as_despair() -> None:
    tracker = _tracker("生意赔了", "express_distress", active_loop=FORM, requested_slot="hardship_reason",
                       bank="招商银行", debt_type="信用卡")
    _responses, events = _run(ValidateHardshipPlanForm(), tracker, DOMAIN)
    assert {"event": "slot", "name": "hardship_reason", "value": "收入下降", "timestamp": None} in events


def test_danger_during_the_form_rejects_its_turn_and_keeps_the_answers() -> None:
    tracker = _tracker("招商银行的，我不想活了", "express_distress", active_loop=FORM,
                       requested_slot="hardship_reason", bank="招商银行", debt_type="信用卡")
    responses, events = _run(ValidateHardshipPlanForm(), tracker, DOMAIN)
    assert responses == []
    assert [e["event"] for e in events] == ["action_execution_rejected"]
    assert events[0]["name"] == "hardship_plan_form"


def _parse(text: str, intent: str) -> Message:
    message = Message(data={"text": text, "intent": {"name": intent, "confidence": 0.8},
                            "intent_ranking": [{"name": intent, "confidence": 0.8},
                                               {"name": "express_distress", "confidence": 0.1}]})
    DangerSignalClassifier().process([message])
    return message


def test_the_nlu_ranks_danger_as_distress_first() -> None:
    message = _parse("欠招行五万，活着没意思了", "inform")
    assert message.get("intent") == {"name": "express_distress", "confidence": 1.0}
    ranking: List[dict] = message.get("intent_ranking")
    assert [r["name"] for r in ranking] == ["express_distress", "inform"]


def test_the_nlu_leaves_stress_and_reasons_alone() -> None:
    for text in ("压力很大", "生意赔了"):
        assert _parse(text, "inform").get("intent")["name"] == "inform"
