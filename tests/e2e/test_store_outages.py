"""The production configuration (endpoints.production.yml) when PostgreSQL or Redis goes away for a moment.

The machine's services are never stopped: the Rasa server reaches each through a loopback TCP proxy
(tests/support/tcp_proxy.py) that the test cuts and restores. While a store is cut every message still gets a
reply within seconds; once it is back the service is normal; and no event of a turn answered during a
PostgreSQL outage is lost, from the tracker store or from what the RabbitMQ event broker publishes. Skipped,
with the reason, when PostgreSQL or Redis is not reachable.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest
import sqlalchemy as sa

from bot import PROJECT_ROOT
from bot.compliance.schema import conversations, turns
from bot.db import make_engine
from tests.support.servers import joined_text, post, start_test_servers
from tests.support.services import (
    PG_HOST,
    PG_PORT,
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    REDIS_HOST,
    REDIS_PORT,
    delete_rabbitmq_queue,
    postgres_reachable,
    rabbitmq_env,
    reachable,
    redis_reachable,
    throwaway_postgres,
)
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

REPLY_SECONDS = 10.0


@pytest.fixture(scope="module")
def proxied_servers(trained_model, tmp_path_factory):
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    if not redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}")
    directory = tmp_path_factory.mktemp("store-outages")
    queue = f"rasa_events_outage_{uuid.uuid4().hex[:8]}"
    with throwaway_postgres("rasa_outage") as url, TcpProxy((PG_HOST, PG_PORT)) as pg, \
            TcpProxy((REDIS_HOST, REDIS_PORT)) as redis:
        env = {"DB_HOST": "127.0.0.1", "DB_PORT": str(pg.port), "DB_NAME": url.rsplit("/", 1)[1],
               "DB_USER": "postgres", "DB_PASSWORD": "", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
               "REDIS_DB": "1"}
        env.update(rabbitmq_env(queue))
        endpoints = PROJECT_ROOT / "endpoints.production.yml"
        servers = start_test_servers(trained_model, directory, endpoints, extra_env=env)
        try:
            yield servers, pg, redis, env["DB_NAME"], directory
        finally:
            servers.stop()
            delete_rabbitmq_queue(queue)


def _say(servers, sender, text):
    started = time.monotonic()
    status, body = post(f"{servers.rasa_url}/webhooks/rest/webhook", {"sender": sender, "message": text}, timeout=60)
    elapsed = time.monotonic() - started
    assert status == 200, (status, body)
    reply = joined_text(body)
    assert reply.strip(), f"no reply to {text!r}"
    assert elapsed < REPLY_SECONDS, f"{text!r} answered after {elapsed:.1f} s"
    return reply


def _stored_user_texts(database, sender):
    import psycopg2

    with psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=database) as db:
        cursor = db.cursor()
        cursor.execute("SELECT data FROM events WHERE sender_id = %s ORDER BY id", (sender,))
        events = [json.loads(row[0]) for row in cursor.fetchall()]
    return [e["text"] for e in events if e.get("event") == "user"]


def _recorded_turns(directory, sender, expected, seconds=60.0):
    """The compliance record's turn count for ``sender`` (written by the consumer from what the RabbitMQ broker
    published), polled until it reaches ``expected`` or ``seconds`` pass."""
    engine = make_engine(f"sqlite:///{directory / 'compliance.db'}")
    query = (sa.select(sa.func.count()).select_from(turns.join(conversations, turns.c.conversation_id
                                                               == conversations.c.id))
             .where(conversations.c.sender_id == sender))
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                with engine.connect() as db:
                    count = db.execute(query).scalar()
            except sa.exc.OperationalError:  # the consumer has not created the record yet
                count = 0
            if count >= expected or time.monotonic() > deadline:
                return count
            time.sleep(1)
    finally:
        engine.dispose()


def test_postgres_cut_mid_conversation(proxied_servers, knowledge):
    servers, pg, _, database, directory = proxied_servers
    sender = f"pg-{uuid.uuid4().hex[:8]}"
    before = ["你好", "有人说交钱能帮我停息挂账，可信吗"]
    during = ["征信能花钱修复吗", "我真的不想活了", "催收天天打电话骚扰我家人怎么办"]
    after = ["信用卡还不上了想跟银行协商"]
    for text in before:
        _say(servers, sender, text)
    pg.cut()
    try:
        replies = [_say(servers, sender, text) for text in during]
    finally:
        pg.restore()
    assert knowledge.fact("psychological_hotline").value in replies[1], "distress is answered during the outage"
    reply = _say(servers, sender, after[0])
    assert "个性化分期还款" in reply, "normal service once PostgreSQL is back"
    assert _stored_user_texts(database, sender) == before + during + after, "no answered turn lost, none twice"
    if not reachable(RABBITMQ_HOST, RABBITMQ_PORT):
        pytest.skip(f"RabbitMQ is not reachable at {RABBITMQ_HOST}:{RABBITMQ_PORT}: the compliance record was not "
                    "checked (the tracker store was)")
    turns_recorded = _recorded_turns(directory, sender, len(before + during + after))
    assert turns_recorded == len(before + during + after), "every answered turn reaches the record once"


def test_redis_lock_store_cut(proxied_servers, knowledge):
    servers, _, redis, _, _ = proxied_servers
    sender = f"redis-{uuid.uuid4().hex[:8]}"
    _say(servers, sender, "你好")
    redis.cut()
    try:
        for text in ("信用卡还不上了想跟银行协商", "我真的不想活了"):
            reply = _say(servers, sender, text)
            assert knowledge.fact("nfra_hotline").value in reply or "个性化分期还款" in reply, reply
        assert knowledge.fact("psychological_hotline").value in reply
    finally:
        redis.restore()
    deadline = time.monotonic() + 30
    while True:
        reply = _say(servers, sender, "信用卡还不上了想跟银行协商")
        if "个性化分期还款" in reply and "系统暂时出了点问题" not in reply:
            break
        assert time.monotonic() < deadline, f"no normal service after Redis came back: {reply!r}"
        time.sleep(1)
