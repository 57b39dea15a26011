"""Decide which responses answer a topic, and with which facts.

The text of every reply lives in ``domain/``; the facts it quotes live in ``data/knowledge/``. This module
joins them: for a topic (the core intent being answered) and what the conversation has revealed so far, it
returns an ordered list of :class:`ReplyInstruction` — a domain response name plus the template variables to
fill it with. The custom actions in ``actions/`` only turn these into ``dispatcher.utter_message`` calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from bot.directory import find_institutions_in_text, institution_numbers, resolve_institution
from bot.knowledge import Institution, Knowledge

ONLINE_LOAN_TYPES = frozenset({"网贷", "消费贷"})
"""Debt types with no statutory hardship plan: negotiated through the lender's own app or hotline
(shared/DOMAIN.md §3, "Online and consumer loans")."""

# Placeholder in the tables below for "the user's bank, if we know it".
_BANK_LINE = "<bank>"

TOPIC_RESPONSES: Dict[str, Tuple[str, ...]] = {
    "seek_debt_agency": (
        "utter_warn_debt_agency",
        "utter_agency_case",
        _BANK_LINE,
        "utter_official_channel_card_issuer",
    ),
    "seek_credit_repair": (
        "utter_warn_credit_repair",
        "utter_credit_repair_policy",
        "utter_credit_report_channel",
    ),
    "agency_victim": ("utter_support_agency_victim", "utter_stopped_paying_consequence", _BANK_LINE),
    "ask_evade_debt": ("utter_explain_evasion_risk", "utter_official_channel_card_issuer"),
    "ask_legal_risk": ("utter_explain_legal_risk",),
    "ask_hardship_plan": ("utter_guide_hardship_plan", _BANK_LINE),
    "report_collection_abuse": ("utter_guide_collection_complaint", _BANK_LINE),
    "ask_credit_record": ("utter_answer_credit_record",),
    "ask_complaint_channel": ("utter_list_complaint_channels", _BANK_LINE),
    "express_distress": ("utter_support_distress",),
}
"""Topic (core intent) -> responses sent, in order. Every core intent in domain/ has an entry except
``request_human``, which is answered by the human handoff (bot/handoff/, actions/handoff_actions.py)."""


@dataclass(frozen=True)
class ReplyInstruction:
    """One reply: ``response`` is a response name in domain/, ``variables`` fill its ``{placeholders}``."""

    response: str
    variables: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversationState:
    """What the dialogue knows when a topic is answered.

    ``latest_message``: the user's last text (already PII-masked); ``bank``: the bank slot (canonical name or
    a raw alias, may be None); ``debt_type``: one of 信用卡/网贷/消费贷/房贷/车贷 or None.
    """

    latest_message: str = ""
    bank: Optional[str] = None
    debt_type: Optional[str] = None


@dataclass(frozen=True)
class GuidancePlan:
    """The replies for one turn plus the slot values the turn established (e.g. the resolved bank)."""

    replies: List[ReplyInstruction]
    slots: Dict[str, Optional[str]]


def identify_institution(state: ConversationState, knowledge: Knowledge) -> Optional[Institution]:
    """The user's institution: the bank slot if it resolves, else the first one named in the latest message."""
    institution = resolve_institution(state.bank, knowledge)
    if institution is None and state.latest_message:
        named = find_institutions_in_text(state.latest_message, knowledge)
        institution = named[0] if named else None
    return institution


def bank_line(institution: Institution) -> ReplyInstruction:
    """The reply naming an institution's channel, with the unconfirmed-number caveat built into the text."""
    numbers = institution_numbers(institution)
    if not numbers:
        return ReplyInstruction("utter_bank_channel_no_number", {"bank_name": institution.name})
    return ReplyInstruction(
        "utter_bank_channel", {"bank_name": institution.name, "bank_numbers": "，".join(numbers)}
    )


def plan_guidance(topic: str, state: ConversationState, knowledge: Knowledge) -> GuidancePlan:
    """The replies answering ``topic`` in ``state``.

    Args: ``topic`` a core intent name (a key of TOPIC_RESPONSES); ``state`` the conversation so far;
    ``knowledge`` the validated knowledge files.
    Returns: a GuidancePlan whose replies all carry the knowledge template values.
    Raises: KeyError for an unknown topic.
    """
    facts = knowledge.template_values()
    institution = identify_institution(state, knowledge)
    replies: List[ReplyInstruction] = []
    for response in _responses_for(topic, state):
        if response == _BANK_LINE:
            if institution is not None:
                line = bank_line(institution)
                replies.append(ReplyInstruction(line.response, {**facts, **line.variables}))
            continue
        replies.append(ReplyInstruction(response, dict(facts)))
    slots = {"bank": institution.name} if institution is not None else {}
    return GuidancePlan(replies=replies, slots=slots)


def _responses_for(topic: str, state: ConversationState) -> Tuple[str, ...]:
    responses = TOPIC_RESPONSES[topic]
    if topic == "ask_hardship_plan" and state.debt_type in ONLINE_LOAN_TYPES:
        responses = ("utter_guide_online_loan_plan",) + responses[1:]
    return responses
