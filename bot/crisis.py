"""Tell danger (a risk to life) from stress (pressure, fear, exhaustion) in one user message.

The lexicon is data (``data/crisis/signals.yml``). It is used where the NLU's intent is not enough or not
there: inside the hardship form (where a stated hardship reason must not clear the form, bot.hardship), while a
conversation waits for or talks with a human agent (Rasa does not predict while paused), and when the action
server is down (the Rasa side answers alone). The route it leads to is shared/DOMAIN.md §4: care, the
psychological assistance hotline, 110/120 in an emergency, and a person.
"""
from __future__ import annotations

import enum
import re
from functools import lru_cache
from pathlib import Path
from typing import List, Pattern, Tuple

import yaml
from pydantic import BaseModel, Extra, validator

from bot.text_normalisation import compact

SIGNALS_PATH = Path(__file__).resolve().parent.parent / "data" / "crisis" / "signals.yml"
"""The lexicon file."""


class CrisisLevel(enum.StrEnum):
    """How a message reads: ``danger`` outranks ``stress``, which outranks ``none``."""

    NONE = "none"
    STRESS = "stress"
    DANGER = "danger"


class SignalSet(BaseModel):
    """Literal ``patterns`` and ``regex`` (each must compile) of one level."""

    patterns: List[str] = []
    regex: List[str] = []

    class Config:
        extra = Extra.forbid

    @validator("regex", each_item=True)
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class CrisisSignals(BaseModel):
    """The whole lexicon file: one signal set per level, and the despair words (see CrisisLexicon.despair)."""

    danger: SignalSet
    stress: SignalSet
    despair: SignalSet = SignalSet()

    class Config:
        extra = Extra.forbid


class CrisisLexicon:
    """Match the normalised text (``bot.text_normalisation.compact``) against the danger and stress sets."""

    def __init__(self, signals: CrisisSignals) -> None:
        self._levels: List[Tuple[CrisisLevel, Tuple[str, ...], Tuple[Pattern[str], ...]]] = [
            (level, tuple(compact(p) for p in signal_set.patterns), tuple(re.compile(r) for r in signal_set.regex))
            for level, signal_set in ((CrisisLevel.DANGER, signals.danger), (CrisisLevel.STRESS, signals.stress))
        ]
        self._despair = (tuple(compact(p) for p in signals.despair.patterns),
                         tuple(re.compile(r) for r in signals.despair.regex))

    def despair(self, text: object) -> bool:
        """True when ``text`` holds a word of despair (``despair`` in the file): not danger by itself, but enough
        to keep a message the NLU reads as despair from being answered as mere stress."""
        if not isinstance(text, str) or not text:
            return False
        normalised = compact(text)
        literals, patterns = self._despair
        return any(literal in normalised for literal in literals) or any(p.search(normalised) for p in patterns)

    def level(self, text: object) -> CrisisLevel:
        """The highest level whose signals occur in ``text``; ``none`` for anything else, non-strings included."""
        if not isinstance(text, str) or not text:
            return CrisisLevel.NONE
        normalised = compact(text)
        for level, literals, patterns in self._levels:
            if any(literal in normalised for literal in literals) or any(p.search(normalised) for p in patterns):
                return level
        return CrisisLevel.NONE


def load_crisis_lexicon(path: Path = SIGNALS_PATH) -> CrisisLexicon:
    """Read and validate the lexicon. Raises ValueError naming the file and the problem."""
    try:
        return CrisisLexicon(CrisisSignals.parse_obj(yaml.safe_load(path.read_text(encoding="utf-8"))))
    except Exception as err:  # missing file, YAML and pydantic errors alike become one clear message
        raise ValueError(f"{path}: {err}") from err


@lru_cache(maxsize=1)
def default_crisis_lexicon() -> CrisisLexicon:
    """The project's lexicon, loaded once per process."""
    return load_crisis_lexicon()


def crisis_level(text: object) -> CrisisLevel:
    """How ``text`` reads, with the project's lexicon (see CrisisLexicon.level)."""
    return default_crisis_lexicon().level(text)


def holds_despair(text: object) -> bool:
    """Whether ``text`` holds a word of despair, with the project's lexicon (see CrisisLexicon.despair)."""
    return default_crisis_lexicon().despair(text)


def reads_as_danger(text: object) -> bool:
    """True when ``text`` reads as a risk to life: it must get 12356 and 110/120 at once."""
    return crisis_level(text) is CrisisLevel.DANGER
