"""The ticket store (bot/handoff/store.py) on SQLite and on the local PostgreSQL, migrated with Alembic.

Every test runs on both backends; the PostgreSQL runs are skipped, with the reason, when nothing listens on
127.0.0.1:5432. The concurrency test claims one ticket from several threads at the same instant.
"""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import inspect, text

from bot.db import LEGACY_VERSION_TABLES, VERSION_TABLE, make_engine, upgrade_database
from bot.handoff.priority import PRIORITY_DISTRESS, PRIORITY_OTHER, PRIORITY_VICTIM
from bot.handoff.store import (
    CLAIMED,
    CLOSED,
    QUEUED,
    InvalidInput,
    NewTicket,
    TicketConflict,
    TicketNotFound,
    TicketStore,
)
from tests.support.handoff import PG_HOST, PG_PORT, postgres_reachable, throwaway_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'handoff.db'}"
        return
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    with throwaway_postgres() as url:
        yield url


class Clock:
    """A settable clock (naive UTC)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 30, 2, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(database_url, clock):
    upgrade_database(database_url, "handoff")
    engine = make_engine(database_url)
    yield TicketStore(engine, webhook_enabled=True, clock=clock)
    engine.dispose()


def _new(sender="user-1", priority=PRIORITY_OTHER, reason="user_request", **summary) -> NewTicket:
    return NewTicket(sender_id=sender, channel="socketio", priority=priority, reason=reason,
                     summary={"reason": reason, "intents_seen": ["request_human"], **summary},
                     transcript=[{"role": "user", "text": "转人工", "time": None}])


def test_migrations_create_every_table_and_are_idempotent(database_url):
    upgrade_database(database_url, "handoff")
    upgrade_database(database_url, "handoff")
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            version = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
    finally:
        engine.dispose()
    assert {"handoff_tickets", "handoff_notes", "handoff_audit", "handoff_webhook_deliveries"} <= tables
    assert version == "0003_agent_credentials"  # the head of the handoff branch


def test_a_store_migrated_by_the_earlier_history_is_adopted_not_recreated(database_url, store):
    ticket, _ = store.create_ticket(_new())
    engine = make_engine(database_url)
    legacy = LEGACY_VERSION_TABLES["handoff"]
    try:
        with engine.begin() as conn:  # the layout the earlier release left: its own version table only
            conn.execute(text(f"CREATE TABLE {legacy} (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text(f"INSERT INTO {legacy} VALUES ('0001_handoff_tables')"))
            conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        upgrade_database(database_url, "handoff")
        with engine.connect() as conn:
            version = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
    finally:
        engine.dispose()
    assert version == "0003_agent_credentials"  # the head of the handoff branch
    assert store.get(ticket.id).sender_id == ticket.sender_id


def test_the_earlier_history_is_adopted_even_when_another_store_migrated_the_database_first(database_url, store):
    ticket, _ = store.create_ticket(_new())
    engine = make_engine(database_url)
    legacy = LEGACY_VERSION_TABLES["handoff"]
    try:
        with engine.begin() as conn:  # the earlier release's layout, then the WeChat store's upgrade comes first
            conn.execute(text(f"CREATE TABLE {legacy} (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text(f"INSERT INTO {legacy} VALUES ('0001_handoff_tables')"))
            conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        upgrade_database(database_url, "wechat")
        upgrade_database(database_url, "handoff")
        with engine.connect() as conn:
            versions = {row[0] for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))}
    finally:
        engine.dispose()
    assert versions == {"0003_agent_credentials", "0001_wechat_store"}
    assert store.get(ticket.id).sender_id == ticket.sender_id


def test_an_interrupted_migration_leaves_nothing_behind(database_url, monkeypatch):
    """A migration that fails half-way (a killed server, a full disk) rolls back its DDL, on SQLite too, so the
    next start migrates from scratch instead of tripping over half-made tables."""
    from alembic.operations import Operations

    real_create_index = Operations.create_index

    def fail_after_the_tables(self, *args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(Operations, "create_index", fail_after_the_tables)
    with pytest.raises(RuntimeError, match="interrupted"):
        upgrade_database(database_url, "handoff")
    engine = make_engine(database_url)
    try:
        assert "handoff_tickets" not in set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    monkeypatch.setattr(Operations, "create_index", real_create_index)
    upgrade_database(database_url, "handoff")
    engine = make_engine(database_url)
    try:
        assert "handoff_tickets" in set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_new_ticket_is_queued_with_its_summary_transcript_and_audit(store):
    ticket, created = store.create_ticket(_new(bank="招商银行"))
    assert created and ticket.status == QUEUED and ticket.claimed_by is None
    stored = store.get(ticket.id)
    assert stored.summary["bank"] == "招商银行" and stored.transcript[0]["text"] == "转人工"
    assert stored.channel == "socketio" and stored.sender_id == "user-1"
    assert [(a.agent, a.action) for a in store.audit_log(ticket.id)] == [("system", "create")]
    assert [d.event for d in store.deliveries(ticket.id)] == ["ticket.created"]


def test_an_open_ticket_is_refreshed_not_duplicated(store):
    first, _ = store.create_ticket(_new())
    again, created = store.create_ticket(_new(priority=PRIORITY_DISTRESS, reason="distress"))
    assert not created and again.id == first.id
    assert again.priority == PRIORITY_DISTRESS and again.summary["reason"] == "distress"
    assert len(store.queue()) == 1


def test_queue_is_ordered_by_priority_then_age_and_hides_closed(store, clock):
    old_other, _ = store.create_ticket(_new("a"))
    clock.advance(60)
    victim, _ = store.create_ticket(_new("b", PRIORITY_VICTIM, "agency_victim"))
    clock.advance(60)
    new_other, _ = store.create_ticket(_new("c"))
    clock.advance(60)
    distress, _ = store.create_ticket(_new("d", PRIORITY_DISTRESS, "distress"))
    assert [t.id for t in store.queue()] == [distress.id, victim.id, old_other.id, new_other.id]
    store.claim(victim.id, "王敏")
    store.close(victim.id, "王敏", "resolved")
    assert victim.id not in [t.id for t in store.queue()]
    assert [t.id for t in store.queue(include_closed=True)][-1] == victim.id


def test_claim_reply_note_close_are_audited_with_who_and_what(store):
    ticket, _ = store.create_ticket(_new())
    sent = []
    claimed = store.claim(ticket.id, "王敏", side_effect=sent.append)
    assert claimed.status == CLAIMED and claimed.claimed_by == "王敏" and sent == [claimed]
    store.record_reply(ticket.id, "王敏", "您好，我是客服王敏。", side_effect=sent.append)
    note = store.add_note(ticket.id, "李强", "用户提到已向中介付款")
    closed = store.close(ticket.id, "王敏", "police_report_advised", side_effect=sent.append)
    assert closed.status == CLOSED and closed.outcome == "police_report_advised" and closed.closed_by == "王敏"
    assert len(sent) == 3
    assert [n.text for n in store.notes(ticket.id)] == [note.text]
    log = [(a.agent, a.action) for a in reversed(store.audit_log(ticket.id))]
    assert log == [("system", "create"), ("王敏", "claim"), ("王敏", "reply"), ("李强", "note"),
                   ("王敏", "close")]
    assert store.audit_log(ticket.id)[0].detail == {"outcome": "police_report_advised"}
    assert [d.event for d in store.deliveries(ticket.id)] == [
        "ticket.created", "ticket.claimed", "ticket.replied", "ticket.note_added", "ticket.closed"]


def test_only_the_holder_may_reply_or_close(store):
    ticket, _ = store.create_ticket(_new())
    with pytest.raises(TicketConflict, match="claim it first"):
        store.record_reply(ticket.id, "王敏", "你好", side_effect=lambda t: None)
    store.claim(ticket.id, "王敏")
    with pytest.raises(TicketConflict, match="held by 王敏"):
        store.claim(ticket.id, "李强")
    with pytest.raises(TicketConflict, match="held by 王敏"):
        store.record_reply(ticket.id, "李强", "你好", side_effect=lambda t: None)
    with pytest.raises(TicketConflict):
        store.close(ticket.id, "李强", "resolved")
    assert store.claim(ticket.id, "王敏").claimed_by == "王敏"  # claiming again is harmless


def test_refused_operations_leave_no_partial_state(store):
    ticket, _ = store.create_ticket(_new())
    store.claim(ticket.id, "王敏")
    store.close(ticket.id, "王敏", "resolved")
    before = store.counts()
    with pytest.raises(TicketNotFound):
        store.claim("no-such-ticket", "王敏")
    with pytest.raises(TicketNotFound):
        store.add_note("no-such-ticket", "王敏", "备注")
    with pytest.raises(TicketConflict, match="closed"):
        store.record_reply(ticket.id, "王敏", "还在吗", side_effect=lambda t: pytest.fail("sent"))
    with pytest.raises(InvalidInput):
        store.close(ticket.id, "王敏", "made_up_outcome")
    with pytest.raises(InvalidInput):
        store.add_note(ticket.id, "王敏", "   ")
    assert store.counts() == before
    assert store.get(ticket.id).status == CLOSED


def test_a_failing_side_effect_rolls_the_change_back(store):
    ticket, _ = store.create_ticket(_new())
    before = store.counts()

    def rasa_down(_ticket):
        raise RuntimeError("Rasa is down")

    with pytest.raises(RuntimeError):
        store.claim(ticket.id, "王敏", side_effect=rasa_down)
    assert store.get(ticket.id).status == QUEUED and store.counts() == before
    store.claim(ticket.id, "王敏")
    claimed_counts = store.counts()
    with pytest.raises(RuntimeError):
        store.close(ticket.id, "王敏", "resolved", side_effect=rasa_down)
    with pytest.raises(RuntimeError):
        store.record_reply(ticket.id, "王敏", "你好", side_effect=rasa_down)
    assert store.get(ticket.id).status == CLAIMED and store.counts() == claimed_counts


def test_two_agents_claiming_at_the_same_instant_exactly_one_wins(store, database_url):
    for round_number in range(5):
        ticket, _ = store.create_ticket(_new(f"race-{round_number}"))
        agents = ["王敏", "李强", "张伟", "赵丽"]
        barrier = threading.Barrier(len(agents))
        results = {}

        def claim(agent):
            own = TicketStore(make_engine(database_url))  # separate engines, as separate desk workers
            barrier.wait()
            try:
                results[agent] = own.claim(ticket.id, agent).claimed_by
            except TicketConflict:
                results[agent] = "conflict"
            finally:
                own.engine.dispose()

        threads = [threading.Thread(target=claim, args=(agent,)) for agent in agents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        winners = [agent for agent, holder in results.items() if holder == agent]
        assert len(results) == len(agents)
        assert len(winners) == 1, results
        assert list(results.values()).count("conflict") == len(agents) - 1
        assert store.get(ticket.id).claimed_by == winners[0]
        assert [a.agent for a in store.audit_log(ticket.id) if a.action == "claim"] == winners


def test_unclaimed_tickets_time_out_once_and_stay_queued(store, clock):
    ticket, _ = store.create_ticket(_new())
    clock.advance(100)
    assert store.tickets_due_for_timeout(600) == []
    clock.advance(600)
    assert [t.id for t in store.tickets_due_for_timeout(600)] == [ticket.id]
    told = []
    assert store.mark_timed_out(ticket.id, side_effect=told.append)
    assert not store.mark_timed_out(ticket.id, side_effect=told.append)
    assert len(told) == 1 and store.tickets_due_for_timeout(600) == []
    assert store.get(ticket.id).status == QUEUED
    claimed_later, _ = store.create_ticket(_new("other"))
    store.claim(claimed_later.id, "王敏")
    clock.advance(10_000)
    assert store.tickets_due_for_timeout(600) == []


def test_webhook_outbox_retries_with_backoff_then_fails(store, clock):
    ticket, _ = store.create_ticket(_new())
    (delivery,) = store.due_deliveries()
    assert store.record_delivery(delivery.id, False, 500, "HTTP 500", max_attempts=3, retry_seconds=10) == "pending"
    assert store.due_deliveries() == []
    clock.advance(10)
    assert store.record_delivery(delivery.id, False, None, "refused", 3, 10) == "pending"
    clock.advance(19)
    assert store.due_deliveries() == []
    clock.advance(1)
    assert store.record_delivery(delivery.id, False, 502, "HTTP 502", 3, 10) == "failed"
    (row,) = store.deliveries(ticket.id)
    assert row.status == "failed" and row.attempts == 3 and row.last_status_code == 502
    assert row.last_error == "HTTP 502"
