"""The compliance report (``python -m bot report``): what the record says about a period, grouped.

Rows are conversations *started* in ``[--from, --to]`` (whole days in China time, UTC+8). Per group:

* ``conversations``; ``risk_conversations`` (highest risk level medium or high, bot.risk);
* ``referrals`` by route: conversations referred to each official channel (the part before ``:`` of the
  ``referrals`` slot's ``"<channel>:<topic>"`` entries, bot.guidance);
* ``taps`` by route: conversations in which the user tapped a referral card's call button for that channel
  (the part before ``:`` of the ``taps`` entries, bot.referral_taps): how many referrals were acted on;
* ``handovers`` (a ticket was opened), ``claimed`` and ``median_claim_seconds`` (opened to an agent joining);
* ``fallback_rate``: fallback turns (``nlu_fallback`` or ``action_default_fallback``) over all turns.

Groupings (``--by``): ``day``, ``week`` (ISO week, Monday first), ``channel``, ``segment``, ``tactic`` (each
red-flag lexicon id; a conversation counts under every tactic it showed), ``bank`` and ``debt_type`` (the
slots; ``(none)`` when unset). The **rising pitch** list compares each tactic's conversations in the last
RISING_WINDOW_DAYS days of the period with the window before: a tactic rises when it has at least
RISING_MIN_COUNT now and at least RISING_FACTOR times as many as before.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.compliance.schema import conversations
from bot.knowledge import CHINA_TIME

GROUPINGS = ("day", "week", "channel", "segment", "tactic", "bank", "debt_type")
RISK_LEVELS_COUNTED = ("medium", "high")
"""Highest risk levels that make a risk conversation."""

DEFAULT_DAYS = 28
RISING_WINDOW_DAYS = 7
RISING_MIN_COUNT = 3
RISING_FACTOR = 2.0
NONE = "(none)"


class ReportError(ValueError):
    """A bad argument (date, range); the message says which."""


@dataclass
class Group:
    """The figures of one group (see the module docstring)."""

    key: str
    conversations: int = 0
    risk_conversations: int = 0
    referrals: Counter = field(default_factory=Counter)
    taps: Counter = field(default_factory=Counter)
    handovers: int = 0
    claimed: int = 0
    claim_seconds: List[float] = field(default_factory=list)
    turns: int = 0
    fallback_turns: int = 0

    @property
    def median_claim_seconds(self) -> Optional[float]:
        """Median seconds from a ticket opening to an agent joining, or None without a claimed ticket."""
        return round(statistics.median(self.claim_seconds), 1) if self.claim_seconds else None

    @property
    def fallback_rate(self) -> Optional[float]:
        """Fallback turns over turns (0..1, 3 decimals), or None without turns."""
        return round(self.fallback_turns / self.turns, 3) if self.turns else None

    def as_dict(self) -> Dict[str, Any]:
        """JSON-ready figures."""
        return {"group": self.key, "conversations": self.conversations,
                "risk_conversations": self.risk_conversations, "referrals": dict(sorted(self.referrals.items())),
                "taps": dict(sorted(self.taps.items())), "handovers": self.handovers, "claimed": self.claimed,
                "median_claim_seconds": self.median_claim_seconds, "turns": self.turns,
                "fallback_turns": self.fallback_turns, "fallback_rate": self.fallback_rate}


@dataclass
class Report:
    """A report: the period (inclusive days), the grouping, the groups in order and the rising tactics."""

    start: dt.date
    end: dt.date
    by: str
    groups: List[Group]
    rising: List[Dict[str, Any]]

    @property
    def routes(self) -> List[str]:
        """Every referral route in the report, sorted."""
        return sorted({route for group in self.groups for route in group.referrals})

    @property
    def tap_routes(self) -> List[str]:
        """Every route whose call button was tapped in the report, sorted."""
        return sorted({route for group in self.groups for route in group.taps})

    def as_dict(self) -> Dict[str, Any]:
        """JSON-ready report."""
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "by": self.by,
                "groups": [g.as_dict() for g in self.groups], "rising_pitches": self.rising}


def parse_day(value: Optional[str], default: dt.date) -> dt.date:
    """``YYYY-MM-DD`` as a date (``default`` for None). Raises ReportError otherwise."""
    if value is None:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ReportError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _epoch(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), CHINA_TIME).timestamp()


def _china_day(timestamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, CHINA_TIME).date()


def _keys(row: Dict[str, Any], by: str) -> List[str]:
    if by == "day":
        return [_china_day(row["started_at"]).isoformat()]
    if by == "week":
        year, week, _ = _china_day(row["started_at"]).isocalendar()
        return [f"{year}-W{week:02d}"]
    if by == "tactic":
        return list(json.loads(row["red_flags"])) or [NONE]
    column = {"channel": "channel", "segment": "segment", "bank": "bank", "debt_type": "debt_type"}[by]
    return [row[column] or NONE]


def _rows(engine: Engine, start: float, end: float) -> List[Dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(
            sa.select(conversations).where(conversations.c.started_at >= start)
            .where(conversations.c.started_at < end).order_by(conversations.c.started_at)).mappings()]


def build(engine: Engine, start: dt.date, end: dt.date, by: str) -> Report:
    """The report over the days ``start``..``end`` (inclusive) grouped ``by`` (one of GROUPINGS).

    Raises ReportError for an unknown grouping or an empty range.
    """
    if by not in GROUPINGS:
        raise ReportError(f"--by must be one of {', '.join(GROUPINGS)}")
    if end < start:
        raise ReportError(f"--to {end} is before --from {start}")
    rows = _rows(engine, _epoch(start), _epoch(end + dt.timedelta(days=1)))
    groups: Dict[str, Group] = {}
    for row in rows:
        routes = {str(entry).split(":", 1)[0] for entry in json.loads(row["referrals"])}
        tapped = {str(entry).split(":", 1)[0] for entry in json.loads(row.get("taps") or "[]")}
        for key in _keys(row, by):
            group = groups.setdefault(key, Group(key))
            group.conversations += 1
            group.risk_conversations += int(row["risk_level"] in RISK_LEVELS_COUNTED)
            group.referrals.update(routes)
            group.taps.update(tapped)
            if row["handoff_ticket"]:
                group.handovers += 1
            if row["handoff_claimed_at"] is not None and row["handoff_opened_at"] is not None:
                group.claimed += 1
                group.claim_seconds.append(max(0.0, row["handoff_claimed_at"] - row["handoff_opened_at"]))
            group.turns += row["turns"]
            group.fallback_turns += row["fallback_turns"]
    ordered = [groups[key] for key in sorted(groups, key=lambda k: (k == NONE, k))]
    if by not in ("day", "week"):
        ordered.sort(key=lambda g: (g.key == NONE, -g.conversations, g.key))
    return Report(start, end, by, ordered, rising_pitches(rows, end))


def rising_pitches(rows: Iterable[Dict[str, Any]], end: dt.date) -> List[Dict[str, Any]]:
    """Tactics whose conversations in the RISING_WINDOW_DAYS days up to ``end`` are at least RISING_MIN_COUNT
    and RISING_FACTOR times those of the window before; most risen first."""
    window_start = _epoch(end - dt.timedelta(days=RISING_WINDOW_DAYS - 1))
    previous_start = window_start - RISING_WINDOW_DAYS * 86_400
    now: Counter = Counter()
    before: Counter = Counter()
    for row in rows:
        flags = set(json.loads(row["red_flags"]))
        if row["started_at"] >= window_start:
            now.update(flags)
        elif row["started_at"] >= previous_start:
            before.update(flags)
    rising = [{"tactic": tactic, "this_window": count, "previous_window": before[tactic]}
              for tactic, count in now.items()
              if count >= RISING_MIN_COUNT and count >= RISING_FACTOR * before[tactic]]
    return sorted(rising, key=lambda r: (-(r["this_window"] - r["previous_window"]), r["tactic"]))


def _columns(report: Report) -> Tuple[List[str], List[List[Any]]]:
    header = ["group", "conversations", "risk_conversations", "handovers", "claimed", "median_claim_seconds",
              "turns", "fallback_rate", *(f"referrals:{route}" for route in report.routes),
              *(f"taps:{route}" for route in report.tap_routes)]
    body = [[g.key, g.conversations, g.risk_conversations, g.handovers, g.claimed, g.median_claim_seconds,
             g.turns, g.fallback_rate, *(g.referrals.get(route, 0) for route in report.routes),
             *(g.taps.get(route, 0) for route in report.tap_routes)]
            for g in report.groups]
    return header, body


def to_csv(report: Report) -> str:
    """One CSV row per group (a ``referrals:<route>`` column per route, a ``taps:<route>`` column per tapped
    route); empty cells for no value."""
    header, body = _columns(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for line in body:
        writer.writerow(["" if cell is None else cell for cell in line])
    return out.getvalue()


def to_table(report: Report) -> str:
    """A plain-text table, then the referrals and the taps by route, and the rising pitches."""
    header = ["group", "convs", "risk", "hand-overs", "claimed", "median claim s", "fallback"]
    lines = [f"Compliance report {report.start} .. {report.end}, by {report.by}", ""]
    widths = [max(12, *(len(g.key) for g in report.groups))] if report.groups else [12]
    widths += [len(h) for h in header[1:]]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for g in report.groups:
        cells = [g.key, g.conversations, g.risk_conversations, g.handovers, g.claimed,
                 "-" if g.median_claim_seconds is None else g.median_claim_seconds,
                 "-" if g.fallback_rate is None else f"{g.fallback_rate:.1%}"]
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)))
    if not report.groups:
        lines.append("(no conversations in this period)")
    totals: Counter = Counter()
    if report.by not in ("tactic",):
        for g in report.groups:
            totals.update(g.referrals)
        lines += ["", "Referrals by route (conversations):"]
        lines += [f"  {route}: {count}" for route, count in sorted(totals.items(), key=lambda i: (-i[1], i[0]))] \
            or ["  none"]
        tapped: Counter = Counter()
        for g in report.groups:
            tapped.update(g.taps)
        lines += ["", "Call buttons tapped by route (conversations):"]
        lines += [f"  {route}: {count}" for route, count in sorted(tapped.items(), key=lambda i: (-i[1], i[0]))] \
            or ["  none"]
    lines += ["", f"Rising pitches (last {RISING_WINDOW_DAYS} days against the {RISING_WINDOW_DAYS} before):"]
    lines += [f"  {r['tactic']}: {r['this_window']} (before: {r['previous_window']})" for r in report.rising] \
        or ["  none"]
    return "\n".join(lines)


def main(engine: Engine, start: Optional[str], end: Optional[str], by: str, output: str,
         charts: Optional[Path], today: Optional[dt.date] = None) -> int:
    """``python -m bot report``: print the report in ``output`` (table, csv, json) and, with ``charts``, write
    its PNG charts there. Raises ReportError for bad arguments. Returns 0."""
    last = parse_day(end, today or dt.datetime.now(CHINA_TIME).date())
    first = parse_day(start, last - dt.timedelta(days=DEFAULT_DAYS - 1))
    report = build(engine, first, last, by)
    if output == "csv":
        print(to_csv(report), end="")
    elif output == "json":
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(to_table(report))
    if charts is not None:
        from bot.compliance.charts import write_charts

        for path in write_charts(report, charts):
            print(f"Written: {path}", file=sys.stderr)
    return 0


def group_index(report: Report) -> Dict[str, Group]:
    """The report's groups by key."""
    return {g.key: g for g in report.groups}
