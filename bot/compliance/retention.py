"""Retention of the compliance record (``python -m bot retention apply``).

Two periods (docs/compliance.md explains the choice against PIPL's minimisation principle):

* **turns** (what was said to whom, turn by turn: intents, red-flag spans, responses, hand-over events) are kept
  ``turn_days`` (``$COMPLIANCE_TURN_RETENTION_DAYS``, default 180). Past that a turn row is deleted, the events'
  idempotency keys of that age too, and each conversation whose last event is that old loses its sender id (its
  counts stay, no longer linked to a person);
* **aggregates** (one row per conversation: channel, dates, risk level, segment, red-flag ids, referrals,
  hand-over times; no sender id by then) are kept ``aggregate_days`` (``$COMPLIANCE_AGGREGATE_RETENTION_DAYS``,
  default 1095) and then deleted.

Turns leave the hash chain from its start (bot.compliance.chain): a turn is deleted once it and every turn
sealed before it are past the date, and the last deleted turn becomes the chain's anchor. Turns are sealed
within minutes of their messages, so a turn may outlive its date by at most that long.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.compliance import chain
from bot.compliance.record import seal_idle
from bot.compliance.schema import conversations, seen_events, turns

DAY_SECONDS = 86_400
DEFAULT_TURN_DAYS = 180
DEFAULT_AGGREGATE_DAYS = 1095


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days turns and aggregates are kept (both > 0; aggregates at least as long as turns)."""

    turn_days: int = DEFAULT_TURN_DAYS
    aggregate_days: int = DEFAULT_AGGREGATE_DAYS

    def __post_init__(self) -> None:
        if self.turn_days <= 0 or self.aggregate_days <= 0:
            raise ValueError("retention periods must be at least one day")
        if self.aggregate_days < self.turn_days:
            raise ValueError("aggregates cannot be kept for less time than the turns they count")

    @classmethod
    def from_env(cls, turn_days: Optional[int] = None, aggregate_days: Optional[int] = None) -> RetentionPolicy:
        """The given periods, else ``$COMPLIANCE_TURN_RETENTION_DAYS`` / ``$COMPLIANCE_AGGREGATE_RETENTION_DAYS``,
        else the defaults. Raises ValueError for a value that is not a positive whole number of days."""
        def pick(given: Optional[int], variable: str, default: int) -> int:
            if given is not None:
                return given
            raw = os.environ.get(variable)
            if not raw:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"${variable} must be a whole number of days, not {raw!r}") from None

        return cls(pick(turn_days, "COMPLIANCE_TURN_RETENTION_DAYS", DEFAULT_TURN_DAYS),
                   pick(aggregate_days, "COMPLIANCE_AGGREGATE_RETENTION_DAYS", DEFAULT_AGGREGATE_DAYS))


@dataclass
class Deleted:
    """What one run deleted or pseudonymised (counts of rows)."""

    turns: int = 0
    event_keys: int = 0
    conversations_unlinked: int = 0
    conversations: int = 0

    def describe(self, policy: RetentionPolicy) -> str:
        """One line per kind, for the command's output."""
        return "\n".join([
            f"turns older than {policy.turn_days} days deleted: {self.turns}",
            f"event keys older than {policy.turn_days} days deleted: {self.event_keys}",
            f"conversations older than {policy.turn_days} days unlinked from their sender: "
            f"{self.conversations_unlinked}",
            f"conversations older than {policy.aggregate_days} days deleted: {self.conversations}",
        ])


def apply(engine: Engine, policy: RetentionPolicy, now: Optional[float] = None) -> Deleted:
    """Delete what ``policy`` no longer keeps, as of ``now`` (epoch seconds; default: the clock), in one
    transaction. Returns the counts."""
    now = time.time() if now is None else now
    turn_cutoff = now - policy.turn_days * DAY_SECONDS
    aggregate_cutoff = now - policy.aggregate_days * DAY_SECONDS
    deleted = Deleted()
    with engine.begin() as connection:
        seal_idle(connection, now)
        # the longest start of the chain whose turns are all past the date
        first_kept = connection.execute(sa.select(sa.func.min(turns.c.chain_seq))
                                        .where(turns.c.chain_seq.isnot(None))
                                        .where(turns.c.at >= turn_cutoff)).scalar()
        doomed = sa.select(turns.c.chain_seq, turns.c.row_hash).where(turns.c.chain_seq.isnot(None))
        if first_kept is not None:
            doomed = doomed.where(turns.c.chain_seq < first_kept)
        last = connection.execute(doomed.order_by(turns.c.chain_seq.desc()).limit(1)).first()
        if last is not None:
            deleted.turns = connection.execute(sa.delete(turns).where(turns.c.chain_seq <= last.chain_seq)
                                               ).rowcount
            chain.write_mark(connection, chain.ANCHOR, last.chain_seq, last.row_hash)
        deleted.event_keys = connection.execute(sa.delete(seen_events).where(seen_events.c.at < turn_cutoff)
                                                ).rowcount
        deleted.conversations_unlinked = connection.execute(
            sa.update(conversations).where(conversations.c.last_at < turn_cutoff)
            .where(conversations.c.sender_id.isnot(None)).values(sender_id=None)).rowcount
        old = sa.select(conversations.c.id).where(conversations.c.last_at < aggregate_cutoff)
        connection.execute(sa.delete(turns).where(turns.c.conversation_id.in_(old)))
        deleted.conversations = connection.execute(
            sa.delete(conversations).where(conversations.c.last_at < aggregate_cutoff)).rowcount
    return deleted
