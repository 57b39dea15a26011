"""Opening hours of the agent desk: parse them from configuration, test a moment, describe them in Chinese.

Opening hours are configuration, not facts, so they are not in ``data/knowledge/``; the domain responses
quote them only through the ``{opening_hours}`` placeholder, filled with :meth:`OpeningHours.describe`.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday keys in order, Monday first (``datetime.weekday()`` indexes into it)."""

_DAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_ZONE_NAMES = {"Asia/Shanghai": "北京时间", "Asia/Chongqing": "北京时间", "PRC": "北京时间"}
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class OpeningHoursError(ValueError):
    """Opening hours that cannot be understood; the message quotes the offending part."""


@dataclass(frozen=True)
class Span:
    """One day's opening span in minutes after midnight: ``start`` < ``end`` <= 1440."""

    start: int
    end: int

    def label(self) -> str:
        """``HH:MM-HH:MM`` as configured (24:00 for the end of the day)."""
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


def parse_span(text: str) -> Span:
    """``"09:00-21:00"`` -> Span(540, 1260). Raises OpeningHoursError for a malformed or empty span."""
    match = _SPAN.match(str(text))
    if not match:
        raise OpeningHoursError(f"opening hours {text!r} must look like 09:00-21:00")
    sh, sm, eh, em = (int(part) for part in match.groups())
    start, end = sh * 60 + sm, eh * 60 + em
    if sm > 59 or em > 59 or not 0 <= start < end <= 24 * 60:
        raise OpeningHoursError(f"opening hours {text!r}: the start must be before the end, within one day")
    return Span(start, end)


@dataclass(frozen=True)
class OpeningHours:
    """When agents are at the desk: a span per weekday (missing = closed) in ``timezone`` (IANA name)."""

    days: Mapping[str, Span]
    timezone: str = "Asia/Shanghai"

    @property
    def zone(self) -> ZoneInfo:
        """The configured time zone. Raises OpeningHoursError if the name is unknown."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise OpeningHoursError(f"unknown time zone {self.timezone!r}") from err

    def is_open(self, moment: dt.datetime) -> bool:
        """True if the desk is open at ``moment`` (an aware datetime; naive ones are taken as UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        local = moment.astimezone(self.zone)
        span = self.days.get(WEEKDAYS[local.weekday()])
        minute = local.hour * 60 + local.minute
        return span is not None and span.start <= minute < span.end

    def describe(self) -> str:
        """The hours in Chinese for users, e.g. ``周一至周五 09:00-21:00，周六、周日 09:00-18:00（北京时间）``.

        Consecutive days with the same span are grouped; every day open all day is ``每天全天``.
        """
        if not self.days:
            return "暂无人工服务时间"
        groups: List[Tuple[List[int], Optional[Span]]] = []
        for index, day in enumerate(WEEKDAYS):
            span = self.days.get(day)
            if groups and groups[-1][1] == span:
                groups[-1][0].append(index)
            else:
                groups.append(([index], span))
        zone = _ZONE_NAMES.get(self.timezone, self.timezone)
        only = groups[0][1]
        if len(groups) == 1 and only is not None:
            hours = "全天" if only == Span(0, 24 * 60) else only.label()
            return f"每天{hours}（{zone}）"
        parts = [f"{_days_label(indices)} {span.label()}" for indices, span in groups if span is not None]
        return "，".join(parts) + f"（{zone}）"


def _days_label(indices: List[int]) -> str:
    if len(indices) == 1:
        return _DAY_NAMES[indices[0]]
    if len(indices) == 2:
        return f"{_DAY_NAMES[indices[0]]}、{_DAY_NAMES[indices[1]]}"
    return f"{_DAY_NAMES[indices[0]]}至{_DAY_NAMES[indices[-1]]}"


def hours_from_mapping(mapping: Mapping[str, str], timezone: str = "Asia/Shanghai") -> OpeningHours:
    """OpeningHours from ``{"mon": "09:00-21:00", ...}``. Raises OpeningHoursError for unknown days or spans."""
    days: Dict[str, Span] = {}
    for day, text in (mapping or {}).items():
        key = str(day).lower()
        if key not in WEEKDAYS:
            raise OpeningHoursError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
        days[key] = parse_span(text)
    hours = OpeningHours(days, timezone)
    _ = hours.zone  # validate the zone now, not at the first message
    return hours


def hours_from_text(text: str, timezone: str = "Asia/Shanghai") -> OpeningHours:
    """OpeningHours from ``"mon-fri 09:00-18:00; sat 10:00-16:00"`` or ``"always"`` (every day, all day).

    Raises OpeningHoursError for anything else.
    """
    if text.strip().lower() == "always":
        return hours_from_mapping({day: "00:00-24:00" for day in WEEKDAYS}, timezone)
    mapping: Dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        try:
            days, span = part.split(None, 1)
        except ValueError as err:
            raise OpeningHoursError(f"opening hours {part!r} must look like 'mon-fri 09:00-18:00'") from err
        for day in _expand_days(days.lower()):
            mapping[day] = span
    return hours_from_mapping(mapping, timezone)


def _expand_days(days: str) -> List[str]:
    result: List[str] = []
    for item in days.split(","):
        if "-" in item:
            first, last = item.split("-", 1)
            if first not in WEEKDAYS or last not in WEEKDAYS:
                raise OpeningHoursError(f"unknown weekday range {item!r}")
            result += list(WEEKDAYS[WEEKDAYS.index(first):WEEKDAYS.index(last) + 1])
        elif item in WEEKDAYS:
            result.append(item)
        else:
            raise OpeningHoursError(f"unknown weekday {item!r}")
    return result
