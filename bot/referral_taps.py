"""A tapped call button on a referral card, recorded in the conversation (全程留痕) and so in the compliance record.

The widget's ``channel_card`` (docs/channels/payloads.md) has a ``tel:`` call button per official channel. A tap
opens the phone's dialler, which sends nothing to the bot; so the widget also emits socket.io
``referral_tapped`` ``{"reason": <the card's reason>, "number": <the channel's number>}``. The server accepts
only a reason a card can carry and a number the bot itself states (data/knowledge/), names the tap
``"<channel key or bank name>:<reason>"`` (the form of the ``referrals`` slot, bot.guidance.referrals_for), and
appends ``SlotSet("referral_tapped", entry)`` to the tracker: the event reaches the event broker like any other
and the compliance consumer adds it to the conversation's taps (bot.compliance.record). The slot does not
influence the dialogue (domain/compliance.yml).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

from bot.directory import institution_numbers
from bot.knowledge import Knowledge

logger = logging.getLogger(__name__)

TAP_SLOT = "referral_tapped"
"""The slot whose SlotSet events record taps (its value is the latest tap)."""

TAP_EVENT = "referral_tapped"
"""The socket.io event the widget emits on a tap."""

CARD_REASONS = frozenset({"hardship_plan", "complaint", "credit_record", "police", "distress"})
"""The ``reason`` values a channel card may carry (docs/channels/payloads.md)."""


def _digits(number: str) -> str:
    return "".join(ch for ch in str(number) if ch.isdigit())


def tap_entry(data: Any, knowledge: Knowledge) -> Optional[str]:
    """``"<channel key or bank name>:<reason>"`` for a tap ``data`` (``{"reason", "number"}``), or None when the
    reason is not one a card carries or the number is not one the bot states (a channel in channels.yml or a
    lender's number in banks.yml/deployment.yml; compared by digits, so ``400-820-5555`` equals ``4008205555``).
    Nothing the client sends is kept but these two validated values."""
    if not isinstance(data, Mapping):
        return None
    reason, number = data.get("reason"), _digits(data.get("number") or "")
    if reason not in CARD_REASONS or not number:
        return None
    for channel in knowledge.channels:
        if _digits(channel.value) == number:
            return f"{channel.key}:{reason}"
    for institution in knowledge.institutions:
        for shown in institution_numbers(institution, knowledge):
            if _digits(shown.rpartition(" ")[2]) == number:
                return f"{institution.name}:{reason}"
    return None


async def record_tap(agent: Any, sender_id: str, entry: str) -> bool:
    """Append ``SlotSet(TAP_SLOT, entry)`` to the conversation ``sender_id`` under its lock. Returns False (logged,
    never raises) when there is no agent, no such conversation, or the store fails: a lost tap must never
    disturb the user."""
    from rasa.shared.core.events import SlotSet

    from bot.channels.turns import primary_tracker_store

    if agent is None:
        return False
    try:
        store = primary_tracker_store(agent.tracker_store)
        async with agent.lock_store.lock(sender_id):
            tracker = await store.retrieve(sender_id)
            if tracker is None:
                return False
            tracker.update(SlotSet(TAP_SLOT, entry))
            await store.save(tracker)
        return True
    except Exception as err:  # noqa: BLE001 - a tap is a record, not a turn: log and carry on
        logger.warning("A referral tap could not be recorded: %s", type(err).__name__)
        return False
