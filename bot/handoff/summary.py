"""What the agent sees first: a summary of the conversation and its PII-masked transcript.

Input is the tracker as the action server receives it: ``events`` (Rasa's event dicts: ``event`` is
``user``/``bot``/...; user events carry ``text``, ``parse_data.intent.name``, ``input_channel``,
``timestamp`` in epoch seconds) and ``slots`` (name -> value). Slots that another feature adds
(``risk_level``, ``red_flags``, ``user_segment``) are read when present and ignored when not.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Iterable, List, Mapping, Optional

from bot.knowledge import Knowledge
from bot.privacy import mask_pii

CASE_SLOTS = ("bank", "debt_type", "amount", "overdue_duration")
"""Slots describing the user's situation, shown when filled."""

RISK_SLOTS = ("risk_level", "red_flags", "user_segment")
"""Slots set by the risk engine, when it is installed; tolerated when absent."""

SLOT_LABELS = {
    "bank": "机构", "debt_type": "债务类型", "amount": "金额", "overdue_duration": "逾期时长",
    "risk_level": "风险等级", "red_flags": "风险信号", "user_segment": "用户类型",
}
"""Slot name -> Chinese label on the desk."""

MAX_TRANSCRIPT_MESSAGES = 200
"""At most this many (latest) messages are stored with a ticket."""


def _time(timestamp: Any) -> Optional[str]:
    if not isinstance(timestamp, (int, float)):
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).replace(tzinfo=None).isoformat() + "Z"


def message_entry(event: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """One transcript line from a Rasa event, or None for events that are not messages.

    Returns ``{"role": "user"|"bot"|"agent", "text": masked text, "time": ISO or None, ...}``: user lines add
    ``intent``; agent lines (an agent's reply appended by the desk, ``metadata.handoff.kind`` agent_message)
    add ``agent``. The desk's own notices (agent joined, closed, waiting) stay ``bot`` lines.
    """
    kind = event.get("event")
    if kind not in ("user", "bot"):
        return None
    text = event.get("text") or ""
    data = event.get("data") or {}
    if not text and isinstance(data.get("custom"), dict):
        text = data["custom"].get("fallback_text") or data["custom"].get("text") or ""
    entry: Dict[str, Any] = {"role": kind, "text": mask_pii(str(text)), "time": _time(event.get("timestamp"))}
    if kind == "user":
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent:
            entry["intent"] = intent
    else:
        handoff = (event.get("metadata") or {}).get("handoff") or {}
        if handoff.get("kind") == "agent_message":
            entry["role"] = "agent"
            entry["agent"] = handoff.get("agent")
    return entry


def transcript(events: Iterable[Mapping[str, Any]], limit: int = MAX_TRANSCRIPT_MESSAGES) -> List[Dict[str, Any]]:
    """The conversation's messages in order (see message_entry), the latest ``limit`` of them."""
    lines = [entry for entry in (message_entry(event) for event in events) if entry is not None]
    return lines[-limit:]


def intents_seen(events: Iterable[Mapping[str, Any]]) -> List[str]:
    """The user intents in order of first appearance, without duplicates."""
    seen: List[str] = []
    for event in events:
        if event.get("event") != "user":
            continue
        name = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if name and name not in seen:
            seen.append(name)
    return seen


def channels_given(events: Iterable[Mapping[str, Any]], knowledge: Knowledge) -> List[str]:
    """Official channels the bot already gave, as ``"name：number"``: knowledge channels and lender numbers
    whose value appears in a bot message."""
    texts = "\n".join(str(e.get("text") or "") for e in events if e.get("event") == "bot")
    given = [f"{channel.name}：{channel.value}" for channel in knowledge.channels if channel.value in texts]
    for institution in knowledge.institutions:
        for number in (institution.service_number, institution.credit_card_number):
            if number and number in texts:
                given.append(f"{institution.name}：{number}")
    return given


def mask_values(value: Any) -> Any:
    """``value`` (JSON-like: strings, lists, dicts, scalars) with every string PII-masked (bot.privacy)."""
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, (list, tuple)):
        return [mask_values(item) for item in value]
    if isinstance(value, dict):
        return {str(k): mask_values(v) for k, v in value.items()}
    return value


def build_summary(events: List[Mapping[str, Any]], slots: Mapping[str, Any], knowledge: Knowledge,
                  reason: str, priority: int) -> Dict[str, Any]:
    """The ticket summary: ``reason``, ``priority``, ``intents_seen``, ``situation`` (filled case slots),
    ``risk`` (risk slots that exist and are filled), ``channels_given``, ``last_user_message`` (masked),
    ``user_messages`` (count). Values are JSON-serialisable and PII-masked."""
    user_events = [e for e in events if e.get("event") == "user"]
    last = mask_pii(str(user_events[-1].get("text") or "")) if user_events else ""
    return {
        "reason": reason,
        "priority": priority,
        "intents_seen": intents_seen(events),
        "situation": {name: mask_values(slots[name]) for name in CASE_SLOTS if slots.get(name) not in (None, "", [])},
        "risk": {name: mask_values(slots[name]) for name in RISK_SLOTS if slots.get(name) not in (None, "", [])},
        "channels_given": channels_given(events, knowledge),
        "last_user_message": last,
        "user_messages": len(user_events),
    }
