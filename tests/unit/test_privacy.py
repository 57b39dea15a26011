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


# --- Every everyday way of typing personal data (bot.privacy's normalised view) ---------------------------------

from bot.privacy import (  # noqa: E402
    EMAIL_PLACEHOLDER,
    LANDLINE_PLACEHOLDER,
    QQ_PLACEHOLDER,
    WECHAT_PLACEHOLDER,
    detection_view,
)

SEPARATORS = [" ", "  ", "-", ".", "·", "—", "/", "_", "\u3000", "－"]
INVISIBLES = ["\u00ad", "\u200b", "\u2060", "\ufeff", "\u200e"]
FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
CHINESE = str.maketrans("0123456789", "零一二三四五六七八九")
CONTEXT = st.text(alphabet="我的是请帮查一下催收银行卡号手机电话，。：！ 谢", max_size=12).map(
    lambda s: s.replace("一", ""))  # no stray numeral next to the secret


def _digits_left(masked: str) -> str:
    return re.sub(r"\D", "", detection_view(masked)[0])


def _resident_id(body: str) -> str:
    from bot.privacy import _ID_CHECK, _ID_WEIGHTS

    return body + _ID_CHECK[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


@st.composite
def typed(draw, digits: str) -> str:
    """``digits`` as a person might type them: regrouped with separators, full-width, with invisible
    characters, or spelled in Chinese numerals."""
    style = draw(st.sampled_from(["plain", "grouped", "full_width", "invisible", "chinese"]))
    if style == "chinese":
        return digits.translate(CHINESE)
    if style == "full_width":
        return digits.translate(FULL_WIDTH)
    out = []
    for index, char in enumerate(digits):
        out.append(char)
        if index < len(digits) - 1 and draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from(INVISIBLES if style == "invisible" else SEPARATORS)))
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.data(), CONTEXT, CONTEXT)
def test_mobiles_ids_and_cards_never_survive_however_they_are_typed(data, before, after):
    kind = data.draw(st.sampled_from(["mobile", "resident_id", "bank_card"]))
    if kind == "mobile":
        secret = data.draw(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
    elif kind == "resident_id":
        secret = _resident_id(data.draw(st.from_regex(r"[1-6][0-9]{5}(19|20)[0-9]{9}", fullmatch=True)))
    else:
        secret = _luhn_complete(data.draw(st.from_regex(r"62[0-9]{14}", fullmatch=True)))
    masked = mask_pii(f"{before}{data.draw(typed(secret))}{after}")
    assert secret.rstrip("X") not in _digits_left(masked), masked


def test_the_ways_a_review_found_to_slip_past_the_mask_are_masked():
    cases = {
        "手机138-1234-5678": MOBILE_PLACEHOLDER,
        "手机 1381 234 5678": MOBILE_PLACEHOLDER,
        "手机138.1234.5678": MOBILE_PLACEHOLDER,
        "手机１３８１２３４５６７８": MOBILE_PLACEHOLDER,
        "手机一三八一二三四五六七八": MOBILE_PLACEHOLDER,
        "手机幺三八幺二三四五六七八": MOBILE_PLACEHOLDER,
        "手机138\u00ad1234\u20605678": MOBILE_PLACEHOLDER,
        "＋86 138 1234 5678": MOBILE_PLACEHOLDER,
        f"身份证{VALID_ID[:6]}-{VALID_ID[6:14]}-{VALID_ID[14:]}": ID_PLACEHOLDER,
        f"卡号{'.'.join(CARD[i:i + 4] for i in range(0, len(CARD), 4))}": CARD_PLACEHOLDER,
        "验证码是：123456": CODE_PLACEHOLDER,
        "验证码 1 2 3 4 5 6 快发我": CODE_PLACEHOLDER,
        "邮箱 zhang.san_88@example.com.cn": EMAIL_PLACEHOLDER,
        "邮箱１３８１２３４５６７８＠163。com": EMAIL_PLACEHOLDER,
        "加我微信号：Zhang_San1988": WECHAT_PLACEHOLDER,
        "vx wxid_a1b2c3d4": WECHAT_PLACEHOLDER,
        "QQ 12345678": QQ_PLACEHOLDER,
        "扣扣号：987654321": QQ_PLACEHOLDER,
        "单位电话010-12345678": LANDLINE_PLACEHOLDER,
        "(0755) 8888 6666": LANDLINE_PLACEHOLDER,
        "座机 62345678": LANDLINE_PLACEHOLDER,
    }
    for text, placeholder in cases.items():
        masked = mask_pii(text)
        assert placeholder in masked, (text, masked)
        assert not re.search(r"\d{4}", detection_view(masked)[0]), (text, masked)


def test_amounts_dates_durations_and_public_hotlines_are_kept_as_written():
    for text in ("欠了20000元，2w多，逾期90天，每月能还1500，2024年借的", "2024-12-02 10:30 打过 12378",
                 "招行客服95555，信用卡中心400-820-5555，报警110，心理援助12356", "利息36%，借了3.5万，一万三千块",
                 "第一次逾期是三个月前，一共五六万", "合同编号123456789013", "验证码没收到"):
        assert mask_pii(text) == text, text


def test_the_rest_of_the_text_is_kept_exactly_and_counts_name_each_kind():
    masked, counts = mask_pii_with_counts("ＩＤ：" + VALID_ID + "，电话 138 1234 5678，邮箱 a.b@qq.com 谢谢！")
    assert masked == f"ＩＤ：{ID_PLACEHOLDER}，电话 {MOBILE_PLACEHOLDER}，邮箱 {EMAIL_PLACEHOLDER} 谢谢！"
    assert counts == {"resident_id": 1, "mobile": 1, "email": 1}


def test_a_mobile_next_to_another_number_is_still_masked():
    masked = mask_pii("电话13812345678 2万 也行")
    assert MOBILE_PLACEHOLDER in masked and "2万" in masked
