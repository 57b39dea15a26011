"""The compliance record from Rasa events: rows, idempotency, the hash chain, retention and the report's counts,
on a SQLite store (bot.compliance); the SQL-broker consumer over Rasa's own SQLEventBroker."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from bot.compliance import chain, retention
from bot.compliance.consumer import Consumer, sql_broker_url
from bot.compliance.record import Recorder
from bot.compliance.report import build, group_index, to_csv
from bot.compliance.sample import conversation_events, generate
from bot.compliance.schema import conversations, turns
from bot.compliance.store import open_store
from bot.risk import default_risk_engine


@pytest.fixture()
def store(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'compliance.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def recorder():
    return Recorder(default_risk_engine())


def _apply(store, recorder, events):
    with store.begin() as connection:
        return [recorder.apply_event(connection, e) for e in events]


def test_a_turn_records_channel_intent_risk_flags_with_masked_span_responses_and_referrals(store, recorder):
    text = "中介说交三千块服务费就能帮我停息挂账，他电话13812345678"
    events = [
        {"event": "user", "sender_id": "s1", "timestamp": 100.0, "text": text, "input_channel": "rest",
         "parse_data": {"intent": {"name": "seek_debt_agency", "confidence": 0.93}}},
        {"event": "slot", "sender_id": "s1", "timestamp": 100.1, "name": "risk_level", "value": "high"},
        {"event": "slot", "sender_id": "s1", "timestamp": 100.1, "name": "red_flags", "value": ["upfront_fee"]},
        {"event": "slot", "sender_id": "s1", "timestamp": 100.1, "name": "referrals",
         "value": ["nfra_hotline:seek_debt_agency"]},
        {"event": "bot", "sender_id": "s1", "timestamp": 100.2, "text": "…",
         "metadata": {"utter_action": "utter_agency_warning", "knowledge_version": "abc123"}},
        {"event": "action", "sender_id": "s1", "timestamp": 100.3, "name": "action_listen"},
    ]
    _apply(store, recorder, events)
    with store.connect() as db:
        turn = db.execute(sa.select(turns)).mappings().one()
        conversation = db.execute(sa.select(conversations)).mappings().one()
    assert (turn["channel"], turn["intent"], turn["confidence"], turn["risk_level"]) == \
        ("rest", "seek_debt_agency", 0.93, "high")
    flags = json.loads(turn["red_flags"])
    assert [f["id"] for f in flags] == ["upfront_fee"] and flags[0]["span"]
    assert "13812345678" not in json.dumps(dict(turn), ensure_ascii=False)
    assert json.loads(turn["responses"]) == ["utter_agency_warning"]
    assert json.loads(turn["referrals"]) == ["nfra_hotline:seek_debt_agency"]
    assert turn["knowledge_version"] == "abc123" and turn["sealed"] and turn["chain_seq"] == 1
    assert turn["flag_candidates"] is None
    assert conversation["risk_level"] == "high" and conversation["turns"] == 1


def test_a_redelivered_event_is_not_counted_twice(store, recorder):
    events = conversation_events("s2", 1000.0, "socketio", 1, "招商银行", "信用卡", handover_claim_seconds=42.0)
    assert all(_apply(store, recorder, events))
    assert not any(_apply(store, recorder, events))
    with store.connect() as db:
        row = db.execute(sa.select(conversations)).mappings().one()
        assert db.execute(sa.select(sa.func.count()).select_from(turns)).scalar() == 2
    assert row["turns"] == 2 and json.loads(row["referrals"]) == ["card_issuer:seek_debt_agency",
                                                                  "nfra_hotline:seek_debt_agency"]
    assert row["handoff_claimed_at"] - row["handoff_opened_at"] == pytest.approx(42.0)
    assert row["handoff_outcome"] == "claimed"


def _sealed_store(store, recorder):
    for n in range(4):
        _apply(store, recorder, conversation_events(f"c{n}", 1000.0 + n * 100, "rest", n % 6, None, None,
                                                    fallback=True))
    with store.begin() as db:
        from bot.compliance.record import seal_idle

        seal_idle(db, now=10_000.0)


def test_audit_verify_passes_then_detects_an_edited_and_a_deleted_row(store, recorder):
    _sealed_store(store, recorder)
    with store.connect() as db:
        result = chain.verify(db)
    assert result.ok and result.checked == 8
    with store.begin() as db:
        db.execute(sa.update(turns).where(turns.c.chain_seq == 3).values(intent="greet"))
    with store.connect() as db:
        assert any("edited" in p for p in chain.verify(db).problems)
    with store.begin() as db:
        db.execute(sa.update(turns).where(turns.c.chain_seq == 3).values(intent=None))  # not what it was either
        db.execute(sa.delete(turns).where(turns.c.chain_seq == 5))
    with store.connect() as db:
        problems = chain.verify(db).problems
    assert any("missing" in p for p in problems)


def test_audit_verify_detects_the_newest_row_deleted(store, recorder):
    _sealed_store(store, recorder)
    with store.begin() as db:
        db.execute(sa.delete(turns).where(turns.c.chain_seq == 8))
    with store.connect() as db:
        assert not chain.verify(db).ok


def test_the_audit_command_exits_1_on_an_edited_row(store, recorder, tmp_path, capsys):
    from bot.__main__ import main

    _sealed_store(store, recorder)
    url = str(store.url)
    assert main(["audit", "verify", "--db", url]) == 0
    with store.begin() as db:
        db.execute(sa.update(turns).where(turns.c.chain_seq == 2).values(confidence=0.99))
    assert main(["audit", "verify", "--db", url]) == 1
    assert "edited" in capsys.readouterr().out


def test_retention_deletes_exactly_what_is_past_its_date_and_keeps_the_chain_verifiable(store, recorder):
    day = retention.DAY_SECONDS
    now = 1_000 * day
    for age in (200, 190, 181, 179, 10):  # days
        _apply(store, recorder, conversation_events(f"age{age}", now - age * day, "rest", 0, None, None))
    with store.begin() as db:
        db.execute(sa.insert(conversations).values(sender_id=None, started_at=now - 1200 * day,
                                                   last_at=now - 1200 * day, turns=1, fallback_turns=0,
                                                   red_flags="[]", referrals="[]"))
    deleted = retention.apply(store, retention.RetentionPolicy(180, 1095), now=now)
    assert (deleted.turns, deleted.conversations_unlinked, deleted.conversations) == (3, 3, 1)
    with store.connect() as db:
        kept = db.execute(sa.select(turns.c.at)).scalars().all()
        senders = set(db.execute(sa.select(conversations.c.sender_id)).scalars())
        assert chain.verify(db).ok
    assert sorted(round((now - at) / day) for at in kept) == [10, 179]
    assert senders == {None, "age179", "age10"}
    again = retention.apply(store, retention.RetentionPolicy(180, 1095), now=now)
    assert (again.turns, again.conversations, again.conversations_unlinked) == (0, 0, 0)


def test_retention_refuses_aggregates_kept_shorter_than_turns():
    with pytest.raises(ValueError):
        retention.RetentionPolicy(180, 30)


def test_the_report_counts_what_the_generated_sample_holds(store, recorder):
    events, expected = next(generate(days=14, per_day=12))
    _apply(store, recorder, events)
    start, end = dt.date(2026, 11, 17), dt.date(2026, 11, 30)
    by_channel = group_index(build(store, start, end, "channel"))
    assert {k: g.conversations for k, g in by_channel.items()} == dict(expected.by_channel)
    by_segment = group_index(build(store, start, end, "segment"))
    assert {k: g.conversations for k, g in by_segment.items()} == dict(expected.by_segment)
    by_tactic = group_index(build(store, start, end, "tactic"))
    assert {k: g.conversations for k, g in by_tactic.items()} == dict(expected.by_tactic)
    report = build(store, start, end, "week")
    assert sum(g.conversations for g in report.groups) == expected.conversations
    assert sum(g.risk_conversations for g in report.groups) == expected.risk
    assert sum(g.handovers for g in report.groups) == expected.handovers
    assert sum(g.turns for g in report.groups) == expected.turns
    assert sum(g.fallback_turns for g in report.groups) == expected.fallback_turns
    routes = {}
    for g in report.groups:
        for route, n in g.referrals.items():
            routes[route] = routes.get(route, 0) + n
    assert routes == dict(expected.referrals)
    assert "upfront_fee" in [r["tactic"] for r in report.rising]
    assert to_csv(report).splitlines()[0].startswith("group,conversations,risk_conversations")


def test_the_report_rejects_a_bad_range(store):
    from bot.compliance.report import ReportError

    with pytest.raises(ReportError):
        build(store, dt.date(2026, 12, 2), dt.date(2026, 12, 1), "day")


def test_the_sql_broker_consumer_resumes_after_its_cursor_and_counts_each_event_once(tmp_path, store, recorder):
    from rasa.core.brokers.sql import SQLEventBroker

    broker = SQLEventBroker(db=str(tmp_path / "events.db"))
    events, expected = next(generate(days=2, per_day=10))
    half = len(events) // 2
    for event in events[:half]:
        broker.publish(event)
    url = sql_broker_url({"dialect": "sqlite", "db": str(tmp_path / "events.db")})
    from bot.db import make_engine

    source = make_engine(url)
    first = Consumer(store, recorder)
    while first.consume_sql_batch(source, "cursor:test"):
        pass
    for event in events[half:]:
        broker.publish(event)
    second = Consumer(store, recorder)  # a restarted consumer: only the store's cursor carries over
    while second.consume_sql_batch(source, "cursor:test"):
        pass
    assert first.applied + second.applied == expected.events
    with source.connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM events")).scalar() == 1  # consumed rows but the last
    source.dispose()
    with store.connect() as db:
        assert db.execute(sa.select(sa.func.sum(conversations.c.turns))).scalar() == expected.turns


def test_the_report_and_retention_commands_print_csv_json_and_charts(store, recorder, tmp_path, capsys):
    from bot.__main__ import main

    events, expected = next(generate(days=7, per_day=5))
    _apply(store, recorder, events)
    url = str(store.url)
    assert main(["report", "--db", url, "--from", "2026-11-24", "--to", "2026-11-30", "--by", "channel",
                 "--format", "json", "--charts", str(tmp_path / "charts")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sum(g["conversations"] for g in report["groups"]) == expected.conversations
    assert (tmp_path / "charts" / "conversations.png").stat().st_size > 0
    assert main(["report", "--db", url, "--from", "2026-11-30", "--to", "2026-11-24"]) == 2
    assert "before" in capsys.readouterr().err
    assert main(["retention", "apply", "--db", url, "--turn-days", "180"]) == 0
    assert "turns older than 180 days deleted:" in capsys.readouterr().out


def test_a_server_triggered_external_intent_is_recorded_but_not_counted_as_a_turn(store, recorder):
    """The consent question (bot.leads) comes from an EXTERNAL_ intent: what the bot said is kept, but the user
    did not take a turn."""
    events = [
        {"event": "user", "sender_id": "x1", "timestamp": 10.0, "text": "中介让我加他微信", "input_channel": "rest",
         "parse_data": {"intent": {"name": "seek_debt_agency", "confidence": 0.9}}},
        {"event": "action", "sender_id": "x1", "timestamp": 10.2, "name": "action_listen"},
        {"event": "user", "sender_id": "x1", "timestamp": 10.3, "text": "/EXTERNAL_lead_candidate",
         "parse_data": {"intent": {"name": "EXTERNAL_lead_candidate", "confidence": 1.0}}},
        {"event": "bot", "sender_id": "x1", "timestamp": 10.4, "text": "…",
         "metadata": {"utter_action": "utter_ask_lead_consent"}},
        {"event": "action", "sender_id": "x1", "timestamp": 10.5, "name": "action_listen"},
    ]
    _apply(store, recorder, events)
    with store.connect() as db:
        conversation = db.execute(sa.select(conversations)).mappings().one()
        rows = db.execute(sa.select(turns.c.intent, turns.c.responses).order_by(turns.c.id)).all()
    assert conversation["turns"] == 1
    assert [(intent, json.loads(responses)) for intent, responses in rows] == [
        ("seek_debt_agency", []), ("EXTERNAL_lead_candidate", ["utter_ask_lead_consent"])]
