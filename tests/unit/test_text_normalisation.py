"""Text normalisation before tokenisation, and quantity parsing into yuan and days."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.quantities import find_quantities, parse_amount_yuan, parse_chinese_integer, parse_duration_days
from bot.text_normalisation import compact, normalise_text


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ＸＹＫ逾期", "xyk逾期"),
        ("停息掛帳，徵信修復", "停息挂帐,征信修复"),
        ("怎么办！！！", "怎么办!  "),
        ("救命😭😭", "救命  "),
        ("　你好", " 你好"),
        ("ZX花了", "zx花了"),
    ],
)
def test_normalisation(raw, expected):
    assert normalise_text(raw) == expected


def test_compact_drops_whitespace():
    assert compact("征 信 修 复 ！！") == "征信修复!"


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_normalisation_keeps_the_length_and_never_raises(text):
    normalised = normalise_text(text)
    assert len(normalised) == len(text)
    assert normalise_text(normalised) == normalised or len(normalise_text(normalised)) == len(text)


@pytest.mark.parametrize(
    "written, yuan",
    [("2w", 20000), ("2W", 20000), ("两万", 20000), ("2万元", 20000), ("20000", 20000), ("1.5万", 15000),
     ("3千", 3000), ("两万五", 25000), ("五十万", 500000), ("20k", 20000), ("8000块", 8000), ("一百零五", 105)],
)
def test_amounts_in_yuan(written, yuan):
    assert parse_amount_yuan(written) == yuan


@pytest.mark.parametrize(
    "written, days",
    [("三个月", 90), ("90天", 90), ("半年", 182), ("两年多", 730), ("1年半", 547), ("两周", 14), ("一个多月", 30)],
)
def test_durations_in_days(written, days):
    assert parse_duration_days(written) == days


def test_unreadable_quantities_are_none():
    assert parse_amount_yuan("很多钱") is None
    assert parse_duration_days("好久") is None
    assert parse_chinese_integer("万") is None


def test_quantities_found_in_a_sentence():
    found = find_quantities("信用卡欠了2w多，网贷五十万，逾期三个月了，分了12期，打了3次电话")
    assert [(q.entity, q.value) for q in found] == [("amount", 20000), ("amount", 500000),
                                                     ("overdue_duration", 90)]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_quantity_search_never_raises(text):
    for quantity in find_quantities(text):
        assert text[quantity.start:quantity.end] == quantity.text
