"""What an action sends: a domain response by name with the values for its placeholders, and the line naming
a lender's own channel.

Every planner (bot.guidance, bot.hardship, bot.handoff.intake) returns a list of :class:`ReplyInstruction`;
the actions turn each into one ``dispatcher.utter_message(response=..., **variables)``
(``actions/replies.py``), and Rasa's NLG fills the text from ``domain/``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from bot.directory import find_institutions_in_text, institution_numbers, is_deploying, resolve_institution
from bot.knowledge import Institution, Knowledge
from bot.texts import placeholders


@dataclass(frozen=True)
class ReplyInstruction:
    """One reply: ``response`` is a response name in domain/, ``variables`` fill its ``{placeholders}``;
    ``buttons`` (``{"title", "payload"}``) are added after the response's own, e.g. the buttons of the details
    a turn moved out (bot.details)."""

    response: str
    variables: Dict[str, str] = field(default_factory=dict)
    buttons: Tuple[Dict[str, str], ...] = ()


def identify_institution(bank: Optional[str], text: str, knowledge: Knowledge) -> Optional[Institution]:
    """The user's lender: the ``bank`` slot if it resolves, else the first institution named in ``text`` (the
    latest, masked message), else None. An unknown name never yields a guessed institution."""
    institution = resolve_institution(bank, knowledge)
    if institution is None and text:
        named = find_institutions_in_text(text, knowledge)
        institution = named[0] if named else None
    return institution


def bank_line(institution: Institution, knowledge: Knowledge) -> ReplyInstruction:
    """The reply naming ``institution``'s channel, with every knowledge value for the placeholders.

    With a sourced number: ``utter_bank_channel``, whose text carries the caveat that the number comes from public
    sources and that the number on the card or in the lender's official app comes first, never one an agent
    gives; without one: ``utter_bank_channel_no_number`` (the card or the official app only). The numbers are
    the directory's (banks.yml, shared/DOMAIN.md §4), for the deploying bank too: this line is the same whichever
    bank runs the assistant.
    """
    numbers = institution_numbers(institution)
    variables = {**knowledge.template_values(), "bank_name": institution.name}
    if not numbers:
        return ReplyInstruction("utter_bank_channel_no_number", variables)
    return ReplyInstruction("utter_bank_channel", {**variables, "bank_numbers": "，".join(numbers)})


def plan_bank_line(institution: Institution, knowledge: Knowledge, app_hint: str = "") -> ReplyInstruction:
    """The channel line of the hardship plan: for the deploying bank (data/knowledge/deployment.yml) with a
    number, ``utter_bank_channel_deploying`` with the numbers it supplied itself (so no caveat) and ``app_hint``
    (the in-app path to its hardship application, or ""); for any other lender, :func:`bank_line`."""
    numbers = institution_numbers(institution, knowledge)
    if not numbers or not is_deploying(institution, knowledge):
        return bank_line(institution, knowledge)
    return ReplyInstruction("utter_bank_channel_deploying", {
        **knowledge.template_values(), "bank_name": institution.name, "bank_numbers": "，".join(numbers),
        "app_path_hint": app_hint})


def drop_withdrawn(replies: List[ReplyInstruction], knowledge: Knowledge,
                   on: Optional[dt.date] = None) -> List[ReplyInstruction]:
    """``replies`` without those whose response quotes a fact withdrawn by day ``on`` (default today): a fact
    past its ``valid_until`` with no ``expired_value`` is no longer stated at all (bot.knowledge)."""
    withdrawn = knowledge.withdrawn_keys(on)
    if not withdrawn:
        return list(replies)
    return [reply for reply in replies if not withdrawn & set(placeholders(reply.response))]
