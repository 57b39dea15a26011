"""Which responses answer each topic, and with which facts (bot/guidance.py), without a Rasa server."""
from __future__ import annotations

import pytest

from bot.guidance import TOPIC_RESPONSES, ConversationState, plan_guidance

CORE_INTENTS = [
    "seek_debt_agency", "seek_credit_repair", "agency_victim", "ask_evade_debt", "ask_legal_risk",
    "ask_hardship_plan", "report_collection_abuse", "ask_credit_record", "ask_complaint_channel",
    "express_distress", "request_human",
]


def _names(plan):
    return [reply.response for reply in plan.replies]


def test_every_core_intent_has_a_reply_route(knowledge):
    # request_human is answered by the human handoff (bot/handoff/), not by a guidance plan.
    guided = [intent for intent in CORE_INTENTS if intent != "request_human"]
    assert sorted(TOPIC_RESPONSES) == sorted(guided)
    for topic in guided:
        plan = plan_guidance(topic, ConversationState(), knowledge)
        assert plan.replies, topic


def test_agency_warning_names_the_lawful_route_and_an_official_channel(knowledge):
    plan = plan_guidance("seek_debt_agency", ConversationState("交三千服务费帮我停息挂账靠谱吗"), knowledge)
    assert _names(plan) == ["utter_warn_debt_agency", "utter_agency_case", "utter_official_channel_card_issuer"]
    assert plan.replies[-1].variables["nfra_hotline"] == "12378"
    assert plan.slots == {}


def test_bank_named_in_the_message_adds_its_channel_and_sets_the_slot(knowledge):
    plan = plan_guidance("ask_hardship_plan", ConversationState("招行信用卡还不上了"), knowledge)
    assert _names(plan) == ["utter_guide_hardship_plan", "utter_bank_channel"]
    assert plan.replies[1].variables["bank_numbers"] == "95555，信用卡 400-820-5555"
    assert plan.slots == {"bank": "招商银行"}


def test_bank_slot_alias_is_resolved(knowledge):
    plan = plan_guidance("report_collection_abuse", ConversationState("催收骂我", bank="工行"), knowledge)
    assert plan.replies[-1].variables["bank_name"] == "中国工商银行"


def test_bank_without_a_sourced_number_gets_no_number(knowledge):
    plan = plan_guidance("ask_hardship_plan", ConversationState("邮储的信用卡"), knowledge)
    assert _names(plan)[-1] == "utter_bank_channel_no_number"
    assert "bank_numbers" not in plan.replies[-1].variables


def test_unknown_bank_gets_generic_guidance_only(knowledge):
    plan = plan_guidance("ask_hardship_plan", ConversationState("宇宙银行的卡", bank="宇宙银行"), knowledge)
    assert _names(plan) == ["utter_guide_hardship_plan"]


@pytest.mark.parametrize("debt_type", ["网贷", "消费贷"])
def test_online_loans_get_their_own_path(knowledge, debt_type):
    plan = plan_guidance("ask_hardship_plan", ConversationState(debt_type=debt_type), knowledge)
    assert _names(plan)[0] == "utter_guide_online_loan_plan"


def test_distress_reply_carries_the_sourced_hotlines(knowledge):
    plan = plan_guidance("express_distress", ConversationState("我真的不想活了"), knowledge)
    variables = plan.replies[0].variables
    assert (variables["psychological_hotline"], variables["police_hotline"],
            variables["medical_emergency_hotline"]) == ("12356", "110", "120")


def test_unknown_topic_raises(knowledge):
    with pytest.raises(KeyError):
        plan_guidance("order_pizza", ConversationState(), knowledge)
