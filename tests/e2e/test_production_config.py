"""The production configuration (endpoints.production.yml): PostgreSQL tracker store and Redis lock store.

Runs the real servers against this machine's PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379).
Skipped, with the reason, when either service is not reachable.
"""
from __future__ import annotations

import json
import uuid

import pytest

from bot import PROJECT_ROOT
from tests.support.servers import joined_text, rest_say, start_test_servers
from tests.support.services import (
    PG_HOST,
    PG_PORT,
    REDIS_HOST,
    REDIS_PORT,
    delete_rabbitmq_queue,
    postgres_reachable,
    rabbitmq_env,
    redis_reachable,
    throwaway_postgres,
)

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def postgres_database():
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    if not redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}")
    with throwaway_postgres("rasa_test") as url:
        yield url.rsplit("/", 1)[1]


@pytest.fixture()
def queue():
    name = f"rasa_events_production_config_{uuid.uuid4().hex[:8]}"
    yield name
    delete_rabbitmq_queue(name)


def test_conversation_is_stored_in_postgres_and_survives_a_restart(trained_model, postgres_database, queue,
                                                                   tmp_path):
    import psycopg2

    env = {"DB_HOST": PG_HOST, "DB_PORT": str(PG_PORT), "DB_NAME": postgres_database, "DB_USER": "postgres",
           "DB_PASSWORD": "", "REDIS_HOST": REDIS_HOST, "REDIS_PORT": str(REDIS_PORT), "REDIS_DB": "1",
           **rabbitmq_env(queue)}
    endpoints = PROJECT_ROOT / "endpoints.production.yml"
    servers = start_test_servers(trained_model, tmp_path, endpoints, extra_env=env)
    try:
        assert "12378" in joined_text(rest_say(servers, "pg-user", "有人说交钱能帮我停息挂账，可信吗"))
    finally:
        servers.stop()

    with psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=postgres_database) as db:
        cursor = db.cursor()
        cursor.execute("SELECT data FROM events WHERE sender_id = %s", ("pg-user",))
        events = [json.loads(row[0]) for row in cursor.fetchall()]
    assert any(e.get("event") == "user" and "停息挂账" in e.get("text", "") for e in events)

    servers = start_test_servers(trained_model, tmp_path, endpoints, extra_env=env)
    try:
        import urllib.request

        url = f"{servers.rasa_url}/conversations/pg-user/tracker?token={servers.config.token}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            tracker = json.loads(answer.read())
        assert any(e.get("event") == "user" for e in tracker["events"]), "the restarted server read Postgres"
    finally:
        servers.stop()
