"""Sub-topics within the intents (bot/subtopics.py, data/subtopics/subtopics.yml): which question a message asks, the
answer it gets (bot.guidance), and that every answer fits the turn limits of issue 19, without a Rasa server."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from pydantic import ValidationError
from rasa.core.nlg.interpolator import interpolate_text

from bot import subtopics
from bot.guidance import MAX_SUBTOPIC_BUBBLES, ConversationState, fallback_topic, plan_guidance
from bot.intents import ALL_INTENTS, NLU_FALLBACK
from bot.risk import default_risk_engine

FIRST_BUBBLE_MAX = 120
TURN_MAX = 350
"""Issue 19: the first message at most about 120 characters and the direct answer; a turn at most about 350."""

# (intent the NLU gives, message, sub-topic): phrasings written for this test, two or more per sub-topic.
ASKED = [
    ("ask_legal_risk", "法院给我寄了传票，下个月开庭，我该怎么办", "court_summons"),
    ("ask_legal_risk", "银行说要告我，会不会直接强制执行", "court_summons"),
    ("ask_legal_risk", "信用卡欠款会不会被列为失信人，影响我孩子考公务员", "enforcement_effects"),
    ("ask_credit_record", "被限高了还能坐高铁吗", "enforcement_effects"),
    ("agency_victim", "法院寄来传票了，说信用卡被起诉", "court_summons"),  # the NLU's mistake; no victim event
    ("report_collection_abuse", "收到法院开庭通知，要去应诉吗", "court_summons"),
    ("ask_complaint_channel", "工行的客服电话是多少", "bank_number"),
    ("out_of_scope", "中信银行热线是什么", "bank_number"),
    ("ask_complaint_channel", "有个电话自称是广发银行的，说我要被起诉，怎么辨别是不是真的银行", "verify_caller"),
    ("report_collection_abuse", "来电说是建行信用卡中心的，让我转账，是不是骗子打的", "verify_caller"),
    ("ask_credit_record", "人民银行那个一次性信用修复到底是怎么回事", "one_time_credit_repair"),
    ("seek_credit_repair", "一万以内的逾期是不是不再展示了", "one_time_credit_repair"),
    ("agency_victim", "之前交给那个协商公司的服务费还能要回来吗", "fee_refund"),
    ("seek_debt_agency", "法务公司收了我三千不办事，怎么把钱追回", "fee_refund"),
    ("ask_hardship_plan", "我有四张信用卡和好几个网贷都逾期了，先还哪个", "several_debts"),
    ("ask_hardship_plan", "同时欠了七八个平台，应该怎么处理", "several_debts"),
    ("seek_debt_agency", "抖音上说国家出台了停息挂账新政策，是真的吗", "new_policy_rumour"),
    ("ask_hardship_plan", "听说现在有债务回收试点，可以申请吗", "new_policy_rumour"),
    ("ask_hardship_plan", "个性化分期办下来以后还收利息吗", "art70_terms"),
    ("ask_hardship_plan", "停息挂账是什么意思，真的能不计息吗", "art70_terms"),
]

NOT_ASKED = [
    ("report_collection_abuse", "催收天天打电话给我家人，我很害怕"),  # harassment: the complaint route
    ("seek_debt_agency", "有人说交三千能帮我停息挂账，利息还收吗"),  # a seller's pitch first
    ("ask_hardship_plan", "信用卡逾期三个月了想自己跟银行协商分期"),  # the form's own start
    ("express_distress", "法院要起诉我，我不想活了"),  # danger is never a sub-topic
    ("agency_victim", "我把身份证给了他们，问一下招商银行电话多少"),  # a victim gets the stop-loss steps
    ("report_collection_abuse", "催收天天打电话说要起诉我"),  # harassment: the complaint route
    ("agency_victim", "交了五千服务费，他们说法院要起诉我"),  # a victim event: the stop-loss steps
]


def _plan(intent, text, on=None, **state):
    engine = default_risk_engine()
    topic = fallback_topic(text, engine, intent) if intent in ("nlu_fallback", "out_of_scope") else intent
    assert topic is not None, text
    return plan_guidance(topic, ConversationState(text, intent=intent, **state), subtopics_knowledge(), engine, on=on)


def subtopics_knowledge():
    from bot.knowledge import default_knowledge

    return default_knowledge()


def _rendered(plan, domain):
    return [interpolate_text(domain["responses"][r.response][0]["text"], r.variables) for r in plan.replies]


def test_the_file_names_only_known_intents_and_domain_responses(domain):
    for subtopic in subtopics.default_subtopics():
        assert set(subtopic.intents) <= set(ALL_INTENTS) | {NLU_FALLBACK}, subtopic.id
        assert subtopic.topic in subtopic.intents, subtopic.id
        assert "express_distress" not in subtopic.intents and "request_human" not in subtopic.intents
        for response in subtopic.responses:
            assert response in subtopics.TOKENS or response in domain["responses"], response
    assert subtopics.UNKNOWN_BANK_RESPONSE in domain["responses"]


def test_every_required_subtopic_is_listed():
    assert {s.id for s in subtopics.default_subtopics()} >= {
        "one_time_credit_repair", "court_summons", "enforcement_effects", "fee_refund", "several_debts",
        "verify_caller",
        "bank_number", "new_policy_rumour", "art70_terms"}


@pytest.mark.parametrize("intent, text, expected", ASKED)
def test_a_question_within_an_intent_gets_its_subtopic(intent, text, expected):
    plan = _plan(intent, text)
    assert plan.slots.get("subtopic") == expected


def test_each_subtopic_is_covered_by_at_least_two_phrasings_here():
    counts = {}
    for _intent, _text, expected in ASKED:
        counts[expected] = counts.get(expected, 0) + 1
    assert all(counts.get(s.id, 0) >= 2 for s in subtopics.default_subtopics()), counts


@pytest.mark.parametrize("intent, text", NOT_ASKED)
def test_messages_that_ask_no_subtopic_keep_the_topics_answer(intent, text):
    assert "subtopic" not in _plan(intent, text).slots


@pytest.mark.parametrize("intent, text, expected", ASKED)
def test_every_subtopic_answer_fits_the_turn_limits(domain, intent, text, expected):
    for on in (dt.date(2026, 1, 15), dt.date(2026, 12, 3)):  # before and after the credit repair deadline
        bubbles = _rendered(_plan(intent, text, on=on), domain)
        assert 1 <= len(bubbles) <= MAX_SUBTOPIC_BUBBLES, bubbles
        assert len(bubbles[0]) <= FIRST_BUBBLE_MAX, bubbles[0]
        assert sum(len(b) for b in bubbles) <= TURN_MAX, bubbles
        assert not re.search(r"{[^{}\n]+}", "".join(bubbles)), bubbles


def test_a_bank_number_is_given_with_the_card_and_app_warning_and_only_from_the_directory(domain, knowledge):
    bubbles = _rendered(_plan("ask_complaint_channel", "招行的电话号码是多少"), domain)
    assert "95555" in bubbles[0] and "400-820-5555" in bubbles[0]
    assert "银行卡背面" in bubbles[0] and "官方App" in bubbles[0] and "中介" in bubbles[0]
    no_number = _rendered(_plan("ask_complaint_channel", "邮储银行的客服电话是多少"), domain)
    assert not re.search(r"\d", no_number[0]) and "银行卡背面" in no_number[0]
    unnamed = _plan("ask_complaint_channel", "银行客服电话是多少")
    assert [r.response for r in unnamed.replies] == [subtopics.UNKNOWN_BANK_RESPONSE]


def test_the_one_time_credit_repair_answer_says_when_the_deadline_has_passed(domain, knowledge):
    fact = knowledge.fact("policy_one_time_credit_repair")
    text = "央行的一次性信用修复是什么"
    before = "".join(_rendered(_plan("ask_credit_record", text, on=fact.valid_until), domain))
    after = "".join(_rendered(_plan("ask_credit_record", text, on=fact.valid_until + dt.timedelta(days=1)), domain))
    assert fact.value in before and "已经过了" not in before
    assert fact.value not in after and "已经过了" in after and "免费" in after


def test_the_art70_answer_says_what_the_agreement_settles_without_promising_a_stop_to_interest(domain):
    text = "".join(_rendered(_plan("ask_hardship_plan", "签了个性化分期还款协议以后还有利息吗"), domain))
    assert "是否继续收取利息和费用" in text and "没有义务" in text and "不是减免债务" in text
    assert "第七十条" in text and "5年" in text
    assert "不收利息" not in text and "免息" not in text


def test_the_court_answers_state_only_what_the_knowledge_holds(domain):
    summons = "".join(_rendered(_plan("ask_legal_risk", "收到法院传票了，明天开庭怎么办"), domain))
    assert "民事" in summons and "第二百四十七条" in summons and "第三百一十三条" in summons
    effects = _rendered(_plan("ask_legal_risk", "收到法院传票了，会影响孩子上学吗"), domain)
    assert "没有可核实的资料" in effects[0]  # 失信/限高 effects on work and children are not in data/knowledge/
    assert "第二百四十七条" in effects[1]


@pytest.mark.parametrize("intent, text", [
    ("ask_evade_debt", "怎么把微信里的钱转走不被冻结"),  # hiding assets: the evasion answer, not the court's
    ("ask_credit_record", "去哪打征信报告 我不会用手机"),
    ("ask_complaint_channel", "交行的信用卡多收了违约金，朋友说能投诉退回来，哪里投"),  # the bank's own charge
    ("seek_credit_repair", "网上那种征信修复公司说不成功全额退款，能信吗"),  # a pitch, not a refund
    ("ask_evade_debt", "听说好多网贷不合规 所以可以一分都不还？"),
    ("seek_debt_agency", "有个自称银行内部的人说能帮我做个性化分期，这人靠谱吗"),  # a seller: its warning
    ("ask_complaint_channel", "我广发的卡突然被冻结了，想正式投诉"),  # a bank's freeze, not a court's
    ("ask_legal_risk", "欠了好几家银行的卡都逾期了 要担啥法律责任"),  # liability: the legal answer
    ("seek_debt_agency", "我建行和中行的卡都逾期了，想找个专门帮人协商的机构"),  # looking for an agency
    ("ask_complaint_channel", "京东金条的利息超过国家规定了吧 我想举报他们"),
])
def test_near_misses_from_the_held_out_file_keep_their_own_answer(intent, text):
    assert "subtopic" not in _plan(intent, text).slots


def test_the_new_policy_answer_does_not_repeat_the_generic_false_promise_warning():
    plan = _plan("seek_debt_agency", "听说有新政策可以全额停息")
    names = [r.response for r in plan.replies]
    assert names[0] == "utter_subtopic_new_policy" and "utter_flag_false_promise" not in names


def test_a_caller_check_names_the_users_bank_line_after_the_advice(domain):
    plan = _plan("ask_complaint_channel", "有人自称招商银行的客服，怎么确认是不是真的银行")
    names = [r.response for r in plan.replies]
    assert names == ["utter_subtopic_verify_caller", "utter_subtopic_verify_caller_more", "utter_bank_channel"]


def test_an_unplaced_message_is_answered_by_the_subtopic_it_asks():
    assert fallback_topic("兴业银行电话多少", default_risk_engine(), "out_of_scope") == "ask_complaint_channel"
    assert fallback_topic("今天天气怎么样", default_risk_engine(), "out_of_scope") is None


def test_match_requires_the_intent_and_respects_the_vetoes():
    assert subtopics.match("个性化分期以后还收利息吗", "ask_hardship_plan").id == "art70_terms"
    assert subtopics.match("个性化分期以后还收利息吗", "express_distress") is None
    assert subtopics.match("个性化分期以后还收利息吗", "ask_hardship_plan", ["agency_offer"]) is None
    assert subtopics.match("", "ask_hardship_plan") is None
    assert subtopics.match("冒充法院的人说要起诉我", "ask_legal_risk") is None


def _write(tmp_path, body):
    path = tmp_path / "subtopics.yml"
    path.write_text(body, encoding="utf-8")
    return path


def test_a_bad_file_is_refused_on_load(tmp_path):
    entry = "subtopics:\n  - {id: a, intents: [ask_legal_risk], topic: ask_legal_risk, responses: [utter_x], %s}\n"
    with pytest.raises(ValidationError):
        subtopics.load_subtopics(_write(tmp_path, entry % "regex: ['(']"))
    with pytest.raises(ValidationError):
        subtopics.load_subtopics(_write(tmp_path, entry % "patterns: [ABC]"))  # not in compact form
    with pytest.raises(ValidationError):
        subtopics.load_subtopics(_write(tmp_path, entry % "colour: red"))
    with pytest.raises(ValueError):
        subtopics.load_subtopics(_write(tmp_path, entry % "unless: [x]"))  # nothing to match
    loaded = subtopics.load_subtopics(_write(tmp_path, entry % "patterns: [传票]"))
    assert subtopics.match("收到传票", "ask_legal_risk", subtopics=loaded).id == "a"
