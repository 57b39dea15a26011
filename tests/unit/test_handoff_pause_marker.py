"""The paused gate's cheap check (bot.handoff.paused.latest_pause_marker): a conversation that is not paused
costs one query of one row, not a read of its whole tracker; a paused one is still read and gated."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ConversationPaused,
    ConversationResumed,
    Restarted,
    SessionStarted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.handoff.paused import _is_paused, latest_pause_marker
from bot.tracker_store import BufferedSQLTrackerStore


class _CountingStore:
    """A tracker store wrapper (Rasa's ``_tracker_store`` convention) counting whole-tracker reads."""

    def __init__(self, inner):
        self._tracker_store = inner
        self.reads = 0

    async def retrieve(self, sender_id):
        self.reads += 1
        return await self._tracker_store.retrieve(sender_id)


def _agent(store):
    processor = SimpleNamespace(_has_session_expired=lambda tracker: False)
    return SimpleNamespace(tracker_store=_CountingStore(store), lock_store=InMemoryLockStore(), processor=processor)


def _save(store, sender, *events):
    tracker = DialogueStateTracker(sender, [])
    for event in (ActionExecuted("action_listen"), *[UserUttered(f"第{i}句") for i in range(3)], *events):
        tracker.update(event)
    asyncio.run(store.save(tracker))


@pytest.fixture(params=[SQLTrackerStore, BufferedSQLTrackerStore])
def sql_store(request, tmp_path):
    return request.param(Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"))


@pytest.mark.parametrize("events, marker, paused", [
    ((), "", False),
    ((ConversationPaused(),), "pause", True),
    ((ConversationPaused(), ConversationResumed()), "resume", False),
    ((ConversationPaused(), Restarted()), "restart", False),
    ((ConversationPaused(), ActionExecuted("action_session_start"), SessionStarted()), "session_started", False),
])
def test_the_marker_says_what_the_tracker_says(sql_store, events, marker, paused):
    _save(sql_store, "m1", *events)
    assert latest_pause_marker(sql_store, "m1") == marker
    agent = _agent(sql_store)
    assert asyncio.run(_is_paused(agent, "m1")) is paused
    assert asyncio.run(sql_store.retrieve("m1")).is_paused() is paused
    assert agent.tracker_store.reads == (1 if paused else 0)


def test_an_unknown_conversation_is_not_paused_and_not_read(sql_store):
    agent = _agent(sql_store)
    assert asyncio.run(_is_paused(agent, "nobody")) is False
    assert agent.tracker_store.reads == 0


def test_a_store_that_is_not_sql_is_read_as_before():
    store = InMemoryTrackerStore(Domain.empty())
    _save(store, "m2", ConversationPaused())
    assert latest_pause_marker(store, "m2") is None
    agent = _agent(store)
    assert asyncio.run(_is_paused(agent, "m2")) is True
    assert agent.tracker_store.reads == 1


def test_a_conversation_pending_in_memory_is_read_whole(tmp_path):
    store = BufferedSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"))
    _save(store, "m3")
    tracker = DialogueStateTracker("m3", [])
    tracker.update(ConversationPaused())
    store.pending["m3"] = tracker
    assert latest_pause_marker(store, "m3") is None


def test_a_failing_database_leaves_the_decision_to_the_full_read(tmp_path):
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"))
    store.engine.dispose()
    store.sessionmaker = lambda: (_ for _ in ()).throw(RuntimeError("database down"))
    assert latest_pause_marker(store, "m4") is None
