"""The risk engine (bot/risk.py): every red-flag class, every segment, memory across turns, bad input."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.knowledge import load_lexicon
from bot.risk import RISK_LEVELS, SEGMENTS, default_risk_engine


@pytest.fixture(scope="module")
def engine():
    return default_risk_engine()


@pytest.mark.parametrize(
    "text, flag",
    [
        ("他们说不成功不收费，包上岸", "false_promise"),
        ("停息掛帳百分百成功", "false_promise"),
        ("要先交3000服务费", "upfront_fee"),
        ("说交两千就能帮我办", "upfront_fee"),
        ("按欠款的6个点收费", "upfront_fee"),
        ("我已经交了服务费，现在联系不上", "fee_paid"),
        ("钱转过去了对方就拉黑我了", "fee_paid"),
        ("我交了五千块服务费给协商公司", "fee_paid"),
        ("付了两万给法务团队", "fee_paid"),
        ("我把身份证和验证码都给了协商公司", "data_handed_over"),
        ("手机卡寄给他们了", "data_handed_over"),
        ("签了委托书", "data_handed_over"),
        ("中介让我先别还了", "told_to_stop_paying"),
        ("他们叫我停止还款", "told_to_stop_paying"),
        ("让我开个贫困证明", "forgery_request"),
        ("要我去医院开假病历", "forgery_request"),
        ("他们用我的名义投诉银行", "complaint_leverage"),
        ("可以帮我恶意投诉逼银行减免", "complaint_leverage"),
        ("想找反催收团队", "anti_collection"),
        ("有人说能帮我修复zx", "agency_offer"),
        ("征xin修复靠谱吗", "agency_offer"),
        ("有个债务优化公司找我", "agency_offer"),
        ("听说催收都是黑社会会上门打人", "collection_fear"),
        ("催收爆通讯录还威胁我", "collection_abuse"),
    ],
)
def test_each_red_flag_class_is_found_in_colloquial_text(engine, text, flag):
    assert flag in engine.find_flags(text)


@pytest.mark.parametrize("text", ["我还没交钱", "我没有把身份证给他们", "我不会去开假证明", "没签委托书"])
def test_negated_mentions_are_not_flags(engine, text):
    assert not {"fee_paid", "data_handed_over", "forgery_request"} & set(engine.find_flags(text))


def test_ordinary_questions_raise_no_flags(engine):
    for text in ("信用卡还不上了想跟银行协商", "逾期记录保留几年", "怎么查征信", "你好"):
        assert engine.find_flags(text) == []


@pytest.mark.parametrize(
    "text, intent, segment, level",
    [
        ("想找反催收团队帮我对付催收", "seek_debt_agency", "misled", "medium"),
        ("网贷是不是可以不还", "ask_evade_debt", None, "medium"),
        ("有个反催收团队说能帮我不还网贷", "ask_evade_debt", "misled", "medium"),
        ("有人说能帮我停息挂账，靠谱吗", "seek_debt_agency", "rational", "medium"),
        ("听说催收都是黑社会，好害怕", "report_collection_abuse", "fuzzy", "low"),
        ("信用卡还不上了想跟银行协商", "ask_hardship_plan", "rational", "none"),
        ("我交了五千服务费，人跑了", "agency_victim", "victim", "high"),
        ("他们让我先别还了", "ask_hardship_plan", "rational", "medium"),
    ],
)
def test_segments_and_levels(engine, text, intent, segment, level):
    result = engine.assess(text, intent)
    assert (result.segment, result.level) == (segment, level)


def test_the_conversation_remembers_victims_and_never_lowers_the_level(engine):
    first = engine.assess("我把验证码给了协商老师", "agency_victim")
    later = engine.assess("怎么查征信", "ask_credit_record", first.red_flags, first.level, first.segment)
    assert later.segment == "victim" and later.level == "high"
    assert later.red_flags == first.red_flags and later.new_flags == ()


def test_flags_accumulate_across_turns(engine):
    first = engine.assess("他们说不成功不收费", "seek_debt_agency")
    second = engine.assess("还要我交服务费", "seek_debt_agency", first.red_flags, first.level, first.segment)
    assert second.red_flags == ("false_promise", "upfront_fee")


def test_unknown_previous_values_are_ignored(engine):
    result = engine.assess("你好", "greet", previous_flags=[None, 3, "x"], previous_level="extreme",
                           previous_segment="alien")
    assert result.level == "none" and result.segment is None and result.red_flags == ("x",)


def test_lexicon_entries_all_have_sources():
    lexicon = load_lexicon()
    assert {f.kind for f in lexicon.flags} >= {"promise", "fee", "data", "method", "victim_event"} - {"data"}
    assert all(f.source and (f.patterns or f.regex) for f in lexicon.flags)


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from([None, "seek_debt_agency", "agency_victim", "greet"]))
def test_random_unicode_never_breaks_the_engine(engine, text, intent):
    result = engine.assess(text, intent)
    assert result.level in RISK_LEVELS
    assert result.segment is None or result.segment in SEGMENTS


# ---------- segments come only from what the person said about themself (issue 19) ----------

@pytest.mark.parametrize("text", [
    "听说利息超过36%就不用还了",
    "网上说网贷超过三年就不用还了，是真的吗",
    "我想停止还款，先跟银行谈分期",
    "我打算暂停还款一个月，会怎样",
    "听说交了钱就能停息挂账",
    "如果把身份证给他们会怎样",
    "要是交了服务费还办不成怎么办",
    "交了钱就能办吗",
    "我朋友交了钱被骗了",
    "有人说先别还了，等着银行来谈",
])
def test_a_rumour_a_plan_a_hypothesis_or_someone_elses_story_is_no_victim_event(engine, text):
    result = engine.assess(text, "ask_evade_debt")
    assert not {"fee_paid", "data_handed_over", "told_to_stop_paying"} & set(result.new_flags), result.new_flags
    assert result.segment != "victim"


@pytest.mark.parametrize("text, flag", [
    ("我已经付了3000，现在人找不到了", "fee_paid"),
    ("上周我交了两千块给他们", "fee_paid"),
    ("钱转过去了对方就拉黑我了", "fee_paid"),
    ("我把身份证照片发给他们了", "data_handed_over"),
    ("我跟那个公司签了委托书", "data_handed_over"),
    ("验证码也给了", "data_handed_over"),
])
def test_a_first_person_past_act_makes_a_victim(engine, text, flag):
    result = engine.assess(text, "ask_hardship_plan")
    assert flag in result.new_flags and result.segment == "victim" and result.level == "high"


@pytest.mark.parametrize("text", ["中介让我先别还了", "那个协商老师叫我停止还款", "他们说让我暂停还款等通知",
                                  "法务公司建议我先不还"])
def test_an_agents_instruction_to_stop_paying_is_a_red_flag_but_not_a_victim(engine, text):
    result = engine.assess(text, "ask_hardship_plan")
    assert "told_to_stop_paying" in result.new_flags
    assert result.segment != "victim" and result.level == "medium"


def test_an_nlu_victim_reading_of_hearsay_makes_no_victim(engine):
    assert engine.assess("听说他们收了钱就跑", "agency_victim").segment != "victim"
    assert engine.assess("那个公司把我坑惨了", "agency_victim").segment == "victim"
    assert engine.assess("中介让我先别还了", "agency_victim").segment != "victim"


@pytest.mark.parametrize("text", [
    "催收天天打电话给我家人，我很害怕",
    "他们爆我通讯录，还威胁要上门，好害怕",
    "催收一直打电话骚扰我，吓死了",
    "催收打到我单位去了，我好怕",
])
def test_reported_harassment_is_harassment_whatever_the_fear(engine, text):
    result = engine.assess(text, "report_collection_abuse")
    assert "collection_abuse" in result.new_flags
    assert result.segment != "fuzzy"


def test_fear_alone_is_not_the_fuzzy_belief(engine):
    assert engine.assess("我好害怕", "report_collection_abuse").segment != "fuzzy"
    assert engine.assess("网上说催收都是黑社会，会上门打人", "report_collection_abuse").segment == "fuzzy"


@pytest.mark.parametrize("text", ["网贷是不是可以不还", "换个手机号是不是就找不到我了", "欠的钱不还会怎么样",
                                  "信用卡不还能拖多久"])
def test_evasion_without_an_agency_is_not_the_misled_segment(engine, text):
    assert engine.assess(text, "ask_evade_debt").segment is None
