"""bot.tracker_store.BufferedSQLTrackerStore on SQLite, with the database made to fail and come back: the turns
answered meanwhile are written once it answers, each event once."""
from __future__ import annotations

import asyncio
import json

import sqlalchemy as sa
import sqlalchemy.orm
from rasa.core.tracker_store import FailSafeTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered

from bot.tracker_store import BufferedSQLTrackerStore


def _store(tmp_path):
    return BufferedSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"))


class _Outage:
    """Point the store's sessions at a database that cannot be opened until the block ends: as with a server
    that is down, a session fails when it first needs a connection (one that runs no statement succeeds)."""

    def __init__(self, store, tmp_path):
        self.store = store
        self.unreachable = sa.create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")

    def __enter__(self):
        self.working = self.store.sessionmaker
        self.store.sessionmaker = sa.orm.sessionmaker(bind=self.unreachable)

    def __exit__(self, *exc):
        self.store.sessionmaker = self.working


def _stored_texts(store, sender):
    with store.engine.connect() as db:
        rows = db.execute(sa.text("SELECT data FROM events WHERE sender_id = :s ORDER BY id"), {"s": sender})
        return [(e["event"], e.get("text")) for e in (json.loads(r[0]) for r in rows)]


def _turn(tracker, text, answer):
    tracker.update(UserUttered(text, {"name": "greet"}))
    tracker.update(BotUttered(answer))
    tracker.update(ActionExecuted("action_listen"))


def test_a_continued_conversation_written_after_the_outage_keeps_every_event_once(tmp_path):
    store = _store(tmp_path)

    async def go():
        tracker = await FailSafeTrackerStore(store).get_or_create_tracker("u1")
        tracker.update(SessionStarted())
        _turn(tracker, "第一句", "回答一")
        await store.save(tracker)
        tracker = await store.retrieve("u1")
        with _Outage(store, tmp_path):
            _turn(tracker, "第二句", "回答二")
            await store.save(tracker)
            assert "u1" in store.pending
            during = await store.retrieve("u1")
            assert [e.text for e in during.events if isinstance(e, UserUttered)] == ["第一句", "第二句"]
            _turn(during, "第三句", "回答三")
            await store.save(during)
        after = await store.retrieve("u1")
        assert not store.pending
        return after

    after = asyncio.run(go())
    texts = [t for kind, t in _stored_texts(store, "u1") if kind == "user"]
    assert texts == ["第一句", "第二句", "第三句"]
    assert [e.text for e in after.events if isinstance(e, UserUttered)] == texts


def test_a_conversation_that_could_not_be_read_is_appended_as_a_new_session(tmp_path):
    store = _store(tmp_path)
    fail_safe = FailSafeTrackerStore(store)

    async def go():
        old = await fail_safe.get_or_create_tracker("u2")
        old.update(SessionStarted())
        _turn(old, "以前的话", "以前的回答")
        await store.save(old)
        with _Outage(store, tmp_path):
            # As Rasa's processor: the read fails, a new (empty) conversation is created and saved, then the turn
            fresh = await fail_safe.get_or_create_tracker("u2", append_action_listen=False)
            assert not [e for e in fresh.events if isinstance(e, UserUttered)]
            fresh.update(SessionStarted())
            _turn(fresh, "停电时的话", "停电时的回答")
            await fail_safe.save(fresh)
            assert "u2" in store.detached and "u2" in store.pending
        return await store.retrieve("u2")

    after = asyncio.run(go())
    stored = _stored_texts(store, "u2")
    assert [t for kind, t in stored if kind == "user"] == ["以前的话", "停电时的话"]
    assert [t for kind, t in stored if kind == "bot"] == ["以前的回答", "停电时的回答"]
    assert [e.text for e in after.events if isinstance(e, UserUttered)] == ["停电时的话"]
    assert not fail_safe.fallback_tracker_store.store, "nothing went to Rasa's write-only fall-back"


def test_a_detached_conversation_written_in_two_steps_loses_nothing(tmp_path):
    """The database returns between the new conversation's first, empty save and the end of the turn."""
    store = _store(tmp_path)
    fail_safe = FailSafeTrackerStore(store)

    async def go():
        old = await fail_safe.get_or_create_tracker("u3")
        old.update(SessionStarted())
        _turn(old, "以前的话", "以前的回答")
        await store.save(old)
        with _Outage(store, tmp_path):
            fresh = await fail_safe.get_or_create_tracker("u3", append_action_listen=False)
        fresh.update(SessionStarted())
        _turn(fresh, "第一句", "回答一")
        await fail_safe.save(fresh)
        _turn(fresh, "第二句", "回答二")
        await fail_safe.save(fresh)
        return await store.retrieve("u3")

    after = asyncio.run(go())
    assert [t for kind, t in _stored_texts(store, "u3") if kind == "user"] == ["以前的话", "第一句", "第二句"]
    assert [e.text for e in after.events if isinstance(e, UserUttered)] == ["第一句", "第二句"]
    assert not store.detached and not store.pending


def _store_with_broker(tmp_path):
    from rasa.core.brokers.sql import SQLEventBroker

    broker = SQLEventBroker(dialect="sqlite", db=str(tmp_path / "broker.db"))
    store = BufferedSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"), event_broker=broker)
    return store, broker


def _published(broker, sender):
    with broker.engine.connect() as db:
        rows = db.execute(sa.text("SELECT data FROM events WHERE sender_id = :s ORDER BY id"), {"s": sender})
        return [(e["event"], e.get("text")) for e in (json.loads(r[0]) for r in rows)]


def test_with_an_event_broker_the_outage_turns_are_written_and_published_once(tmp_path):
    """The event broker gets exactly the events stored, each once, and the flush does not recurse (Rasa's own
    stream_events re-reads the tracker through retrieve, which flushes the pending tracker again)."""
    store, broker = _store_with_broker(tmp_path)

    async def go():
        tracker = await FailSafeTrackerStore(store).get_or_create_tracker("b1")
        tracker.update(SessionStarted())
        _turn(tracker, "第一句", "回答一")
        await store.save(tracker)
        tracker = await store.retrieve("b1")
        with _Outage(store, tmp_path):
            _turn(tracker, "第二句", "回答二")
            await store.save(tracker)
            during = await store.retrieve("b1")
            _turn(during, "第三句", "回答三")
            await store.save(during)
            assert "b1" in store.pending
        after = await store.retrieve("b1")
        _turn(after, "第四句", "回答四")
        await store.save(after)
        assert not store.pending

    asyncio.run(go())
    stored = _stored_texts(store, "b1")
    assert [t for kind, t in stored if kind == "user"] == ["第一句", "第二句", "第三句", "第四句"]
    assert _published(broker, "b1") == stored, "the broker gets exactly what was stored, in order"


def test_with_an_event_broker_a_detached_conversation_is_published_as_appended(tmp_path):
    store, broker = _store_with_broker(tmp_path)
    fail_safe = FailSafeTrackerStore(store)

    async def go():
        old = await fail_safe.get_or_create_tracker("b2")
        old.update(SessionStarted())
        _turn(old, "以前的话", "以前的回答")
        await store.save(old)
        with _Outage(store, tmp_path):
            fresh = await fail_safe.get_or_create_tracker("b2", append_action_listen=False)
            fresh.update(SessionStarted())
            _turn(fresh, "停电时的话", "停电时的回答")
            await fail_safe.save(fresh)
        _turn(fresh, "恢复后的话", "恢复后的回答")
        await fail_safe.save(fresh)

    asyncio.run(go())
    stored = _stored_texts(store, "b2")
    assert [t for kind, t in stored if kind == "user"] == ["以前的话", "停电时的话", "恢复后的话"]
    assert _published(broker, "b2") == stored


def test_nothing_is_published_for_a_write_that_failed(tmp_path):
    store, broker = _store_with_broker(tmp_path)

    async def go():
        tracker = await FailSafeTrackerStore(store).get_or_create_tracker("b3")
        with _Outage(store, tmp_path):
            tracker.update(SessionStarted())
            _turn(tracker, "停电时的话", "停电时的回答")
            await store.save(tracker)

    asyncio.run(go())
    assert "b3" in store.pending
    assert _published(broker, "b3") == _stored_texts(store, "b3") == [("action", None)], \
        "only the written action_listen of the new conversation is published, not the turn kept pending"
