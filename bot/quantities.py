"""Read amounts of money and overdue durations written the way debtors write them.

* amounts: ``2w``, ``2W``, ``两万``, ``2万元``, ``20000``, ``1.5万``, ``3千``, ``两万五``, ``五十万``, ``20k`` →
  an integer number of yuan (元);
* durations: ``三个月``, ``90天``, ``半年``, ``两年多``, ``1年半``, ``两周`` → an integer number of days, counting a
  month as 30 days and a year as 365 days (an approximation good enough to tell "a few days" from "months").

Used by the NLU component ``bot.nlu.components.QuantityNormaliser`` to put normalised values into the
``amount`` and ``overdue_duration`` entities. Parsing functions return ``None`` for text they cannot read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional

_DIGITS = {"零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "两": 2, "俩": 2, "贰": 2, "三": 3, "叁": 3, "四": 4,
           "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9}
_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_BIG_UNITS = {"万": 10_000, "w": 10_000, "亿": 100_000_000, "k": 1000}

_CN_NUMBER = "[零〇一壹二两俩贰三叁四肆五伍六陆七柒八捌九玖十拾百佰千仟]+"
_NUMBER = rf"(?:\d+(?:\.\d+)?|{_CN_NUMBER})"
_AMOUNT_PATTERN = re.compile(
    rf"(?<![\d.]){_NUMBER}(?:[万wW亿][{''.join(_DIGITS)}\d]?|[kK千])?(?:多)?(?:块钱|块|元|rmb|RMB)?"
)
_DURATION_PATTERN = re.compile(rf"(?<![\d.])(?:{_NUMBER}|半)(?:个)?(?:多)?(?:天|日|周|星期|礼拜|个月|月|年)(?:半|多)?")


def parse_chinese_integer(text: str) -> Optional[int]:
    """Value of a Chinese numeral without 万/亿 (e.g. 三十五 → 35, 两千五 → 2500, 十 → 10); None if not one."""
    if not text or any(ch not in _DIGITS and ch not in _SMALL_UNITS for ch in text):
        return None
    total, digit, last_unit, zero_seen = 0, None, None, False
    for ch in text:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
            zero_seen = zero_seen or digit == 0
        else:
            unit = _SMALL_UNITS[ch]
            total += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
    if digit is not None:
        # "两千五" means 2500: a trailing digit after a unit is one step below that unit
        step_down = last_unit is not None and last_unit >= 100 and len(text) >= 3 and not zero_seen
        total += digit * (last_unit // 10 if step_down and last_unit is not None else 1)
    return total


def _number(text: str) -> Optional[float]:
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    value = parse_chinese_integer(text)
    return float(value) if value is not None else None


def parse_amount_yuan(text: str) -> Optional[int]:
    """Yuan in an amount such as ``2w``, ``两万五``, ``1.5万元``, ``20000``, ``3千块``; None if unreadable."""
    cleaned = re.sub(r"(块钱|块|元|rmb|多)", "", text.strip(), flags=re.IGNORECASE)
    match = re.fullmatch(rf"({_NUMBER})(?:([万wW亿kK千])(.?))?", cleaned)
    if not match:
        return None
    base = _number(match.group(1))
    if base is None:
        return None
    unit_char, tail = match.group(2), match.group(3) or ""
    if not unit_char:
        return int(round(base))
    unit = _BIG_UNITS.get(unit_char.lower(), _SMALL_UNITS.get(unit_char, 1))
    value = base * unit
    if tail:
        tail_digit = _DIGITS.get(tail) if tail in _DIGITS else (int(tail) if tail.isdigit() else None)
        if tail_digit is None:
            return None
        value += tail_digit * unit // 10
    return int(round(value))


_DAYS_PER_UNIT = {"天": 1, "日": 1, "周": 7, "星期": 7, "礼拜": 7, "月": 30, "个月": 30, "年": 365}


def parse_duration_days(text: str) -> Optional[int]:
    """Days in a duration such as ``三个月`` (90), ``90天``, ``半年`` (182), ``1年半`` (547); None if unreadable."""
    cleaned = text.strip().replace("多", "")
    match = re.fullmatch(rf"({_NUMBER}|半)(个)?(天|日|周|星期|礼拜|月|年)(半)?", cleaned)
    if not match:
        return None
    unit_days = _DAYS_PER_UNIT[match.group(3)]
    count = 0.5 if match.group(1) == "半" else _number(match.group(1))
    if count is None:
        return None
    if match.group(4):
        count += 0.5
    return int(count * unit_days)


@dataclass(frozen=True)
class Quantity:
    """A quantity found in text: ``entity`` (``amount`` or ``overdue_duration``), character span, and value
    (yuan for amounts, days for durations)."""

    entity: str
    start: int
    end: int
    text: str
    value: int


def find_quantities(text: str) -> List[Quantity]:
    """Every readable duration and amount in ``text``; durations win where both patterns overlap."""
    found: List[Quantity] = []
    taken = [False] * len(text)
    for match in _DURATION_PATTERN.finditer(text):
        days = parse_duration_days(match.group(0))
        if days is not None:
            found.append(Quantity("overdue_duration", match.start(), match.end(), match.group(0), days))
            taken[match.start():match.end()] = [True] * (match.end() - match.start())
    for match in _AMOUNT_PATTERN.finditer(text):
        if any(taken[match.start():match.end()]):
            continue
        yuan = parse_amount_yuan(match.group(0))
        if yuan is None or not _looks_like_money(text, match):
            continue
        found.append(Quantity("amount", match.start(), match.end(), match.group(0), yuan))
    return sorted(found, key=lambda q: q.start)


def _looks_like_money(text: str, match: re.Match[str]) -> bool:
    """A bare number counts as money only with a money unit or when large (≥ 100): not "2次", "第3期"."""
    written = match.group(0)
    if re.search(r"[万wW亿kK千块元]|rmb", written, flags=re.IGNORECASE):
        return True
    following = text[match.end():match.end() + 1]
    if following and following in "次期个张笔年月天号岁%点":
        return False
    value = parse_amount_yuan(written)
    return value is not None and value >= 100
