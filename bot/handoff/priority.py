"""Why a conversation is handed over, and how urgent the ticket is.

Priority is a small integer, lower first: someone in despair (1) before a victim of a seller or a high-risk
conversation (2) before everyone else (3). The reason is what triggered this hand-over; the priority looks at
the whole conversation, so a user who expressed despair earlier and now asks for a human is still first.
:func:`is_repeated_fallback` decides when misunderstandings should go to a person.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence

from bot import intents

PRIORITY_DISTRESS = 1
"""Despair or thoughts of self-harm (``express_distress`` anywhere in the conversation)."""
PRIORITY_VICTIM = 2
"""A victim of a debt-help seller (``agency_victim``), or ``risk_level`` high."""
PRIORITY_OTHER = 3
"""Everyone else (asked for a human, or the bot did not understand)."""

PRIORITY_LABELS = {PRIORITY_DISTRESS: "情绪危机", PRIORITY_VICTIM: "受害/高风险", PRIORITY_OTHER: "一般"}
"""Chinese labels shown on the desk."""

REASON_DISTRESS = "distress"
REASON_VICTIM = "agency_victim"
REASON_REQUEST = "user_request"
REASON_FALLBACK = "repeated_fallback"

REASON_LABELS = {
    REASON_DISTRESS: "用户表达绝望/轻生念头",
    REASON_VICTIM: "已被收费中介骗钱或骗取资料",
    REASON_REQUEST: "用户要求转人工",
    REASON_FALLBACK: "助手连续未能理解",
}
"""Reason code -> Chinese label shown on the desk."""

_REASON_BY_INTENT = {
    intents.EXPRESS_DISTRESS: REASON_DISTRESS,
    intents.AGENCY_VICTIM: REASON_VICTIM,
    intents.NLU_FALLBACK: REASON_FALLBACK,
    intents.REQUEST_HUMAN: REASON_REQUEST,
}

HIGH_RISK_LEVELS = frozenset({"high", "critical"})
"""Values of the ``risk_level`` slot (set by the risk engine, if present) that count as high risk."""


def handoff_reason(latest_intent: Optional[str]) -> str:
    """The reason code for a hand-over triggered right after ``latest_intent`` (unknown -> user_request)."""
    return _REASON_BY_INTENT.get(latest_intent or "", REASON_REQUEST)


def ticket_priority(reason: str, intents_seen: Iterable[str], risk_level: Optional[str] = None) -> int:
    """The priority (1 most urgent .. 3) from the trigger, every intent seen so far and the risk level slot."""
    seen = set(intents_seen)
    if reason == REASON_DISTRESS or intents.EXPRESS_DISTRESS in seen:
        return PRIORITY_DISTRESS
    if reason == REASON_VICTIM or intents.AGENCY_VICTIM in seen:
        return PRIORITY_VICTIM
    if isinstance(risk_level, str) and risk_level.lower() in HIGH_RISK_LEVELS:
        return PRIORITY_VICTIM
    return PRIORITY_OTHER


def _intent(event: Mapping[str, Any]) -> Optional[str]:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def is_repeated_fallback(events: Sequence[Mapping[str, Any]]) -> bool:
    """True if the latest user message is the second misunderstanding in a row.

    That is: the latest and the previous user messages were both ``nlu_fallback``, and the previous one was
    answered with the clarifying question (``utter_clarify``), not already handed over. ``events`` are Rasa's
    event dicts, oldest first.
    """
    users = [index for index, event in enumerate(events) if event.get("event") == "user"]
    if len(users) < 2:
        return False
    previous, latest = users[-2], users[-1]
    if _intent(events[latest]) != intents.NLU_FALLBACK or _intent(events[previous]) != intents.NLU_FALLBACK:
        return False
    between = events[previous + 1:latest]
    clarified = any(e.get("event") == "bot" and (e.get("metadata") or {}).get("utter_action") == "utter_clarify"
                    for e in between)
    handed_over = any(e.get("event") == "action" and e.get("name") == intents.HANDOFF_ACTION for e in between)
    return clarified and not handed_over
