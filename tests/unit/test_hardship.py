"""The hardship-plan form's readers and the plan (bot/hardship.py), and its actions, without a server."""
from __future__ import annotations

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.hardship_actions import ActionGiveHardshipPlan, ActionStopHardshipForm, ValidateHardshipPlanForm
from bot import PROJECT_ROOT, hardship
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


# ---------- the monthly amount in the plan, and the summary confirmed before it ----------

def test_the_script_says_the_monthly_amount_the_user_gave(knowledge, domain):
    plan = build_plan(HardshipCase("招商银行", "信用卡", "失业", "1500", "yes"), knowledge)
    [script] = [r for r in plan.replies if r.response.startswith("utter_hardship_plan_script")]
    assert script.response == "utter_hardship_plan_script" and script.variables["monthly_amount"] == "1500"
    assert "每月能还{monthly_amount}元" in domain["responses"][script.response][0]["text"]
    declined_plan = build_plan(HardshipCase("招商银行", "信用卡", "其他", UNSTATED, "yes"), knowledge)
    assert "utter_hardship_plan_script_generic_no_amount" in _names(declined_plan)
    every_text = "".join(v.get("text", "") for variants in domain["responses"].values() for v in variants)
    assert "报出您算好的数目" not in every_text


@pytest.mark.parametrize("text, slot", [
    ("改每月金额", "monthly_repayment_capacity"), ("改欠款机构", "bank"), ("改欠款类型", "debt_type"),
    ("改困难原因", "hardship_reason"), ("改是否逾期", "already_overdue"), ("银行说错了，是建行", "bank"),
    ("其实每个月只能还一千", "monthly_repayment_capacity"), ("都对，给我方案", None), ("招商银行", None)])
def test_which_answer_the_user_wants_to_change(text, slot):
    assert hardship.change_target(text) == slot


def test_reading_the_reply_to_the_summary():
    assert hardship.read_confirmation("/affirm", "affirm") == hardship.CONFIRMED
    assert hardship.read_confirmation("对的，没问题", "inform") == hardship.CONFIRMED
    assert hardship.read_confirmation("不对", "inform") == "no"
    assert hardship.read_confirmation("嗯嗯嗯那个", "deny") == "no"
    assert hardship.read_confirmation("今天星期几", "out_of_scope") is None


def test_the_confirmation_is_the_forms_last_question_and_cleared_when_it_stops(domain):
    assert domain["forms"]["hardship_plan_form"]["required_slots"] == list(hardship.FORM_SLOTS)
    assert hardship.FORM_SLOTS[-1] == hardship.CONFIRM_SLOT and hardship.CONFIRM_SLOT in hardship.FORM_ONLY_SLOTS
    assert "utter_ask_hardship_confirmed" in domain["responses"]


_ANSWERS = {"bank": "招商银行", "debt_type": "信用卡", "hardship_reason": "失业", "monthly_repayment_capacity": "2000",
            "already_overdue": "yes"}


def test_a_yes_to_the_summary_gives_the_plan():
    result, said = _validate("hardship_confirmed", "都对，给我方案", "都对，给我方案", dict(_ANSWERS))
    assert result == {"hardship_confirmed": "yes"} and said == []


def test_changing_one_answer_asks_only_that_one_again():
    result, said = _validate("hardship_confirmed", "改每月金额", "改每月金额", dict(_ANSWERS))
    assert result["monthly_repayment_capacity"] is None and result["hardship_confirmed"] is None
    assert "bank" not in result and "hardship_reason" not in result
    assert said == ["utter_hardship_change_noted"]


def test_a_new_amount_in_the_change_is_taken_at_once():
    result, said = _validate("hardship_confirmed", "x", "其实每个月只能还一千五", dict(_ANSWERS))
    assert result["monthly_repayment_capacity"] == "1500" and result["hardship_confirmed"] is None
    assert said == []  # the summary is shown again with the new amount


def test_a_new_bank_the_nlu_extracted_this_turn_is_kept():
    dispatcher = CollectingDispatcher()
    tracker = _tracker("银行说错了，是建设银行", dict(_ANSWERS))
    tracker.events = [{"event": "slot", "name": "bank", "value": "建设银行"},
                      {"event": "slot", "name": "hardship_confirmed", "value": "银行说错了，是建设银行"}]
    result = ValidateHardshipPlanForm().validate_hardship_confirmed("银行说错了，是建设银行", dispatcher, tracker, {})
    assert "bank" not in result and result["hardship_confirmed"] is None


def test_a_bare_no_asks_which_answer_to_change():
    result, said = _validate("hardship_confirmed", "不对", "不对", dict(_ANSWERS))
    assert result == {"hardship_confirmed": None} and said == ["utter_hardship_confirm_which"]


def test_an_unreadable_reply_to_the_summary_is_re_asked_once_then_taken_as_yes():
    result, said = _validate("hardship_confirmed", "今天星期几", "今天星期几", dict(_ANSWERS))
    assert result["hardship_confirmed"] is None and said == ["utter_hardship_reask_hardship_confirmed"]
    result, _said = _validate("hardship_confirmed", "今天星期几", "今天星期几",
                              {**_ANSWERS, "hardship_form_retries": {"hardship_confirmed": 1}})
    assert result == {"hardship_confirmed": "yes"}


def test_a_victim_event_at_the_summary_rejects_the_forms_turn_for_the_victims_rule():
    form = {"name": "hardship_plan_form", "validate": True, "rejected": False, "trigger_message": {}}
    domain = {"forms": {"hardship_plan_form": {"required_slots": list(hardship.FORM_SLOTS)}},
              "slots": {name: {"type": "text", "mappings": [{"type": "from_text"}]} for name in hardship.FORM_SLOTS}}

    def run(text):
        tracker = Tracker("u1", {**_ANSWERS, "requested_slot": "hardship_confirmed", "hardship_form_retries": None},
                          {"text": text, "intent": {"name": "agency_victim"}, "entities": []}, [], False, None, form,
                          "action_listen")
        return asyncio.run(ValidateHardshipPlanForm().run(CollectingDispatcher(), tracker, domain))

    assert [e["event"] for e in run("对了，我之前交了三千服务费给中介")] == ["action_execution_rejected"]
    assert "action_execution_rejected" not in [e["event"] for e in run("都对，给我方案")]
