"""Mask personal data in user text before it is persisted, logged or passed to the dialogue.

What is masked, and how it is recognised:

* mainland resident ID numbers: 17 digits plus a check character, validated with the GB 11643-1999
  ISO 7064 MOD 11-2 check digit (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2);
* mainland mobile numbers: 11 digits starting 13-19, optionally with +86/86 and spaces or hyphens;
* bank card numbers: 12-19 digits (spaces or hyphens allowed between groups) passing the Luhn check;
* SMS verification codes: 4-8 digits right after 验证码/校验码/动态码;
* any other run of 15 or more digits (defensive: an ID or card with a typo is still personal data).

Masking replaces each match with a bracketed placeholder in Chinese, so the dialogue still knows that the user
shared such data (which is itself a risk signal), but the data is gone.
"""
from __future__ import annotations

import re
from typing import Callable, Dict, List, Pattern, Tuple

ID_PLACEHOLDER = "[身份证号已隐藏]"
MOBILE_PLACEHOLDER = "[手机号已隐藏]"
CARD_PLACEHOLDER = "[银行卡号已隐藏]"
CODE_PLACEHOLDER = "[验证码已隐藏]"
NUMBER_PLACEHOLDER = "[长数字已隐藏]"

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

_ID_PATTERN = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")
_MOBILE_PATTERN = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)")
_CARD_PATTERN = re.compile(r"(?<!\d)\d{4}(?:[\s-]?\d){8,15}(?!\d)")
_CODE_PATTERN = re.compile(r"((?:验证码|校验码|动态码|短信码)\s*(?:是|为|:|：)?\s*)\d{4,8}(?!\d)")
_LONG_NUMBER_PATTERN = re.compile(r"\d{15,}")


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


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _replace_if(pattern: Pattern[str], placeholder: str, accept: Callable[[str], bool]):
    def apply(text: str) -> Tuple[str, int]:
        count = 0

        def substitute(match: re.Match[str]) -> str:
            nonlocal count
            if accept(match.group(0)):
                count += 1
                return placeholder
            return match.group(0)

        return pattern.sub(substitute, text), count

    return apply


def _mask_codes(text: str) -> Tuple[str, int]:
    masked, count = _CODE_PATTERN.subn(lambda m: m.group(1) + CODE_PLACEHOLDER, text)
    return masked, count


# Order matters: an ID is checked before a card (an 18-digit ID could pass Luhn by chance), codes before
# mobiles, and the defensive long-number rule last.
_STEPS: List[Tuple[str, Callable[[str], Tuple[str, int]]]] = [
    ("resident_id", _replace_if(_ID_PATTERN, ID_PLACEHOLDER, is_valid_resident_id)),
    ("verification_code", _mask_codes),
    ("mobile", _replace_if(_MOBILE_PATTERN, MOBILE_PLACEHOLDER, lambda m: True)),
    ("bank_card", _replace_if(_CARD_PATTERN, CARD_PLACEHOLDER, lambda m: passes_luhn(_digits(m)))),
    ("long_number", _replace_if(_LONG_NUMBER_PATTERN, NUMBER_PLACEHOLDER, lambda m: True)),
]


def mask_pii_with_counts(text: str) -> Tuple[str, Dict[str, int]]:
    """Mask personal data in ``text``.

    Returns: ``(masked_text, counts)`` where counts maps a kind (``resident_id``, ``verification_code``,
    ``mobile``, ``bank_card``, ``long_number``) to how many were masked; kinds with none are omitted.
    Never raises for any ``str``.
    """
    counts: Dict[str, int] = {}
    for kind, step in _STEPS:
        text, count = step(text)
        if count:
            counts[kind] = count
    return text, counts


def mask_pii(text: str) -> str:
    """``text`` with resident IDs, mobiles, bank cards, codes and long digit runs replaced by placeholders."""
    return mask_pii_with_counts(text)[0]
