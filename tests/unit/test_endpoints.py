"""endpoints.yml and endpoints.production.yml resolve the way Rasa reads them."""
from __future__ import annotations

import pytest
from rasa.utils.endpoints import read_endpoint_config

from bot import PROJECT_ROOT


@pytest.fixture(autouse=True)
def _rabbitmq_settings(monkeypatch):
    for name, value in {"RABBITMQ_HOST": "mq.internal", "RABBITMQ_PORT": "5672", "RABBITMQ_USER": "u",
                        "RABBITMQ_PASSWORD": "p", "RABBITMQ_QUEUE": "rasa_events"}.items():
        monkeypatch.setenv(name, value)


def test_action_endpoint_port_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ACTION_SERVER_PORT", "5999")
    for file in ("endpoints.yml", "endpoints.production.yml"):
        for name in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "REDIS_HOST", "REDIS_PORT", "REDIS_DB"):
            monkeypatch.setenv(name, "x")
        endpoint = read_endpoint_config(str(PROJECT_ROOT / file), "action_endpoint")
        assert endpoint.url == "http://127.0.0.1:5999/webhook", file


def test_default_tracker_store_is_sqlite_and_production_is_postgres(monkeypatch):
    for name, value in {"ACTION_SERVER_PORT": "5055", "DB_HOST": "db.internal", "DB_PORT": "5432",
                        "DB_NAME": "rasa", "DB_USER": "rasa", "DB_PASSWORD": "secret", "REDIS_HOST": "r",
                        "REDIS_PORT": "6379", "REDIS_DB": "1"}.items():
        monkeypatch.setenv(name, value)
    default = read_endpoint_config(str(PROJECT_ROOT / "endpoints.yml"), "tracker_store")
    assert (default.type, default.kwargs["dialect"], default.kwargs["db"]) == (
        "bot.tracker_store.BufferedSQLTrackerStore", "sqlite", "var/tracker.db")
    production = read_endpoint_config(str(PROJECT_ROOT / "endpoints.production.yml"), "tracker_store")
    assert production.kwargs["dialect"] == "postgresql" and production.url == "db.internal"
    locks = read_endpoint_config(str(PROJECT_ROOT / "endpoints.production.yml"), "lock_store")
    assert locks.type == "bot.lock_store.AtomicRedisLockStore" and locks.url == "r"
    assert locks.kwargs["lock_lifetime"] == 20 and locks.kwargs["db"] == "1"


def test_the_action_endpoint_timeout_is_seconds_not_rasas_five_minutes(monkeypatch):
    for name in ("ACTION_SERVER_PORT", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "REDIS_HOST",
                 "REDIS_PORT", "REDIS_DB"):
        monkeypatch.setenv(name, "1")
    for file in ("endpoints.yml", "endpoints.production.yml"):
        endpoint = read_endpoint_config(str(PROJECT_ROOT / file), "action_endpoint")
        assert 0 < float(endpoint.kwargs["timeout"]) <= 5, file
    production = read_endpoint_config(str(PROJECT_ROOT / "endpoints.production.yml"), "tracker_store")
    assert 0 < int(production.kwargs["query"]["connect_timeout"]) <= 5


def test_production_buffers_the_turns_answered_while_postgres_is_down(monkeypatch):
    for name in ("ACTION_SERVER_PORT", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "REDIS_HOST",
                 "REDIS_PORT", "REDIS_DB"):
        monkeypatch.setenv(name, "1")
    production = read_endpoint_config(str(PROJECT_ROOT / "endpoints.production.yml"), "tracker_store")
    from rasa.shared.utils.common import class_from_module_path

    from bot.tracker_store import BufferedSQLTrackerStore

    assert class_from_module_path(production.type) is BufferedSQLTrackerStore


def test_events_go_to_the_sql_broker_by_default_and_to_rabbitmq_buffered_in_production(monkeypatch):
    for name in ("ACTION_SERVER_PORT", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "REDIS_HOST",
                 "REDIS_PORT", "REDIS_DB"):
        monkeypatch.setenv(name, "1")
    default = read_endpoint_config(str(PROJECT_ROOT / "endpoints.yml"), "event_broker")
    assert (default.type, default.kwargs["dialect"], default.kwargs["db"]) == ("sql", "sqlite", "var/events.db")
    production = read_endpoint_config(str(PROJECT_ROOT / "endpoints.production.yml"), "event_broker")
    from rasa.shared.utils.common import class_from_module_path

    from bot.event_broker import BufferedPikaEventBroker

    assert class_from_module_path(production.type) is BufferedPikaEventBroker
    assert production.url == "mq.internal" and production.kwargs["queues"] == ["rasa_events"]
