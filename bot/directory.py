"""The lender directory: resolve what a user calls their bank to a canonical institution.

Data: ``data/knowledge/banks.yml`` (names, aliases, numbers, each with source and status). An unknown name
resolves to ``None``: the caller then gives generic guidance and never a guessed number.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from bot.knowledge import Institution, Knowledge


def _normalise(name: str) -> str:
    return name.strip().lower()


def resolve_institution(name: Optional[str], knowledge: Knowledge) -> Optional[Institution]:
    """The institution whose canonical name or an alias equals ``name`` (case-insensitive), else ``None``."""
    if not name:
        return None
    wanted = _normalise(name)
    for institution in knowledge.institutions:
        if wanted in (_normalise(alias) for alias in [institution.name, *institution.aliases]):
            return institution
    return None


def find_institutions_in_text(text: str, knowledge: Knowledge) -> List[Institution]:
    """Institutions whose name or alias appears in ``text``, in order of appearance, without duplicates.

    Longer aliases are matched first (中国银行 before 中行), and a matched span is not matched again.

    Latin aliases (ICBC, CMB) must stand as whole words so that e.g. "abc" inside a URL does not match.
    """
    found: List[Tuple[int, Institution]] = []
    lowered = text.lower()
    candidates = sorted(
        ((alias, inst) for inst in knowledge.institutions for alias in [inst.name, *inst.aliases]),
        key=lambda pair: -len(pair[0]),
    )
    consumed = lowered
    for alias, institution in candidates:
        alias_l = alias.lower()
        position = consumed.find(alias_l)
        if position < 0:
            continue
        if alias_l.isascii() and not _stands_alone(consumed, position, len(alias_l)):
            continue
        consumed = consumed[:position] + "\0" * len(alias_l) + consumed[position + len(alias_l):]
        if all(institution is not known for _, known in found):
            found.append((position, institution))
    return [institution for _, institution in sorted(found, key=lambda pair: pair[0])]


def _stands_alone(text: str, start: int, length: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[start + length] if start + length < len(text) else " "
    return not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())


def institution_numbers(institution: Institution) -> List[str]:
    """The sourced numbers of an institution, as they are shown: e.g. ``["95555", "信用卡 400-820-5555"]``."""
    numbers: List[str] = []
    if institution.service_number:
        numbers.append(institution.service_number)
    if institution.credit_card_number:
        numbers.append(f"信用卡 {institution.credit_card_number}")
    return numbers


def all_aliases(knowledge: Knowledge) -> Iterable[str]:
    """Every canonical name and alias in the directory."""
    for institution in knowledge.institutions:
        yield institution.name
        yield from institution.aliases
