"""The hardship-plan form's readers and the plan (bot/hardship.py), and its actions, without a server."""
from __future__ import annotations

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.hardship_actions import ActionGiveHardshipPlan, ActionStopHardshipForm, ValidateHardshipPlanForm
from bot import PROJECT_ROOT
from bot.hardship import (
    OTHER,
    UNSTATED,
    HardshipCase,
    build_plan,
    read_already_overdue,
    read_debt_type,
    read_hardship_reason,
    read_lender,
    read_monthly_capacity,
)
from bot.knowledge import load_knowledge


@pytest.fixture
def deployed_knowledge(monkeypatch):
    monkeypatch.setenv("DEBT_HELP_DEPLOYMENT", str(PROJECT_ROOT / "docs" / "deployment.example.yml"))
    return load_knowledge()


def test_lender_answers(knowledge):
    assert read_lender("招行", "招行", knowledge) == "招商银行"
    assert read_lender(None, "是工行的信用卡", knowledge) == "中国工商银行"
    assert read_lender("宇宙银行", "宇宙银行", knowledge) == OTHER
    assert read_lender(None, "不想说", knowledge) == OTHER
    assert read_lender(None, "", knowledge) is None


def test_self_references_resolve_to_the_deploying_bank_only_when_configured(knowledge, deployed_knowledge):
    assert read_lender(None, "本行的信用卡", deployed_knowledge) == "招商银行"
    assert read_lender(None, "你们银行", knowledge) == OTHER


@pytest.mark.parametrize("text, expected", [("信用卡", "信用卡"), ("xyk", "信用卡"), ("借呗", "网贷"),
                                            ("按揭", "房贷"), ("车贷", "车贷"), ("不知道", None)])
def test_debt_type_answers(text, expected):
    assert read_debt_type(None, text) == expected


@pytest.mark.parametrize("text, expected", [("被裁员了", "失业"), ("住院做手术", "疾病"), ("生意不好", "收入下降"),
                                            ("其他原因", "其他"), ("不想说", UNSTATED), ("嗯", None)])
def test_reason_answers(text, expected):
    assert read_hardship_reason(text) == expected


@pytest.mark.parametrize("text, value, problem", [
    ("两千", "2000", None), ("每月2k左右", "2000", None), ("1500块", "1500", None), ("不想说", UNSTATED, None),
    ("-500", None, "negative"), ("负两千", None, "negative"), ("一亿", None, "absurd"), ("0", None, "absurd"),
    ("很多", None, "not_a_number"), ("", None, "not_a_number")])
def test_capacity_answers(text, value, problem):
    assert read_monthly_capacity(text) == (value, problem)


@pytest.mark.parametrize("value, text, expected", [("yes", "", "yes"), (None, "已经逾期了", "yes"),
                                                   (None, "还没有逾期", "no"), (None, "不想说", UNSTATED),
                                                   (None, "什么", None)])
def test_overdue_answers(value, text, expected):
    assert read_already_overdue(value, text) == expected


def _names(plan):
    return [reply.response for reply in plan.replies]


def test_credit_card_plan_covers_art70_script_documents_expectations_and_refusal(knowledge):
    plan = build_plan(HardshipCase("招商银行", "信用卡", "失业", "2000", "yes"), knowledge)
    assert _names(plan) == [
        "utter_hardship_plan_card_issuer", "utter_hardship_plan_art70_terms", "utter_bank_channel",
        "utter_hardship_plan_script", "utter_hardship_plan_documents_unemployment",
        "utter_hardship_plan_expectations", "utter_hardship_plan_overdue", "utter_hardship_plan_if_refused"]
    assert plan.replies[0].variables["lender_name"] == "招商银行"
    assert [c["number"] for c in plan.channel_card["channels"]] == ["95555", "400-820-5555", "12378"]
    assert plan.channel_card["type"] == "channel_card" and plan.channel_card["reason"] == "hardship_plan"
    assert plan.referrals == ["招商银行:hardship_plan", "nfra_hotline:hardship_plan_refused"]


def test_online_loans_get_their_own_path_without_art70(knowledge):
    for case in (HardshipCase("支付宝借呗/花呗", "网贷", "疾病", UNSTATED, "no"),
                 HardshipCase(OTHER, "消费贷", "其他", UNSTATED, "no")):
        names = _names(build_plan(case, knowledge))
        assert names[0] == "utter_hardship_plan_online_lender"
        assert "utter_hardship_plan_art70_terms" not in names


def test_unknown_lender_gets_generic_guidance_and_no_guessed_number(knowledge):
    plan = build_plan(HardshipCase(OTHER, "信用卡", UNSTATED, UNSTATED, UNSTATED), knowledge)
    assert plan.replies[0].variables["lender_name"] == "发卡银行"
    assert "utter_hardship_plan_script_generic_no_amount" in _names(plan)
    assert [c["number"] for c in plan.channel_card["channels"]] == ["12378"]


def test_deploying_bank_comes_first_with_its_app_path(deployed_knowledge):
    plan = build_plan(HardshipCase("中国工商银行", "信用卡", "疾病", "1000", "no"), deployed_knowledge)
    names = _names(plan)
    assert names[2:4] == ["utter_bank_channel_deploying", "utter_bank_channel"]
    assert plan.replies[2].variables["bank_name"] == "招商银行"
    assert "个性化分期申请" in plan.replies[2].variables["app_path_hint"]
    assert [c["label"] for c in plan.channel_card["channels"]][:2] == ["招商银行客服电话", "招商银行信用卡客服电话"]
    assert plan.channel_card["channels"][0]["status"] == "confirmed"


def test_neutral_assistant_names_no_deploying_bank(knowledge):
    plan = build_plan(HardshipCase("中国工商银行", "信用卡", "疾病", "1000", "no"), knowledge)
    assert "utter_bank_channel_deploying" not in _names(plan)


# ---------- the actions ----------

def _tracker(text, slots=None, intent="inform"):
    return Tracker("u1", {"bank": None, "debt_type": None, "hardship_form_retries": None, **(slots or {})},
                   {"text": text, "intent": {"name": intent}, "entities": []}, [], False, None,
                   {"name": "hardship_plan_form"}, "action_listen")


def _validate(slot, value, text, slots=None):
    dispatcher = CollectingDispatcher()
    method = getattr(ValidateHardshipPlanForm(), f"validate_{slot}")
    result = method(value, dispatcher, _tracker(text, slots), {})
    return result, [m.get("response") for m in dispatcher.messages]


def test_invalid_answer_is_re_asked_once_then_skipped():
    result, said = _validate("monthly_repayment_capacity", "-500", "-500")
    assert result == {"monthly_repayment_capacity": None, "hardship_form_retries": {"monthly_repayment_capacity": 1}}
    assert said == ["utter_hardship_reask_monthly_repayment_capacity"]
    result, said = _validate("monthly_repayment_capacity", "abc", "abc",
                             {"hardship_form_retries": {"monthly_repayment_capacity": 1}})
    assert result == {"monthly_repayment_capacity": UNSTATED} and said == ["utter_hardship_skip"]


def test_valid_answers_are_normalised():
    assert _validate("bank", "招行", "招行")[0] == {"bank": "招商银行"}
    assert _validate("bank", "宇宙银行", "宇宙银行")[0] == {"bank": OTHER}
    assert _validate("debt_type", "xyk", "xyk")[0] == {"debt_type": "信用卡"}
    assert _validate("hardship_reason", "被裁员了", "被裁员了")[0] == {"hardship_reason": "失业"}
    assert _validate("already_overdue", "yes", "是的")[0] == {"already_overdue": "yes"}


def test_give_plan_action_sends_text_and_a_channel_card_and_records_referrals():
    slots = {"bank": "招商银行", "debt_type": "信用卡", "hardship_reason": "失业", "monthly_repayment_capacity": "2000",
             "already_overdue": "no", "referrals": ["nfra_hotline:complaint"]}
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionGiveHardshipPlan().run(dispatcher, _tracker("", slots), {}))
    assert dispatcher.messages[0]["response"] == "utter_hardship_plan_card_issuer"
    assert dispatcher.messages[-1]["custom"]["type"] == "channel_card"
    assert events[0] == SlotSet("referrals", ["nfra_hotline:complaint", "招商银行:hardship_plan",
                                              "nfra_hotline:hardship_plan_refused"])


def test_stop_action_clears_the_form():
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionStopHardshipForm().run(dispatcher, _tracker("算了", {"hardship_reason": "失业"}), {}))
    assert ActiveLoop(None) in events and SlotSet("hardship_reason", None) in events
    assert SlotSet("requested_slot", None) in events
    assert dispatcher.messages[0]["response"] == "utter_hardship_form_stopped"
