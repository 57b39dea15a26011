"""The hash chain over sealed turn rows, and its check (``python -m bot audit verify``).

When a turn is sealed (complete: bot.compliance.record) it gets the next ``chain_seq``, the ``row_hash`` of the
previously sealed turn as its ``prev_hash``, and its own ``row_hash``: SHA-256 (hex) of ``prev_hash`` and the
row's recorded fields as canonical JSON (:data:`HASHED_FIELDS`, sorted keys). Editing a field breaks that row's
hash; deleting a row breaks the next row's ``prev_hash`` (or leaves a gap in ``chain_seq``). Retention deletes
the oldest turns on purpose and records the last deleted row's ``chain_seq`` and hash as the anchor
(``compliance_state`` row ``chain_anchor``), where verification then starts.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.compliance.schema import state, turns

GENESIS = "0" * 64
"""``prev_hash`` of the first sealed turn."""

HASHED_FIELDS = ("chain_seq", "conversation_id", "turn_index", "at", "channel", "intent", "confidence", "fallback",
                 "risk_level", "segment", "red_flags", "responses", "referrals", "handoff", "knowledge_version")
"""The turn columns the hash covers (with ``prev_hash``)."""

HEAD, ANCHOR = "chain_head", "chain_anchor"
"""compliance_state rows: the last sealed turn, and the last turn deleted by retention (``{"seq", "hash"}``)."""


def row_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """SHA-256 hex of ``prev_hash`` and ``row``'s HASHED_FIELDS as canonical JSON (``fallback`` as a bool)."""
    fields = {name: row[name] for name in HASHED_FIELDS}
    fields["fallback"] = bool(fields["fallback"])
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()


def read_mark(connection: Connection, name: str) -> Tuple[int, str]:
    """``(chain_seq, hash)`` stored under ``name`` (HEAD or ANCHOR); ``(0, GENESIS)`` when there is none."""
    value = connection.execute(sa.select(state.c.value).where(state.c.name == name)).scalar()
    if value is None:
        return 0, GENESIS
    mark = json.loads(value)
    return int(mark["seq"]), str(mark["hash"])


def write_mark(connection: Connection, name: str, seq: int, digest: str) -> None:
    """Store ``(seq, digest)`` under ``name``."""
    value = json.dumps({"seq": seq, "hash": digest})
    if connection.execute(sa.update(state).where(state.c.name == name).values(value=value)).rowcount == 0:
        connection.execute(sa.insert(state).values(name=name, value=value))


@dataclass
class Verification:
    """Result of :func:`verify`: how many sealed rows were checked and the problems found (empty: intact)."""

    checked: int
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no row was edited, deleted or inserted out of the chain."""
        return not self.problems


def verify(connection: Connection, max_problems: int = 20) -> Verification:
    """Walk the sealed turns in ``chain_seq`` order from the retention anchor and recompute every hash.

    Reports an edited row (its hash no longer matches), a deleted one (a gap in ``chain_seq`` or a
    ``prev_hash`` that is not the previous row's hash) and a chain head that does not match the last row (the
    newest rows deleted). Stops listing after ``max_problems``.
    """
    expected_seq, expected_prev = read_mark(connection, ANCHOR)
    head_seq, head_hash = read_mark(connection, HEAD)
    result = Verification(checked=0)
    rows = connection.execute(sa.select(turns).where(turns.c.chain_seq.isnot(None))
                              .where(turns.c.chain_seq > expected_seq).order_by(turns.c.chain_seq))
    last_hash: Optional[str] = expected_prev
    for row in rows.mappings():
        result.checked += 1
        seq = row["chain_seq"]
        if seq != expected_seq + 1:
            result.problems.append(f"turns {expected_seq + 1}..{seq - 1} of the chain are missing (deleted)")
        if row["prev_hash"] != last_hash:
            result.problems.append(f"turn {seq}: its previous-row hash does not match (a row before it was "
                                   "deleted or edited)")
        if row_hash(row["prev_hash"] or "", row) != row["row_hash"]:
            result.problems.append(f"turn {seq}: its content does not match its hash (edited)")
        expected_seq, last_hash = seq, row["row_hash"]
        if len(result.problems) >= max_problems:
            return result
    if head_seq and (expected_seq, last_hash) != (head_seq, head_hash):
        result.problems.append(f"the chain should end at turn {head_seq} but ends at {expected_seq} "
                               "(the newest rows were deleted or edited)")
    return result
