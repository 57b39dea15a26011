"""A SQL tracker store that keeps, in memory, the conversations it could not write, and writes them once the
database answers again: a database outage costs no event of a turn that was answered.

Rasa wraps every tracker store in its ``FailSafeTrackerStore``: when the database fails, a read returns
"no conversation" (so the turn runs as a new one) and a write goes to an in-memory store that nothing ever
reads or copies back. The turns answered during the outage are therefore lost, and the next turn after it
forgets them. :class:`BufferedSQLTrackerStore` (``type: bot.tracker_store.BufferedSQLTrackerStore`` in
endpoints.production.yml, same settings as Rasa's ``SQL`` type) instead:

* on a failed write, keeps the tracker as *pending* for its conversation;
* on the conversation's next read or write, writes the pending tracker first; while the database is still
  down, a read returns the pending tracker, so the conversation goes on where it was;
* a conversation whose read failed (Rasa then starts it afresh) is *detached*: its events are appended after
  the stored ones as they are (a new session in the record), never matched by count against the stored ones
  the way ``SQLTrackerStore.save`` matches a continued conversation (which would drop or repeat events).

Events reach Rasa's event broker (when one is configured) only once they are written, and exactly the events
written: Rasa's ``SQLTrackerStore.save`` instead first re-reads the whole stored tracker through ``retrieve`` to
find the new events by count (``TrackerStore.stream_events``), which here would flush the pending tracker from
inside its own flush (unbounded recursion) and would count a detached conversation's events against the wrong
base. Publishing after the commit also saves that second read of the tracker on every turn.

Limits: pending trackers live in this process only (a crash or a restart before the database returns loses
them, as Rasa's fall-back store would) and are written on their conversation's next turn, at most
``MAX_PENDING`` conversations (the oldest is dropped, logged). Reads and writes are synchronous SQLAlchemy
calls on Rasa's event loop, as in Rasa; bound them with the driver's ``connect_timeout``.
"""
from __future__ import annotations

import itertools
import json
import logging
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

MAX_PENDING = 10_000
"""Most conversations kept pending at once."""


class BufferedSQLTrackerStore(SQLTrackerStore):
    """Rasa's ``SQLTrackerStore`` (same arguments) with the pending buffer described in the module docstring.

    ``pending`` maps sender id to the tracker not yet (fully) written; read it for monitoring only. A detached
    conversation's entry in ``detached`` counts the events of its in-memory tracker already written, until a
    read from the database gives the conversation a stored base again.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: OrderedDict[str, DialogueStateTracker] = OrderedDict()
        self.detached: Dict[str, int] = {}
        self._write_from: Dict[str, int] = {}

    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        """The conversation's tracker: written first if pending; the pending one while the database is down.

        Raises the database's error when nothing is pending and the read fails (Rasa's fail-safe wrapper then
        starts the conversation afresh; this store marks it detached).
        """
        if sender_id in self.pending and not await self._flush(sender_id):
            return self.pending[sender_id].copy()
        try:
            tracker = await super().retrieve(sender_id)
        except Exception:
            self.detached.setdefault(sender_id, 0)
            raise
        self.detached.pop(sender_id, None)
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Write ``tracker``; when the database fails, keep it pending (logged), never raise for that."""
        sender_id = tracker.sender_id
        if sender_id not in self.pending and sender_id not in self.detached:
            try:
                await self._write(tracker)
                return
            except Exception as err:  # noqa: BLE001  (any database error: keep the turn for later)
                logger.error("Tracker store write failed for a conversation; kept in memory until the "
                             "database answers: %s", err)
                self._keep(tracker)
                return
        self._keep(tracker)
        await self._flush(sender_id)

    def _keep(self, tracker: DialogueStateTracker) -> None:
        self.pending[tracker.sender_id] = tracker.copy()
        self.pending.move_to_end(tracker.sender_id)
        while len(self.pending) > MAX_PENDING:
            dropped, _ = self.pending.popitem(last=False)
            self.detached.pop(dropped, None)
            logger.error("Dropped the pending tracker of conversation %s (more than %d pending).", dropped,
                         MAX_PENDING)

    async def _flush(self, sender_id: str) -> bool:
        """Write the pending tracker of ``sender_id``; True when written (or nothing pending)."""
        tracker = self.pending.get(sender_id)
        if tracker is None:
            return True
        written = self.detached.get(sender_id)
        if written is not None:
            self._write_from[sender_id] = written
        try:
            await self._write(tracker)
        except Exception as err:  # noqa: BLE001  (still down: stay pending)
            logger.warning("The database still fails; conversation kept pending: %s", err)
            return False
        finally:
            self._write_from.pop(sender_id, None)
        del self.pending[sender_id]
        if written is not None:
            self.detached[sender_id] = len(tracker.events)
        logger.warning("A conversation kept in memory during a database outage is written (%d events).",
                       len(tracker.events) - (written or 0))
        return True

    async def _write(self, tracker: DialogueStateTracker) -> None:
        """Append the tracker's events not stored yet, commit, then publish those same events to the event broker.

        The rows are built as Rasa 3.6's ``SQLTrackerStore.save`` builds them (same columns and JSON). Raises the
        database's error (nothing published then); the broker is not awaited for delivery (``publish`` queues).
        """
        with self.session_scope() as session:
            events: List[Event] = list(self._additional_events(session, tracker))
            for event in events:
                data = event.as_dict()
                session.add(self.SQLEvent(
                    sender_id=tracker.sender_id,
                    type_name=event.type_name,
                    timestamp=data.get("timestamp"),
                    intent_name=data.get("parse_data", {}).get("intent", {}).get("name"),
                    action_name=data.get("name"),
                    data=json.dumps(data),
                ))
            session.commit()
        if self.event_broker is not None:
            await self._stream_new_events(self.event_broker, events, tracker.sender_id)

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        """Rasa's: the events not stored yet, counted from the latest session; for a detached conversation, the
        events after those this store already wrote of it."""
        start = self._write_from.get(tracker.sender_id)
        if start is not None:
            return itertools.islice(tracker.events, start, len(tracker.events))
        return super()._additional_events(session, tracker)


def recent_events(store: Any, sender_id: str, user_messages: int, page: int = 50) -> Optional[list]:
    """The latest events of the conversation's current session in a SQL tracker store, oldest first (Rasa's event
    JSON), read backwards ``page`` rows at a time until ``user_messages`` + 1 user messages or the session's start
    are reached: the tail that a backward scan for the last ``user_messages`` user messages needs, without
    reading the whole tracker. None when this cannot tell (not a SQL store, a tracker pending in memory, a
    failed query); never raises. Rasa's wrappers around the store (``_tracker_store``) are looked through."""

    while hasattr(store, "_tracker_store"):
        store = store._tracker_store
    if not isinstance(store, SQLTrackerStore) or sender_id in getattr(store, "pending", {}):
        return None
    event = store.SQLEvent
    found: list = []
    users = 0
    before: Optional[int] = None
    try:
        with store.session_scope() as session:
            while True:
                query = session.query(event.id, event.type_name, event.data).filter(event.sender_id == sender_id)
                if before is not None:
                    query = query.filter(event.id < before)
                rows = query.order_by(event.id.desc()).limit(page).all()
                for row_id, type_name, data in rows:
                    before = row_id
                    found.append(json.loads(data))
                    users += type_name == "user"
                    if type_name == "session_started" or users > user_messages:
                        return list(reversed(found))
                if len(rows) < page:
                    return list(reversed(found))
    except Exception as err:  # noqa: BLE001 - the caller reads the whole tracker instead
        logger.debug("Reading the latest events failed: %s", err)
        return None
