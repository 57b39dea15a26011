"""Tracker-store retention (bot.tracker_retention, part of ``python -m bot retention apply``): a conversation idle
past the period is deleted whole, one with any newer event is kept whole, on SQLite and on PostgreSQL."""
from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot import PROJECT_ROOT, tracker_retention
from bot.__main__ import main
from bot.tracker_store import BufferedSQLTrackerStore
from tests.support.services import postgres_reachable, throwaway_postgres

DAY = 86_400
NOW = time.time()


def _conversation(sender, *ages_in_days):
    tracker = DialogueStateTracker(sender, slots=[])
    tracker.update(SessionStarted(timestamp=NOW - ages_in_days[0] * DAY))
    for age in ages_in_days:
        tracker.update(UserUttered("你好", {"name": "greet"}, timestamp=NOW - age * DAY))
        tracker.update(ActionExecuted("action_listen", timestamp=NOW - age * DAY))
    return tracker


def _fill(store):
    async def go():
        await store.save(_conversation("old", 400, 300, 200))
        await store.save(_conversation("long", 400, 250, 10))  # began long ago, still going: kept whole
        await store.save(_conversation("new", 5, 1))
    asyncio.run(go())


def _counts(url):
    engine = sa.create_engine(url)
    with engine.connect() as db:
        rows = db.execute(sa.text("SELECT sender_id, COUNT(*) FROM events GROUP BY sender_id")).all()
    engine.dispose()
    return dict(rows)


def test_an_idle_conversation_is_deleted_whole_and_an_active_one_kept_whole(tmp_path):
    store = BufferedSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"))
    _fill(store)
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    before = _counts(url)
    assert tracker_retention.apply(url, 180, now=NOW) == (1, before["old"])
    assert _counts(url) == {"long": before["long"], "new": before["new"]}
    assert tracker_retention.apply(url, 180, now=NOW) == (0, 0), "a second run deletes nothing more"


def test_a_store_that_was_never_started_deletes_nothing(tmp_path):
    assert tracker_retention.apply(f"sqlite:///{tmp_path / 'empty.db'}", 180) == (0, 0)


def test_the_url_comes_from_the_endpoints_files(monkeypatch):
    assert tracker_retention.tracker_store_url(PROJECT_ROOT / "endpoints.yml") == "sqlite:///var/tracker.db"
    for name, value in {"DB_HOST": "db.internal", "DB_PORT": "5432", "DB_NAME": "rasa", "DB_USER": "rasa",
                        "DB_PASSWORD": "pw", "ACTION_SERVER_PORT": "5055", "REDIS_HOST": "r", "REDIS_PORT": "1",
                        "REDIS_DB": "0", "RABBITMQ_HOST": "q", "RABBITMQ_PORT": "5672", "RABBITMQ_USER": "u",
                        "RABBITMQ_PASSWORD": "p", "RABBITMQ_QUEUE": "events"}.items():
        monkeypatch.setenv(name, value)
    url = tracker_retention.tracker_store_url(PROJECT_ROOT / "endpoints.production.yml")
    assert url.startswith("postgresql://rasa:") and "@db.internal:5432/rasa" in url


@pytest.mark.parametrize("raw", ["0", "-3", "half a year"])
def test_a_bad_period_is_refused(monkeypatch, raw):
    monkeypatch.setenv("TRACKER_RETENTION_DAYS", raw)
    with pytest.raises(ValueError):
        tracker_retention.tracker_days_from_env()


def test_the_retention_command_cleans_the_tracker_store_and_says_what(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    store = BufferedSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "var" / "tracker.db"))
    _fill(store)
    (tmp_path / "endpoints.yml").write_text(
        'tracker_store:\n  type: bot.tracker_store.BufferedSQLTrackerStore\n  dialect: "sqlite"\n'
        '  db: "var/tracker.db"\n', encoding="utf-8")
    assert main(["retention", "apply", "--db", f"sqlite:///{tmp_path / 'compliance.db'}",
                 "--leads-db", f"sqlite:///{tmp_path / 'leads.db'}", "--endpoints", "endpoints.yml"]) == 0
    out = capsys.readouterr().out
    assert "tracker conversations idle for more than 180 days deleted: 1" in out
    assert set(_counts(f"sqlite:///{tmp_path / 'var' / 'tracker.db'}")) == {"long", "new"}


def test_on_postgresql():
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with throwaway_postgres("tracker_retention") as url:
        database = url.rsplit("/", 1)[1]
        store = BufferedSQLTrackerStore(Domain.empty(), dialect="postgresql", host="127.0.0.1", port=5432,
                                        db=database, username="postgres", password="")
        _fill(store)
        store.engine.dispose()
        before = _counts(url)
        assert tracker_retention.apply(url, 180, now=NOW) == (1, before["old"])
        assert set(_counts(url)) == {"long", "new"}
