"""Mask personal data in user text before it is persisted, logged or passed to the dialogue.

Detection runs on a normalised view of the text, so that the way a number is typed does not hide it: each
character is NFKC-normalised (full-width digits and letters, ＠), invisible formatting characters (Unicode
category Cf: soft hyphen, zero-width space, word joiner, byte-order mark, bidi marks) are dropped, and Chinese
numerals (零〇一幺二三四五六七八九 and the financial 壹贰叁肆伍陆柒捌玖) read as digits. Digits may be separated by up
to two spaces, hyphens or dashes, dots, slashes, middle dots or underscores, in any grouping (138-1234-5678,
1381 234 5678, 138.1234.5678). What is masked, and how it is recognised:

* mainland resident ID numbers: 17 digits plus a check character, validated with the GB 11643-1999
  ISO 7064 MOD 11-2 check digit (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2);
* mainland mobile numbers: 11 digits starting 13-19, optionally after 86 or +86;
* landlines: 10-12 digits starting with 0 (area code 0xx or 0xxx and a 7-8 digit number), or 7-8 digits
  right after 电话, 座机, 固话, 号码 or 联系方式;
* bank card numbers: 12-19 digits passing the Luhn check;
* SMS verification codes: 4-8 digits shortly after 验证码, 校验码, 动态码, 短信码 or code;
* e-mail addresses; QQ numbers (5-11 digits after QQ, 扣扣 or 企鹅); WeChat ids (6-20 letters, digits, _ or -,
  starting with a letter, after 微信, vx, wx, v信, 薇信 or wechat);
* any other run of 15 or more digits (defensive: an ID or card with a typo is still personal data).

Masking replaces each match, in the original text, with a bracketed placeholder in Chinese, so the dialogue
still knows that the user shared such data (which is itself a risk signal), but the data is gone. The rest of
the text is left exactly as the user wrote it. Public hotlines (110, 12378, 95555, 400-820-5555) are kept:
none of them has the shape of personal data.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable, Dict, List, Optional, Tuple

ID_PLACEHOLDER = "[身份证号已隐藏]"
MOBILE_PLACEHOLDER = "[手机号已隐藏]"
LANDLINE_PLACEHOLDER = "[电话号码已隐藏]"
CARD_PLACEHOLDER = "[银行卡号已隐藏]"
CODE_PLACEHOLDER = "[验证码已隐藏]"
EMAIL_PLACEHOLDER = "[邮箱已隐藏]"
QQ_PLACEHOLDER = "[QQ号已隐藏]"
WECHAT_PLACEHOLDER = "[微信号已隐藏]"
NUMBER_PLACEHOLDER = "[长数字已隐藏]"

PLACEHOLDERS = {"resident_id": ID_PLACEHOLDER, "mobile": MOBILE_PLACEHOLDER, "landline": LANDLINE_PLACEHOLDER,
                "bank_card": CARD_PLACEHOLDER, "verification_code": CODE_PLACEHOLDER, "email": EMAIL_PLACEHOLDER,
                "qq": QQ_PLACEHOLDER, "wechat_id": WECHAT_PLACEHOLDER, "long_number": NUMBER_PLACEHOLDER}
"""The placeholder for each kind of personal data (the kinds ``mask_pii_with_counts`` counts)."""

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

CHINESE_DIGITS = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "三": "3", "四": "4", "五": "5", "六": "6",
                  "七": "7", "八": "8", "九": "9", "壹": "1", "贰": "2", "叁": "3", "肆": "4", "伍": "5", "陆": "6",
                  "柒": "7", "捌": "8", "玖": "9"}
"""Chinese numerals read as digits when a number is spelled out (一三八…, 幺 as said on the phone)."""

_SEPARATOR = r"[ \t\-\u2010-\u2015\u2212._·•/\\()（）]"
_DIGIT_GROUPS = re.compile(rf"\d+(?:{_SEPARATOR}{{1,2}}\d+)*(?:{_SEPARATOR}{{0,2}}[Xx](?![A-Za-z]))?")
_GROUP = re.compile(r"\d+|[Xx]")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:[.。][A-Za-z0-9\-]+)+")
_WECHAT = re.compile(r"(?i:微信号?|威信|薇信|v信|vx|wx|wechat|weixin)[^A-Za-z0-9\n]{0,4}([A-Za-z][A-Za-z0-9_\-]{5,19})"
                     r"(?![A-Za-z0-9_\-])")
_CODE_CONTEXT = re.compile(r"(?i:验证码|校验码|动态码|短信码|code)[^0-9\n]{0,6}$")
_QQ_CONTEXT = re.compile(r"(?i:qq|扣扣|企鹅)[^0-9\n]{0,4}$")
_LANDLINE_CONTEXT = re.compile(r"(?:电话|座机|固话|号码|联系方式)[^0-9\n]{0,4}$")


def is_valid_resident_id(candidate: str) -> bool:
    """True if ``candidate`` (18 chars) has a valid GB 11643-1999 check character (X case-insensitive)."""
    if len(candidate) != 18 or not candidate[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(candidate[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == candidate[17].upper()


def passes_luhn(digits: str) -> bool:
    """True if the digit string passes the Luhn (mod 10) check used by bank card numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def detection_view(text: str) -> Tuple[str, List[int]]:
    """The text as the detectors read it, and for each of its characters the index of the original character.

    NFKC per character, Cf (invisible formatting) characters dropped, Chinese numerals as digits. The view may be
    shorter or longer than ``text`` (NFKC can expand a character); ``origin[i]`` is always a valid index of ``text``.
    """
    chars: List[str] = []
    origin: List[int] = []
    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cf":
            continue
        for mapped in CHINESE_DIGITS.get(char) or unicodedata.normalize("NFKC", char):
            chars.append(mapped)
            origin.append(index)
    return "".join(chars), origin


def _number_kind(digits: str, before: str) -> Optional[str]:
    """The kind of personal data a digit string (possibly ending in X) is, given the view text before it."""
    if digits[-1] in "Xx":
        return "resident_id" if is_valid_resident_id(digits) else None
    if len(digits) == 18 and is_valid_resident_id(digits):
        return "resident_id"
    if 4 <= len(digits) <= 8 and _CODE_CONTEXT.search(before):
        return "verification_code"
    if 5 <= len(digits) <= 11 and _QQ_CONTEXT.search(before) and not re.fullmatch(r"1[3-9]\d{9}", digits):
        return "qq"
    national = digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
    if re.fullmatch(r"1[3-9]\d{9}", national):
        return "mobile"
    if re.fullmatch(r"0[1-9]\d{8,10}", digits) or (len(digits) in (7, 8) and _LANDLINE_CONTEXT.search(before)):
        return "landline"
    if 12 <= len(digits) <= 19 and passes_luhn(digits):
        return "bank_card"
    if len(digits) >= 15:
        return "long_number"
    return None


def _number_spans(view: str) -> List[Tuple[int, int, str]]:
    """Spans (start, end, kind) of personal numbers in the view: in each run of separated digit groups, the
    longest run of consecutive groups that reads as personal data, left to right."""
    spans: List[Tuple[int, int, str]] = []
    for run in _DIGIT_GROUPS.finditer(view):
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in _GROUP.finditer(run.group(0))]
        first = 0
        while first < len(groups):
            for last in range(len(groups) - 1, first - 1, -1):
                start, end = groups[first][0], groups[last][1]
                digits = "".join(view[a:b] for a, b in groups[first:last + 1])
                kind = _number_kind(digits, view[max(0, start - 12):start])
                if kind:
                    if kind == "mobile" and start >= 1 and view[start - 1] == "+":
                        start -= 1
                    spans.append((start, end, kind))
                    first = last + 1
                    break
            else:
                first += 1
    return spans


Span = Tuple[int, int, str]
"""A detected span of the view: (start, end, kind)."""


def _pattern_spans(pattern: re.Pattern[str], kind: str, group: int = 0) -> Callable[[str], List[Span]]:
    def find(view: str) -> List[Span]:
        return [(m.start(group), m.end(group), kind) for m in pattern.finditer(view)]

    return find


# Order matters where spans overlap: an e-mail or a WeChat id may contain digits (13812345678@163.com), so
# they are found first and the number rules skip what they cover.
_DETECTORS: List[Callable[[str], List[Tuple[int, int, str]]]] = [
    _pattern_spans(_EMAIL, "email"),
    _pattern_spans(_WECHAT, "wechat_id", 1),
    _number_spans,
]


def mask_pii_with_counts(text: str) -> Tuple[str, Dict[str, int]]:
    """Mask personal data in ``text``.

    Returns: ``(masked_text, counts)`` where counts maps a kind (a key of PLACEHOLDERS) to how many were masked;
    kinds with none are omitted. Never raises for any ``str``; masking a masked text changes nothing.
    """
    view, origin = detection_view(text)
    taken: List[Tuple[int, int, str]] = []
    for detect in _DETECTORS:
        for start, end, kind in detect(view):
            if end > start and not any(start < b and a < end for a, b, _ in taken):
                taken.append((start, end, kind))
    counts: Dict[str, int] = {}
    pieces: List[str] = []
    position = 0
    for start, end, kind in sorted(taken):
        original_start, original_end = origin[start], origin[end - 1] + 1
        if original_start < position:
            continue
        pieces += [text[position:original_start], PLACEHOLDERS[kind]]
        position = original_end
        counts[kind] = counts.get(kind, 0) + 1
    pieces.append(text[position:])
    return "".join(pieces), counts


def mask_pii(text: str) -> str:
    """``text`` with every kind of personal data in PLACEHOLDERS replaced by its placeholder."""
    return mask_pii_with_counts(text)[0]


def find_pii_spans(text: str) -> List[Tuple[int, int, str]]:
    """The spans ``(start, end, kind)`` of ``text`` (indices into ``text``, left to right, not overlapping) that
    :func:`mask_pii_with_counts` masks, with their kind (a key of PLACEHOLDERS). Used before masking by the
    consent-based seller leads (bot.leads.extract), which keep a seller's number only with the user's consent."""
    view, origin = detection_view(text)
    taken: List[Tuple[int, int, str]] = []
    for detect in _DETECTORS:
        for start, end, kind in detect(view):
            if end > start and not any(start < b and a < end for a, b, _ in taken):
                taken.append((start, end, kind))
    spans: List[Tuple[int, int, str]] = []
    position = 0
    for start, end, kind in sorted(taken):
        original_start, original_end = origin[start], origin[end - 1] + 1
        if original_start < position:
            continue
        spans.append((original_start, original_end, kind))
        position = original_end
    return spans
