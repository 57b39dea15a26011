"""Which responses answer each topic, and with which facts (bot/guidance.py), without a Rasa server."""
from __future__ import annotations

import pytest

from bot.guidance import TOPIC_RESPONSES, ConversationState, plan_guidance
from bot.intents import CORE_INTENTS


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
    assert _names(plan) == ["utter_warn_debt_agency", "utter_official_channel_card_issuer"]
    assert plan.replies[-1].variables["nfra_hotline"] == "12378"
    assert plan.slots == {"referrals": ["nfra_hotline:seek_debt_agency"]}


def test_bank_named_in_the_message_adds_its_channel_and_sets_the_slot(knowledge):
    plan = plan_guidance("ask_complaint_channel", ConversationState("招行信用卡乱收费怎么投诉"), knowledge)
    assert _names(plan) == ["utter_list_complaint_channels", "utter_bank_channel"]
    assert plan.replies[1].variables["bank_numbers"] == "95555，信用卡 400-820-5555"
    assert plan.slots["bank"] == "招商银行"
    assert "招商银行:ask_complaint_channel" in plan.slots["referrals"]


def test_referrals_accumulate_without_repeats(knowledge):
    state = ConversationState("怎么投诉", referrals=("nfra_hotline:ask_complaint_channel", "x:y"))
    referrals = plan_guidance("ask_complaint_channel", state, knowledge).slots["referrals"]
    assert referrals[:2] == ["nfra_hotline:ask_complaint_channel", "x:y"]
    assert referrals.count("nfra_hotline:ask_complaint_channel") == 1


def test_bank_slot_alias_is_resolved(knowledge):
    plan = plan_guidance("report_collection_abuse", ConversationState("催收骂我", bank="工行"), knowledge)
    assert plan.replies[-1].variables["bank_name"] == "中国工商银行"


def test_bank_without_a_sourced_number_gets_no_number(knowledge):
    plan = plan_guidance("ask_complaint_channel", ConversationState("邮储的信用卡"), knowledge)
    assert _names(plan)[-1] == "utter_bank_channel_no_number"
    assert "bank_numbers" not in plan.replies[-1].variables


def test_unknown_bank_gets_generic_guidance_only(knowledge):
    plan = plan_guidance("ask_complaint_channel", ConversationState("宇宙银行的卡", bank="宇宙银行"), knowledge)
    assert _names(plan) == ["utter_list_complaint_channels"]


def test_hardship_question_opens_the_form_or_repeats_the_plan(knowledge):
    assert _names(plan_guidance("ask_hardship_plan", ConversationState(), knowledge)) == ["utter_hardship_intro"]
    again = ConversationState(hardship_case_complete=True)
    assert _names(plan_guidance("ask_hardship_plan", again, knowledge)) == ["utter_hardship_plan_again"]


def test_distress_reply_carries_the_sourced_hotlines(knowledge):
    plan = plan_guidance("express_distress", ConversationState("我真的不想活了"), knowledge)
    variables = plan.replies[0].variables
    assert (variables["psychological_hotline"], variables["police_hotline"],
            variables["medical_emergency_hotline"]) == ("12356", "110", "120")


def test_unknown_topic_raises(knowledge):
    with pytest.raises(KeyError):
        plan_guidance("order_pizza", ConversationState(), knowledge)


# ---------- with the risk engine ----------

from bot.risk import default_risk_engine  # noqa: E402


def _plan(topic, text, **state):
    from bot.knowledge import default_knowledge

    return plan_guidance(topic, ConversationState(text, intent=topic, **state), default_knowledge(),
                         default_risk_engine())


def test_red_flags_are_answered_one_by_one():
    plan = _plan("seek_debt_agency", "他们说不成功不收费，包上岸，还让我开个贫困证明")
    names = _names(plan)
    assert "utter_flag_false_promise" in names and "utter_flag_forgery_request" in names
    assert names[-1] == "utter_official_channel_card_issuer"


def test_a_risk_signal_inside_another_intent_is_still_addressed():
    plan = _plan("report_collection_abuse", "催收天天骂我，有人说交两千能帮我停息挂账")
    names = _names(plan)
    assert names[0] == "utter_guide_collection_complaint"
    assert "utter_flag_agency_offer" in names and "utter_flag_upfront_fee" in names
    assert plan.slots["risk_level"] == "medium"


def test_collection_abuse_inside_an_agency_question_gets_the_complaint_route():
    names = _names(_plan("seek_debt_agency", "催收天天骂我，有人说交两千能帮我停息挂账"))
    assert names[0] == "utter_warn_debt_agency" and "utter_guide_collection_complaint" in names


def test_victim_gets_the_specific_steps_for_what_they_handed_over():
    names = _names(_plan("agency_victim", "我交了服务费，还把身份证和验证码给了他们，他们让我先别还了"))
    assert names[:1] == ["utter_support_agency_victim"]
    assert {"utter_flag_paid_and_handed_over", "utter_stopped_paying_consequence"} <= set(names)


def test_victim_who_names_one_act_gets_its_steps_only():
    names = _names(_plan("agency_victim", "我交了服务费，对方不回消息了"))
    assert "utter_flag_fee_paid" in names and "utter_flag_data_handed_over" not in names


def test_victim_without_specifics_gets_the_whole_checklist():
    names = _names(_plan("agency_victim", "被协商公司坑了"))
    assert "utter_flag_paid_and_handed_over" in names


@pytest.mark.parametrize(
    "topic, text, segment_message",
    [
        ("seek_debt_agency", "哪里能找到反催收团队", "utter_segment_misled"),
        ("report_collection_abuse", "听说催收都是黑社会会上门打人，好害怕", "utter_segment_fuzzy"),
    ],
)
def test_segment_messages(topic, text, segment_message):
    assert segment_message in _names(_plan(topic, text))


def test_rational_users_go_straight_to_the_official_channel():
    names = _names(_plan("seek_debt_agency", "有个公司说交三千块服务费就能帮我停息挂账，靠谱吗"))
    assert names == ["utter_warn_debt_agency", "utter_official_channel_card_issuer"]


def test_the_deploying_bank_is_named_as_any_other_bank_outside_the_hardship_plan(monkeypatch):
    """Guidance names a lender's channel with the directory's numbers and the caveat whichever bank deploys the
    assistant; only the hardship plan speaks for the deploying bank with its own numbers and in-app path."""
    from bot import PROJECT_ROOT
    from bot.knowledge import load_knowledge

    monkeypatch.setenv("DEBT_HELP_DEPLOYMENT", str(PROJECT_ROOT / "docs" / "deployment.example.yml"))
    deployed = load_knowledge()
    plan = plan_guidance("ask_complaint_channel", ConversationState("招行信用卡乱收费怎么投诉"), deployed)
    assert _names(plan) == ["utter_list_complaint_channels", "utter_bank_channel"]
    assert plan.replies[1].variables["bank_numbers"] == "95555，信用卡 400-820-5555"


# ---------- a label never speaks for the user (issue 19) ----------

def test_a_rumour_about_not_paying_gets_the_evasion_answer_not_the_agency_warning():
    for text in ("听说利息超过36%就不用还了", "网贷是不是可以不还", "换了手机号是不是就不用还了"):
        plan = _plan("ask_evade_debt", text)
        names = _names(plan)
        assert names[0] == "utter_explain_evasion_risk" and "utter_official_channel_card_issuer" in names
        assert not {"utter_segment_misled", "utter_stopped_paying_consequence"} & set(names), (text, names)
        assert plan.slots["user_segment"] != "victim"


def test_a_plan_to_ask_the_bank_is_not_a_victim_and_later_answers_say_nothing_of_an_agency():
    first = _plan("ask_hardship_plan", "我想停止还款，先跟银行谈分期")
    assert first.slots["user_segment"] == "rational"
    later = _plan("ask_credit_record", "逾期记录保留几年", red_flags=tuple(first.slots["red_flags"]),
                  risk_level=first.slots["risk_level"], user_segment=first.slots["user_segment"])
    assert not [n for n in _names(later) if n.startswith("utter_segment_victim")]


@pytest.mark.parametrize("said, reminder", [
    ("我交了五千块服务费给协商公司", "utter_segment_victim_paid"),
    ("我把身份证和验证码都给了协商公司", "utter_segment_victim_handed_over"),
    ("交了服务费，还把身份证给了他们", "utter_segment_victim_paid_and_handed_over"),
])
def test_a_victims_later_reminder_names_only_what_they_said(said, reminder):
    first = _plan("agency_victim", said)
    later = _plan("ask_hardship_plan", "那我现在怎么跟银行协商", red_flags=tuple(first.slots["red_flags"]),
                  risk_level=first.slots["risk_level"], user_segment=first.slots["user_segment"])
    assert reminder in _names(later)


def test_a_victim_the_nlu_read_without_specifics_gets_a_reminder_that_asserts_nothing(domain):
    first = _plan("agency_victim", "被那个公司坑了")
    later = _plan("ask_credit_record", "怎么查征信", red_flags=tuple(first.slots["red_flags"]),
                  risk_level=first.slots["risk_level"], user_segment=first.slots["user_segment"])
    assert "utter_segment_victim" in _names(later)
    assert "您之前提到" not in domain["responses"]["utter_segment_victim"][0]["text"]


def test_reported_harassment_with_fear_gets_the_complaint_route_without_the_fuzzy_message():
    for text in ("催收天天打电话给我家人，我很害怕", "他们爆我通讯录还威胁我，好害怕"):
        names = _names(_plan("report_collection_abuse", text))
        assert names[0] == "utter_guide_collection_complaint" and "utter_segment_fuzzy" not in names


def test_a_misled_user_is_not_told_again_on_an_unrelated_flag():
    first = _plan("seek_debt_agency", "哪里能找到反催收团队")
    later = _plan("report_collection_abuse", "催收天天骂我", red_flags=tuple(first.slots["red_flags"]),
                  risk_level=first.slots["risk_level"], user_segment=first.slots["user_segment"])
    assert "utter_segment_misled" not in _names(later)
