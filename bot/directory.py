"""The lender directory: resolve what a user calls their bank to a canonical institution.

Data: ``data/knowledge/banks.yml`` (names, aliases, numbers, each with source and status). An unknown name
resolves to ``None``: the caller then gives generic guidance and never a guessed number.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

from bot.knowledge import Institution, Knowledge


def _normalise(name: str) -> str:
    return name.strip().lower()


def _aliases(institution: Institution, knowledge: Knowledge) -> List[str]:
    """Names that refer to ``institution``: its name, aliases and, for the deploying bank, 本行/你们银行/..."""
    names = [institution.name, *institution.aliases]
    if knowledge.deployment is not None and knowledge.deployment.name == institution.name:
        names += knowledge.deployment.self_references
    return names


def deploying_institution(knowledge: Knowledge) -> Optional[Institution]:
    """The institution running the assistant (data/knowledge/deployment.yml), or None when neutral."""
    if knowledge.deployment is None:
        return None
    return next(i for i in knowledge.institutions if i.name == knowledge.deployment.name)


def resolve_institution(name: Optional[str], knowledge: Knowledge) -> Optional[Institution]:
    """The institution whose canonical name or an alias equals ``name`` (case-insensitive), else ``None``."""
    if not name:
        return None
    wanted = _normalise(name)
    for institution in knowledge.institutions:
        if wanted in (_normalise(alias) for alias in _aliases(institution, knowledge)):
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
        ((alias, inst) for inst in knowledge.institutions for alias in _aliases(inst, knowledge)),
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


def institution_numbers(institution: Institution, knowledge: Optional[Knowledge] = None) -> List[str]:
    """The sourced numbers of an institution, as they are shown: e.g. ``["95555", "信用卡 400-820-5555"]``.

    For the deploying bank, the numbers it configured itself (deployment.yml) take precedence.
    """
    service, card = institution.service_number, institution.credit_card_number
    if knowledge is not None and is_deploying(institution, knowledge):
        service = knowledge.deployment.service_number or service  # type: ignore[union-attr]
        card = knowledge.deployment.credit_card_number or card  # type: ignore[union-attr]
    numbers: List[str] = []
    if service:
        numbers.append(service)
    if card:
        numbers.append(f"信用卡 {card}")
    return numbers


def is_deploying(institution: Institution, knowledge: Knowledge) -> bool:
    """True if ``institution`` is the bank running the assistant."""
    return knowledge.deployment is not None and knowledge.deployment.name == institution.name


def all_aliases(knowledge: Knowledge) -> Iterable[str]:
    """Every canonical name and alias in the directory (with the deploying bank's self references)."""
    for institution in knowledge.institutions:
        yield from _aliases(institution, knowledge)


def _tel(number: str) -> str:
    return "tel:" + number.replace("-", "")


def bank_channel_card(institutions: List[Institution], knowledge: Knowledge, reason: str) -> Dict[str, Any]:
    """A ``channel_card`` custom payload (docs/channels/payloads.md) for the institutions, then the regulator.

    Every number comes from data/knowledge/ (banks.yml, deployment.yml, channels.yml); numbers of the
    deploying bank are ``confirmed`` (the bank supplied them), directory numbers keep their status.
    """
    channels: List[Dict[str, str]] = []
    for institution in institutions:
        deploying = is_deploying(institution, knowledge)
        for number in institution_numbers(institution, knowledge):
            label, _, digits = number.rpartition(" ")
            channels.append({
                "label": f"{institution.name}{label or ''}客服电话",
                "number": digits,
                "tel": _tel(digits),
                "status": "confirmed" if deploying else institution.status,
            })
    regulator = knowledge.fact("nfra_hotline")
    channels.append({"label": regulator.name, "number": regulator.value, "tel": _tel(regulator.value),  # type: ignore[attr-defined]
                     "status": regulator.status})
    return {"type": "channel_card", "title": "官方联系渠道", "channels": channels,
            "note": knowledge.bank_advice, "reason": reason}
