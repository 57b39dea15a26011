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
        ("网贷是不是可以不还", "ask_evade_debt", "misled", "medium"),
        ("有人说能帮我停息挂账，靠谱吗", "seek_debt_agency", "rational", "medium"),
        ("听说催收都是黑社会，好害怕", "report_collection_abuse", "fuzzy", "low"),
        ("信用卡还不上了想跟银行协商", "ask_hardship_plan", "rational", "none"),
        ("我交了五千服务费，人跑了", "agency_victim", "victim", "high"),
        ("他们让我先别还了", "ask_hardship_plan", "victim", "high"),
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
