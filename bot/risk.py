"""The risk engine: what a message and the conversation so far reveal about grey-industry exposure.

Combines three sources:

* the tactics lexicon ``data/knowledge/tactics.yml`` (promises, fees, data demands, methods, victim events;
  loaded by bot.knowledge), matched against the normalised text (``bot.text_normalisation.compact``), with
  negation ("还没交钱") ignored;
* the NLU intent of the message;
* what earlier turns revealed (the ``red_flags``, ``risk_level`` and ``user_segment`` slots): a victim stays a
  victim, red flags accumulate, and the risk level never drops within a conversation.

Output: :class:`RiskAssessment` with a level (none < low < medium < high), the red flags (ids from the
lexicon) and a user segment. Segments follow shared/DOMAIN.md §1: ``misled`` (sees illegal 反催收 or an agent
as a shortcut), ``fuzzy`` (believes 催收即暴力, swayed by emotional content), ``rational`` (wants the lawful
route) and ``victim`` (already engaged a seller).
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

VICTIM_FLAGS = frozenset({"fee_paid", "data_handed_over", "told_to_stop_paying"})
"""Red flags that mean the user already engaged a seller."""

_HIGH_FLAGS = VICTIM_FLAGS | {"forgery_request"}
_MEDIUM_FLAGS = frozenset({"false_promise", "upfront_fee", "complaint_leverage", "anti_collection", "agency_offer"})
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
        self._flags: List[Tuple[str, List[str], List[Pattern[str]]]] = [
            (flag.id, [compact(p) for p in flag.patterns], [re.compile(r) for r in flag.regex])
            for flag in lexicon.flags
        ]
        self._doubt = [compact(m) for m in lexicon.doubt_markers]
        self.labels = {flag.id: flag.label for flag in lexicon.flags}

    def find_flags(self, text: str) -> List[str]:
        """Lexicon flag ids present in ``text`` (any string; never raises), in lexicon order."""
        normalised = compact(text or "")
        found = []
        for flag_id, patterns, regexes in self._flags:
            if any(self._affirmed(normalised, pattern) for pattern in patterns if pattern) or any(
                self._affirmed_regex(normalised, regex) for regex in regexes
            ):
                found.append(flag_id)
        return found

    @staticmethod
    def _negated(text: str, start: int) -> bool:
        window = _CLAUSE_BREAK.split(text[max(0, start - _NEGATION_WINDOW):start])[-1]
        return bool(_NEGATION.search(window))

    def _affirmed(self, text: str, pattern: str) -> bool:
        start = text.find(pattern)
        while start >= 0:
            if not self._negated(text, start):
                return True
            start = text.find(pattern, start + 1)
        return False

    def _affirmed_regex(self, text: str, regex: Pattern[str]) -> bool:
        return any(not self._negated(text, m.start()) for m in regex.finditer(text))

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
        if previous == "victim" or intent == intents.AGENCY_VICTIM or VICTIM_FLAGS & set(flags):
            return "victim"
        if {"anti_collection", "complaint_leverage"} & set(new_flags) or intent == intents.ASK_EVADE_DEBT:
            return "misled"
        if intent in (intents.SEEK_DEBT_AGENCY, intents.SEEK_CREDIT_REPAIR):
            return "rational" if self.doubts_seller(text) else "misled"
        if {"agency_offer", "false_promise", "upfront_fee"} & set(new_flags) and intent not in _LAWFUL_ROUTE_INTENTS:
            return "rational" if self.doubts_seller(text) else "misled"
        if "collection_fear" in new_flags:
            return "fuzzy"
        if intent in _LAWFUL_ROUTE_INTENTS:
            return previous if previous in ("misled", "fuzzy") else "rational"
        return previous if previous in SEGMENTS else None


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
