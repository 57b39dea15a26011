"""How each event Rasa publishes changes the compliance record (bot.compliance.schema).

A **turn** starts at a ``user`` event and ends (is *sealed* and joins the hash chain, bot.compliance.chain) at
the next ``action_listen``, at the conversation's next ``user`` event, or when it has been idle for
SEAL_IDLE_SECONDS (a paused conversation's messages get no ``action_listen``). What fills the rows, all from
what the bot already records:

* ``user``: channel (``input_channel``), intent and confidence (``parse_data``), and the candidate red-flag
  spans the risk engine finds in the (already masked, bot.channels.guard) text; the text itself is not kept;
* ``slot`` ``risk_level``, ``user_segment``, ``red_flags`` (the new lexicon ids become the turn's red flags,
  each with its matched span, masked again), ``referrals`` (``"<channel>:<topic>"``, bot.guidance), ``bank``,
  ``debt_type``; ``referral_tapped`` (a call button tapped on a referral card, bot.referral_taps: added once
  to the conversation's ``taps``, whether or not a turn is open);
* ``bot``: the response name (``metadata.utter_action``), ``metadata.knowledge_version`` (actions/replies.py),
  a hand-over answer's ``ticket_id``, and the desk's ``metadata.handoff`` (ticket, kind: agent_joined, closed,
  returned_to_bot, released, agent_message; bot.handoff.messages);
* a ``user`` event of an ``EXTERNAL_`` intent (triggered by the server, not typed) gets a turn row of its own
  but is not counted in the conversation's turns or fallbacks;
* ``action`` ``action_default_fallback`` and an ``nlu_fallback`` intent mark a fallback turn.

:func:`apply_event` is idempotent: each event's key (SHA-256 of its canonical JSON) is stored, and an event
seen before changes nothing.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.compliance import chain
from bot.compliance.schema import conversations, seen_events, turns
from bot.privacy import mask_pii
from bot.referral_taps import TAP_SLOT
from bot.risk import RISK_LEVELS, RiskEngine

SEAL_IDLE_SECONDS = 600.0
"""An open turn with no event for this long (seconds) is sealed by :func:`seal_idle`."""

EXTERNAL_PREFIX = "EXTERNAL_"
"""Intents the server triggers itself (Rasa's external events, e.g. the consent question of bot.leads): their
turn row records what the bot said, but they are not the user's turns and are not counted as turns."""

FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTION = "action_default_fallback"

HANDOFF_KINDS = {"agent_joined": "claimed", "closed": "closed", "returned_to_bot": "returned_to_bot",
                 "released": "released", "timeout": "returned_to_bot"}
"""Desk event kinds (bot.handoff.messages) that change a hand-over's outcome, and the outcome they give."""

MAX_SPAN_CHARS = 40
"""A red flag's stored span is cut to this many characters."""


def event_key(event: Mapping[str, Any]) -> str:
    """SHA-256 hex of ``event`` as canonical JSON: the same event redelivered has the same key."""
    return hashlib.sha256(json.dumps(event, sort_keys=True, ensure_ascii=False, default=str)
                          .encode("utf-8")).hexdigest()


def _loads(value: Optional[str]) -> List[Any]:
    return json.loads(value) if value else []


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _higher_risk(current: Optional[str], new: Optional[str]) -> Optional[str]:
    if new not in RISK_LEVELS:
        return current
    if current not in RISK_LEVELS:
        return new
    return new if RISK_LEVELS.index(new) > RISK_LEVELS.index(current) else current


class Recorder:
    """Apply Rasa events to the record through a SQLAlchemy connection (inside the caller's transaction).

    ``engine`` is the risk engine whose lexicon names the red flags (bot.risk.default_risk_engine).
    """

    def __init__(self, engine: RiskEngine) -> None:
        self.engine = engine

    def apply_event(self, connection: Connection, event: Mapping[str, Any]) -> bool:
        """Record ``event`` (Rasa's JSON form with ``sender_id``). Returns False if it was seen before (nothing
        changes), True otherwise. Events without a sender or of other types only mark the key as seen."""
        key = event_key(event)
        timestamp = float(event.get("timestamp") or 0.0)
        if connection.execute(sa.select(seen_events.c.key).where(seen_events.c.key == key)).first():
            return False
        connection.execute(sa.insert(seen_events).values(key=key, at=timestamp))
        sender = event.get("sender_id")
        kind = event.get("event")
        if not sender or kind not in ("user", "slot", "bot", "action"):
            return True
        conversation = self._conversation(connection, str(sender), timestamp)
        if kind == "user":
            self._user(connection, conversation, event, timestamp)
        elif kind == "slot":
            self._slot(connection, conversation, event, timestamp)
        elif kind == "bot":
            self._bot(connection, conversation, event, timestamp)
        else:
            self._action(connection, conversation, event, timestamp)
        return True

    # --- rows -----------------------------------------------------------------------------------------------

    @staticmethod
    def _conversation(connection: Connection, sender: str, timestamp: float) -> Dict[str, Any]:
        row = connection.execute(sa.select(conversations).where(conversations.c.sender_id == sender)).mappings().first()
        if row is None:
            connection.execute(sa.insert(conversations).values(
                sender_id=sender, started_at=timestamp, last_at=timestamp, turns=0, fallback_turns=0,
                red_flags="[]", referrals="[]"))
            row = connection.execute(sa.select(conversations)
                                     .where(conversations.c.sender_id == sender)).mappings().one()
        elif timestamp > row["last_at"]:
            connection.execute(sa.update(conversations).where(conversations.c.id == row["id"])
                               .values(last_at=timestamp))
        return dict(row)

    @staticmethod
    def _update_conversation(connection: Connection, conversation: Mapping[str, Any], **values: Any) -> None:
        connection.execute(sa.update(conversations).where(conversations.c.id == conversation["id"]).values(**values))

    @staticmethod
    def _open_turn(connection: Connection, conversation: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        row = connection.execute(sa.select(turns).where(turns.c.conversation_id == conversation["id"])
                                 .where(turns.c.sealed.is_(False))
                                 .order_by(turns.c.turn_index.desc())).mappings().first()
        return dict(row) if row else None

    @staticmethod
    def _update_turn(connection: Connection, turn: Mapping[str, Any], timestamp: float, **values: Any) -> None:
        values["last_event_at"] = max(timestamp, turn["last_event_at"])
        connection.execute(sa.update(turns).where(turns.c.id == turn["id"]).values(**values))

    # --- events ---------------------------------------------------------------------------------------------

    def _user(self, connection: Connection, conversation: Dict[str, Any], event: Mapping[str, Any],
              timestamp: float) -> None:
        open_turn = self._open_turn(connection, conversation)
        if open_turn is not None:
            seal(connection, open_turn["id"])
        parse = event.get("parse_data") or {}
        intent = parse.get("intent") or {}
        name = intent.get("name")
        fallback = name == FALLBACK_INTENT
        channel = event.get("input_channel")
        candidates = [{"id": flag, "span": mask_pii(span)[:MAX_SPAN_CHARS]}
                      for flag, span in self.engine.find_flag_spans(str(event.get("text") or ""))]
        connection.execute(sa.insert(turns).values(
            conversation_id=conversation["id"], turn_index=conversation["turns"], at=timestamp,
            last_event_at=timestamp, channel=channel, intent=name,
            confidence=float(intent["confidence"]) if intent.get("confidence") is not None else None,
            fallback=fallback, risk_level=conversation["risk_level"], segment=conversation["segment"],
            red_flags="[]", flag_candidates=_dumps(candidates), responses="[]", referrals="[]", handoff="[]",
            sealed=False))
        if str(name or "").startswith(EXTERNAL_PREFIX):
            return  # a row for what the bot said, not a turn of the user's: the counts stay
        self._update_conversation(connection, conversation, turns=conversation["turns"] + 1,
                                  fallback_turns=conversation["fallback_turns"] + int(fallback),
                                  channel=conversation["channel"] or channel)

    def _slot(self, connection: Connection, conversation: Dict[str, Any], event: Mapping[str, Any],
              timestamp: float) -> None:
        name, value = event.get("name"), event.get("value")
        turn = self._open_turn(connection, conversation)
        if name == "risk_level" and isinstance(value, str):
            self._update_conversation(connection, conversation,
                                      risk_level=_higher_risk(conversation["risk_level"], value))
            if turn:
                self._update_turn(connection, turn, timestamp, risk_level=value)
        elif name == "user_segment" and (value is None or isinstance(value, str)):
            if value:
                self._update_conversation(connection, conversation, segment=value)
            if turn:
                self._update_turn(connection, turn, timestamp, segment=value)
        elif name == "red_flags" and isinstance(value, list):
            known = _loads(conversation["red_flags"])
            new = [str(flag) for flag in value if flag not in known]
            if new:
                self._update_conversation(connection, conversation, red_flags=_dumps(known + new))
            if turn and new:
                spans = {c["id"]: c["span"] for c in _loads(turn["flag_candidates"])}
                flags = _loads(turn["red_flags"]) + [{"id": flag, "span": spans.get(flag)} for flag in new]
                self._update_turn(connection, turn, timestamp, red_flags=_dumps(flags))
        elif name == "referrals" and isinstance(value, list):
            known = _loads(conversation["referrals"])
            new = [str(entry) for entry in value if entry not in known]
            if new:
                self._update_conversation(connection, conversation, referrals=_dumps(known + new))
            if turn and new:
                self._update_turn(connection, turn, timestamp, referrals=_dumps(_loads(turn["referrals"]) + new))
        elif name == TAP_SLOT and isinstance(value, str) and value:
            tapped = _loads(conversation.get("taps"))
            if value[:128] not in tapped:
                self._update_conversation(connection, conversation, taps=_dumps(tapped + [value[:128]]))
        elif name in ("bank", "debt_type") and isinstance(value, str) and value:
            self._update_conversation(connection, conversation, **{name: value[:64]})

    def _bot(self, connection: Connection, conversation: Dict[str, Any], event: Mapping[str, Any],
             timestamp: float) -> None:
        metadata = event.get("metadata") or {}
        turn = self._open_turn(connection, conversation)
        changes: Dict[str, Any] = {}
        if turn is not None:
            if metadata.get("utter_action"):
                changes["responses"] = _dumps(_loads(turn["responses"]) + [str(metadata["utter_action"])])
            if metadata.get("knowledge_version"):
                changes["knowledge_version"] = str(metadata["knowledge_version"])[:32]
        handoff = metadata.get("handoff") if isinstance(metadata.get("handoff"), dict) else None
        ticket = (handoff or {}).get("ticket_id") or metadata.get("ticket_id")
        if ticket and (handoff or str(metadata.get("utter_action", "")).startswith("utter_handoff")):
            kind = handoff.get("kind") if handoff else "opened"
            values: Dict[str, Any] = {"handoff_ticket": str(ticket)[:64]}
            if conversation["handoff_opened_at"] is None:
                values["handoff_opened_at"] = timestamp
                values["handoff_outcome"] = "opened"
            outcome = HANDOFF_KINDS.get(str(kind))
            if kind == "agent_joined" and conversation["handoff_claimed_at"] is None:
                values["handoff_claimed_at"] = timestamp
            if outcome:
                values["handoff_outcome"] = outcome
                if outcome != "claimed":
                    values["handoff_closed_at"] = timestamp
            self._update_conversation(connection, conversation, **values)
            if turn is not None:
                changes["handoff"] = _dumps(_loads(turn["handoff"]) + [{"ticket": str(ticket)[:64],
                                                                         "kind": str(kind), "at": timestamp}])
        if turn is not None and changes:
            self._update_turn(connection, turn, timestamp, **changes)

    def _action(self, connection: Connection, conversation: Dict[str, Any], event: Mapping[str, Any],
                timestamp: float) -> None:
        turn = self._open_turn(connection, conversation)
        if turn is None:
            return
        name = event.get("name")
        if name == FALLBACK_ACTION and not turn["fallback"]:
            self._update_turn(connection, turn, timestamp, fallback=True)
            self._update_conversation(connection, conversation, fallback_turns=conversation["fallback_turns"] + 1)
        elif name == "action_listen":
            seal(connection, turn["id"])


def seal(connection: Connection, turn_id: int) -> None:
    """Seal turn ``turn_id``: drop its transient red-flag candidates and append it to the hash chain."""
    row = connection.execute(sa.select(turns).where(turns.c.id == turn_id)).mappings().one()
    if row["sealed"]:
        return
    head_seq, head_hash = chain.read_mark(connection, chain.HEAD)
    sealed = {**row, "chain_seq": head_seq + 1, "prev_hash": head_hash}
    digest = chain.row_hash(head_hash, sealed)
    connection.execute(sa.update(turns).where(turns.c.id == turn_id).values(
        sealed=True, flag_candidates=None, chain_seq=head_seq + 1, prev_hash=head_hash, row_hash=digest))
    chain.write_mark(connection, chain.HEAD, head_seq + 1, digest)


def seal_idle(connection: Connection, now: float, idle_seconds: float = SEAL_IDLE_SECONDS) -> int:
    """Seal every open turn whose last event is more than ``idle_seconds`` before ``now`` (epoch seconds), oldest
    first. Returns how many."""
    ids = connection.execute(sa.select(turns.c.id).where(turns.c.sealed.is_(False))
                             .where(turns.c.last_event_at < now - idle_seconds).order_by(turns.c.id)).scalars().all()
    for turn_id in ids:
        seal(connection, turn_id)
    return len(ids)
