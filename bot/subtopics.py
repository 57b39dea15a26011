"""Sub-topics within the core intents: the question asked inside a topic the NLU recognised.

"法院传票来了会不会影响孩子考公" is ``ask_legal_risk``, but the person asked about a summons and their child, not
about the consequences of not paying in general. ``data/subtopics/subtopics.yml`` lists, per sub-topic, the intents it
refines, the phrasings that reveal it (substrings and regular expressions on the normalised text), what vetoes
it, and the domain responses (``domain/subtopics.yml``) that answer it; :func:`match` picks the first that
applies. ``bot.guidance`` then answers the sub-topic instead of the topic's generic answer. The facts the
responses state are placeholders filled from ``data/knowledge/``.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import yaml
from pydantic import BaseModel, Extra, validator

from bot import PROJECT_ROOT
from bot.text_normalisation import compact

SUBTOPICS_PATH = PROJECT_ROOT / "data" / "subtopics" / "subtopics.yml"
"""The sub-topic file."""

BANK_LINE = "<bank>"
"""Response token: the user's bank line (bot.replies.bank_line) when a bank is known, nothing otherwise."""

BANK_NUMBER = "<bank_number>"
"""Response token: the bank line, or ``UNKNOWN_BANK_RESPONSE`` when no bank is known."""

UNKNOWN_BANK_RESPONSE = "utter_subtopic_bank_number_unknown"
"""Asked for a bank's number without naming the bank: where to find it, and to say which bank."""

TOKENS = (BANK_LINE, BANK_NUMBER)
"""The response tokens that are not domain responses."""


class Subtopic(BaseModel):
    """One sub-topic of data/subtopics/subtopics.yml (see the file's header for the fields).

    ``patterns``, ``unless`` are compared with :func:`bot.text_normalisation.compact` text, so they are
    written in that form (simplified, lower case, no spaces); ``regex`` are Python regular expressions.
    Raises (on load): a validation error for an unknown field, no pattern at all, no response, or a regex
    that does not compile.
    """

    id: str
    intents: List[str]
    topic: str
    patterns: List[str] = []
    regex: List[str] = []
    unless: List[str] = []
    unless_flags: List[str] = []
    covers_flags: List[str] = []
    responses: List[str]

    class Config:
        extra = Extra.forbid

    @validator("regex", each_item=True)
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"regex {value!r} does not compile: {error}") from error
        return value

    @validator("responses")
    def _some_response(cls, value: List[str]) -> List[str]:
        if not value:
            raise ValueError("a sub-topic needs at least one response")
        return value

    @validator("patterns", "unless", each_item=True)
    def _compact_form(cls, value: str) -> str:
        if compact(value) != value:
            raise ValueError(f"write {value!r} as bot.text_normalisation.compact writes it: {compact(value)!r}")
        return value

    def phrased_in(self, text: str) -> bool:
        """True if the normalised ``text`` holds one of the patterns or regexes and none of ``unless``."""
        if any(word in text for word in self.unless):
            return False
        return any(word in text for word in self.patterns) or any(re.search(rx, text) for rx in self.regex)


class SubtopicFile(BaseModel):
    """The whole file: ``subtopics`` in matching order."""

    subtopics: List[Subtopic]

    class Config:
        extra = Extra.forbid


def load_subtopics(path: Path = SUBTOPICS_PATH) -> Tuple[Subtopic, ...]:
    """The sub-topics of ``path``, validated, in matching order. Raises pydantic's ValidationError on a bad
    file, ValueError if two share an id or one names no pattern at all."""
    content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    subtopics = tuple(SubtopicFile.parse_obj(content).subtopics)
    ids = [s.id for s in subtopics]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate sub-topic ids in {ids}")
    for subtopic in subtopics:
        if not subtopic.patterns and not subtopic.regex:
            raise ValueError(f"{path}: sub-topic {subtopic.id} has neither patterns nor regex")
    return subtopics


@lru_cache(maxsize=1)
def default_subtopics() -> Tuple[Subtopic, ...]:
    """The project's sub-topics, loaded once."""
    return load_subtopics()


def match(text: str, intent: Optional[str], flags: Iterable[str] = (),
          subtopics: Optional[Tuple[Subtopic, ...]] = None) -> Optional[Subtopic]:
    """The first sub-topic that refines ``intent`` and is phrased in ``text``, or None.

    ``text`` is the user's latest (masked) message; ``intent`` the topic being answered (a core intent, or
    ``nlu_fallback``/``out_of_scope``); ``flags`` the red flags (bot/risk.py ids) found in the message: one of
    a sub-topic's ``unless_flags`` vetoes it.
    """
    normalised = compact(text or "")
    if not normalised or intent is None:
        return None
    present = set(flags)
    for subtopic in subtopics if subtopics is not None else default_subtopics():
        if intent in subtopic.intents and not present & set(subtopic.unless_flags) and subtopic.phrased_in(normalised):
            return subtopic
    return None


def fallback_topic(text: str, flags: Iterable[str] = (), intent: str = "nlu_fallback") -> Optional[str]:
    """For a message the NLU could not place (``intent`` nlu_fallback or out_of_scope): the topic of the
    sub-topic it asks about, or None."""
    subtopic = match(text, intent, flags)
    return subtopic.topic if subtopic is not None else None
