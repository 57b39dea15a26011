"""Personal data is masked: resident IDs (check digit), mobiles, bank cards (Luhn), codes, long numbers."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.privacy import (
    CARD_PLACEHOLDER,
    CODE_PLACEHOLDER,
    ID_PLACEHOLDER,
    MOBILE_PLACEHOLDER,
    is_valid_resident_id,
    mask_pii,
    mask_pii_with_counts,
    passes_luhn,
)

VALID_ID = "11010519491231002X"  # the GB 11643 worked example


def _luhn_complete(prefix: str) -> str:
    for check in "0123456789":
        if passes_luhn(prefix + check):
            return prefix + check
    raise AssertionError("unreachable")


CARD = _luhn_complete("622202123456789012")  # 19 digits


def test_resident_id_check_digit():
    assert is_valid_resident_id(VALID_ID)
    assert is_valid_resident_id(VALID_ID.lower())
    assert not is_valid_resident_id("110105194912310021")
    assert not is_valid_resident_id("11010519491231002")


def test_resident_id_is_masked():
    masked, counts = mask_pii_with_counts(f"我的身份证是{VALID_ID}，能帮我查吗")
    assert VALID_ID not in masked and ID_PLACEHOLDER in masked
    assert counts == {"resident_id": 1}


def test_mobile_numbers_in_common_formats_are_masked():
    for written in ("13812345678", "138 1234 5678", "138-1234-5678", "+86 13812345678", "8613812345678"):
        masked = mask_pii(f"催收打我电话{written}好多次")
        assert MOBILE_PLACEHOLDER in masked, written
        assert not re.search(r"\d{4}", masked), masked


def test_bank_card_with_luhn_is_masked_with_or_without_spaces():
    assert passes_luhn(CARD)
    spaced = " ".join(CARD[i:i + 4] for i in range(0, len(CARD), 4))
    for written in (CARD, spaced):
        masked = mask_pii(f"卡号{written}还款失败")
        assert CARD_PLACEHOLDER in masked and not re.search(r"\d{4}", masked), masked


def test_verification_code_is_masked():
    masked = mask_pii("中介让我把验证码是482913发给他")
    assert CODE_PLACEHOLDER in masked and "482913" not in masked


def test_amounts_and_durations_are_left_alone():
    text = "欠了20000元，2w多，逾期90天，每月能还1500，2024年借的"
    assert mask_pii(text) == text


def test_twelve_digit_non_luhn_number_is_kept():
    number = "123456789013"
    assert not passes_luhn(number)
    assert mask_pii(f"合同编号{number}") == f"合同编号{number}"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_masking_never_raises_and_is_idempotent(text):
    once = mask_pii(text)
    assert isinstance(once, str)
    assert mask_pii(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="我欠款了号码是：, 0123456789", max_size=60), st.sampled_from([VALID_ID, CARD, "13912345678"]))
def test_embedded_personal_numbers_never_survive(prefix, secret):
    masked = mask_pii(f"{prefix} {secret} 谢谢")
    assert secret not in masked
