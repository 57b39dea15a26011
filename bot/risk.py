"""The risk engine: what a message and the conversation so far reveal about grey-industry exposure.

Combines three sources:

* the tactics lexicon ``data/knowledge/tactics.yml`` (promises, fees, data demands, methods, victim events;
  loaded by bot.knowledge), matched against the normalised text (``bot.text_normalisation.compact``), with
  negation ("还没交钱") ignored, and a victim event counted only as the user's own past act: not a rumour,
  a hypothesis, a plan or someone else's story ("听说交了钱就能办", "如果把身份证给他们");
* the NLU intent of the message;
* what earlier turns revealed (the ``red_flags``, ``risk_level`` and ``user_segment`` slots): a victim stays a
  victim, red flags accumulate, and the risk level never drops within a conversation.

Output: :class:`RiskAssessment` with a level (none < low < medium < high), the red flags (ids from the
lexicon) and a user segment. Segments follow shared/DOMAIN.md §1: ``misled`` (sees illegal 反催收 or an agent
as a shortcut), ``fuzzy`` (believes 催收即暴力, swayed by emotional content), ``rational`` (wants the lawful
route) and ``victim`` (already paid a seller or handed over their data: a first-person past act, issue 19).
A segment is only ever set from what the user said about themself: fear words do not make a person who reports
harassment *fuzzy*, and asking how to dodge a debt without naming any agency does not make them *misled*.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, List, Optional, Pattern, Sequence, Tuple

from bot import intents
from bot.knowledge import TacticsLexicon, load_lexicon
from bot.text_normalisation import compact

RISK_LEVELS = ("none", "low", "medium", "high")
"""Risk levels in increasing order."""

SEGMENTS = ("misled", "fuzzy", "rational", "victim")
"""User segments (shared/DOMAIN.md §1, plus victims)."""

VICTIM_FLAGS = frozenset({"fee_paid", "data_handed_over"})
"""Red flags that mean the user already engaged a seller: they paid, or handed over data or signed (their own
past act). Being told to stop paying (``told_to_stop_paying``) is a seller's instruction, not a victim event."""

SEGMENT_EVIDENCE = {
    "misled": frozenset({"anti_collection", "complaint_leverage", "agency_offer", "false_promise", "upfront_fee"}),
    "fuzzy": frozenset({"collection_fear"}),
}
"""Flags that show a segment in the message itself; a segment message is repeated only on new evidence."""

_HIGH_FLAGS = VICTIM_FLAGS | {"forgery_request"}
_MEDIUM_FLAGS = frozenset({"false_promise", "upfront_fee", "complaint_leverage", "anti_collection", "agency_offer",
                           "told_to_stop_paying"})
_AGENCY_FLAGS = frozenset({"anti_collection", "complaint_leverage", "agency_offer", "false_promise", "upfront_fee",
                           "told_to_stop_paying"})
_LOW_FLAGS = frozenset({"collection_fear", "collection_abuse"})
_HIGH_INTENTS = frozenset({intents.AGENCY_VICTIM, intents.EXPRESS_DISTRESS})
_MEDIUM_INTENTS = frozenset({intents.SEEK_DEBT_AGENCY, intents.SEEK_CREDIT_REPAIR, intents.ASK_EVADE_DEBT})
_LOW_INTENTS = frozenset({intents.REPORT_COLLECTION_ABUSE, intents.ASK_LEGAL_RISK})
_LAWFUL_ROUTE_INTENTS = frozenset({intents.ASK_HARDSHIP_PLAN, intents.ASK_CREDIT_RECORD, intents.ASK_COMPLAINT_CHANNEL,
                                   intents.ASK_LEGAL_RISK})
_NEGATION = re.compile(r"[没未不别无]")
_CLAUSE_BREAK = re.compile(r"[，。！？；,.!?;：:、\n]")
_NEGATION_WINDOW = 4  # characters before a match, within the same clause, searched for a negation


@dataclass(frozen=True)
class RiskAssessment:
    """Result of an assessment: ``level`` in RISK_LEVELS, ``red_flags`` (lexicon ids, first seen first),
    ``segment`` in SEGMENTS or None, and ``new_flags`` (the flags found in this message)."""

    level: str
    red_flags: Tuple[str, ...]
    segment: Optional[str]
    new_flags: Tuple[str, ...]


class RiskEngine:
    """Assess messages against a lexicon. Thread-safe; build once (``default_risk_engine``) and reuse."""

    def __init__(self, lexicon: TacticsLexicon) -> None:
        self._flags: List[Tuple[str, str, List[str], List[Pattern[str]]]] = [
            (flag.id, flag.kind, [compact(p) for p in flag.patterns], [re.compile(r) for r in flag.regex])
            for flag in lexicon.flags
        ]
        self._doubt = [compact(m) for m in lexicon.doubt_markers]
        groups = lexicon.not_own_past_act
        self._not_own_act = [compact(m) for markers in groups.values() for m in markers]
        self._hypothetical = [compact(m) for m in groups.get("hypothetical", [])]
        self._hearsay = [compact(m) for m in groups.get("hearsay", [])]
        self._condition_after = [compact(m) for m in lexicon.condition_after]
        self.labels = {flag.id: flag.label for flag in lexicon.flags}

    def find_flags(self, text: str) -> List[str]:
        """Lexicon flag ids present in ``text`` (any string; never raises), in lexicon order.

        A match does not count when negated ("没交钱"); a ``victim_event`` match also not when it is not the
        user's own past act (a rumour, hypothesis, plan or someone else's story before it in its clause, or a
        condition right after it); an ``instruction`` match not when it is hypothetical ("如果中介让我别还").
        """
        return [flag_id for flag_id, _ in self.find_flag_spans(text)]

    def find_flag_spans(self, text: str) -> List[Tuple[str, str]]:
        """``(flag id, matched text)`` for each flag :meth:`find_flags` finds in ``text``, in the same order; the
        matched text is the first counting match in the normalised text (``compact``), for the compliance
        record (bot.compliance.record masks it again before storing it)."""
        normalised = compact(text or "")
        found = []
        for flag_id, kind, patterns, regexes in self._flags:
            spans = [(m.start(), m.end()) for pattern in patterns if pattern
                     for m in re.finditer(re.escape(pattern), normalised)]
            spans += [(m.start(), m.end()) for regex in regexes for m in regex.finditer(normalised)]
            counting = [(start, end) for start, end in spans if self._counts(normalised, kind, start, end)]
            if counting:
                start, end = min(counting)
                found.append((flag_id, normalised[start:end]))
        return found

    def _counts(self, text: str, kind: str, start: int, end: int) -> bool:
        if self._negated(text, start):
            return False
        if kind == "victim_event":
            return self._own_past_act(text, start, end)
        if kind == "instruction":
            return not _clause_holds(text, start, self._hypothetical)
        return True

    def _own_past_act(self, text: str, start: int, end: int) -> bool:
        if _clause_holds(text, start, self._not_own_act):
            return False
        return not any(text.startswith(marker, end) for marker in self._condition_after if marker)

    def reads_as_own_account(self, text: str) -> bool:
        """True unless the message is hearsay or a hypothesis anywhere ("听说...", "如果..."): the test an NLU
        ``agency_victim`` reading must pass to make the user a victim without a victim event in the lexicon."""
        normalised = compact(text or "")
        return not any(marker in normalised for marker in [*self._hearsay, *self._hypothetical] if marker)

    @staticmethod
    def _negated(text: str, start: int) -> bool:
        window = _CLAUSE_BREAK.split(text[max(0, start - _NEGATION_WINDOW):start])[-1]
        return bool(_NEGATION.search(window))

    def doubts_seller(self, text: str) -> bool:
        """True if the user asks whether a seller can be trusted (靠谱吗, 可信吗, ...)."""
        normalised = compact(text or "")
        return any(marker in normalised for marker in self._doubt)

    def assess(self, text: str, intent: Optional[str], previous_flags: Iterable[str] = (),
               previous_level: Optional[str] = None, previous_segment: Optional[str] = None) -> RiskAssessment:
        """Assess one message in the light of the conversation so far.

        Args: ``text`` the user's (masked) message; ``intent`` its NLU intent or None; ``previous_*`` the values
        of the risk slots before this message (None or empty when unset; unknown values are ignored).
        Returns: the updated RiskAssessment. Never raises for any input.
        """
        new_flags = self.find_flags(text)
        flags = _ordered_union(previous_flags or (), new_flags)
        level = max(_level(new_flags, intent), previous_level if previous_level in RISK_LEVELS else "none",
                    key=RISK_LEVELS.index)
        segment = self._segment(text, intent, new_flags, flags, previous_segment)
        return RiskAssessment(level=level, red_flags=tuple(flags), segment=segment, new_flags=tuple(new_flags))

    def _segment(self, text: str, intent: Optional[str], new_flags: Sequence[str], flags: Sequence[str],
                 previous: Optional[str]) -> Optional[str]:
        new = set(new_flags)
        if previous == "victim" or VICTIM_FLAGS & set(flags):
            return "victim"
        if intent == intents.AGENCY_VICTIM and self.reads_as_own_account(text) and "told_to_stop_paying" not in new:
            return "victim"  # the NLU's reading, unless the message is hearsay, a hypothesis or only an instruction
        if {"anti_collection", "complaint_leverage"} & new:
            return "misled"
        if intent in (intents.SEEK_DEBT_AGENCY, intents.SEEK_CREDIT_REPAIR) or (
                _AGENCY_FLAGS & new and intent not in _LAWFUL_ROUTE_INTENTS):
            return "rational" if self.doubts_seller(text) else "misled"
        if "collection_abuse" in new:  # reported harassment is harassment, fear words or not
            return previous if previous in ("misled", "rational") else None
        if "collection_fear" in new:
            return "fuzzy"
        if intent in _LAWFUL_ROUTE_INTENTS:
            return previous if previous in ("misled", "fuzzy") else "rational"
        return previous if previous in SEGMENTS else None


def _clause_holds(text: str, start: int, markers: Sequence[str]) -> bool:
    """True if the clause of ``text`` that ends at ``start`` holds any of ``markers``."""
    clause = _CLAUSE_BREAK.split(text[:start])[-1]
    return any(marker and marker in clause for marker in markers)


def _level(flags: Sequence[str], intent: Optional[str]) -> str:
    present = set(flags)
    if present & _HIGH_FLAGS or intent in _HIGH_INTENTS:
        return "high"
    if present & _MEDIUM_FLAGS or intent in _MEDIUM_INTENTS:
        return "medium"
    if present & _LOW_FLAGS or intent in _LOW_INTENTS:
        return "low"
    return "none"


def _ordered_union(first: Iterable[str], second: Iterable[str]) -> List[str]:
    result: List[str] = []
    for item in [*first, *second]:
        if isinstance(item, str) and item not in result:
            result.append(item)
    return result


@lru_cache(maxsize=1)
def default_risk_engine() -> RiskEngine:
    """The engine built from the project's lexicon, once per process. Raises KnowledgeError on a bad file."""
    return RiskEngine(load_lexicon())
