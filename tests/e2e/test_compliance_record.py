"""The compliance record over the real servers: scripted conversations on REST and socket.io reach the record
through Rasa's event broker, the consumer killed mid-stream loses and repeats nothing, and with RabbitMQ
unreachable (a TCP proxy cut, at start and mid-run) the bot keeps answering and the record catches up."""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from bot.compliance.chain import verify
from bot.compliance.report import build, group_index
from bot.compliance.schema import conversations, turns
from bot.db import make_engine
from bot.knowledge import CHINA_TIME
from tests.support.servers import (
    SOCKET_SESSIONS,
    rest_say,
    socketio_conversation,
    start_test_servers,
    write_sqlite_endpoints,
)
from tests.support.services import reachable
from tests.support.tcp_proxy import TcpProxy

MESSAGES = [
    "有个公司说交三千块服务费就能帮我停息挂账，靠谱吗",
    "征信上的逾期能花钱消掉吗",
    "催收天天打电话给我家人",
    "你好",
    "我已经给中介交了五千块钱了，现在联系不上他们",
    "听说找反催收公司可以不用还钱，是真的吗",
]
"""Openings of the scripted conversations (varied: agency, credit repair, collection, greeting, victim, misled)."""

FOLLOW_UPS = ["谢谢", "那我应该怎么办"]


def _script(count: int):
    """``count`` conversations: (sender, channel, messages), cycling openings, follow-ups and channels."""
    openings = itertools.cycle(MESSAGES)
    for n in range(count):
        channel = "socketio" if n % 5 == 4 else "rest"
        messages = [next(openings)] + FOLLOW_UPS[: n % 3]
        yield f"cr-{uuid.uuid4().hex[:8]}-{n}", channel, messages


def _expected_turns(script) -> dict:
    """Turns per sender id as the script sent them; a socket.io conversation is named by the server at
    ``session_confirm`` (SOCKET_SESSIONS maps the script's label to it)."""
    return {SOCKET_SESSIONS.get(sender, sender): len(messages) for sender, _, messages in script}


def _send(servers, sender, channel, messages):
    if channel == "rest":
        for text in messages:
            assert rest_say(servers, sender, text), text
    else:
        replies = asyncio.run(socketio_conversation(servers.rasa_url, sender, messages, quiet_seconds=1.5))
        assert all(replies), messages


def _wait_for_turns(engine, expected, timeout=120.0):
    """The record's count of the users' turns (the conversations' ``turns``, which leave out the server's own
    EXTERNAL_ triggers) once it reaches ``expected`` (or what it has after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as db:
            count = db.execute(sa.select(sa.func.coalesce(sa.func.sum(conversations.c.turns), 0))).scalar()
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.5)


def _today():
    return dt.datetime.now(CHINA_TIME).date()


@pytest.fixture(scope="module")
def sql_servers(trained_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("compliance_sql")
    running = start_test_servers(trained_model, directory, write_sqlite_endpoints(directory))
    yield running, make_engine(f"sqlite:///{directory / 'compliance.db'}")
    running.stop()


DAY_CONVERSATIONS = int(os.environ.get("COMPLIANCE_DAY_CONVERSATIONS", "200"))
"""Conversations in the scripted day (the issue's 200 by default)."""


def _send_all(servers, script, clients: int = 4) -> None:
    """Send the script's conversations, ``clients`` at a time (each conversation's messages in order)."""
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for done in [pool.submit(_send, servers, *conversation) for conversation in script]:
            done.result()


def test_scripted_conversations_counted_once_across_a_consumer_kill(sql_servers):
    servers, engine = sql_servers
    assert servers.consumer is not None and servers.consumer.poll() is None
    script = list(_script(DAY_CONVERSATIONS))
    sent_turns = sum(len(messages) for _, _, messages in script)
    _send_all(servers, script[: len(script) // 2])
    servers.consumer.kill()  # SIGKILL mid-stream: no clean shutdown
    servers.consumer.wait()
    _send_all(servers, script[len(script) // 2:])
    servers.restart("consumer")
    assert _wait_for_turns(engine, sent_turns) == sent_turns
    time.sleep(2)  # anything counted twice would show up now
    report = build(engine, _today() - dt.timedelta(days=1), _today(), "channel")
    groups = group_index(report)
    sent_by_channel = {}
    for _, channel, _ in script:
        sent_by_channel[channel] = sent_by_channel.get(channel, 0) + 1
    assert {k: g.conversations for k, g in groups.items()} == sent_by_channel
    assert sum(g.turns for g in report.groups) == sent_turns
    by_segment = build(engine, _today() - dt.timedelta(days=1), _today(), "segment")
    assert sum(g.conversations for g in by_segment.groups) == len(script)
    assert len(by_segment.groups) >= 2, "the openings reach more than one segment"
    with engine.connect() as db:
        rows = db.execute(sa.select(conversations.c.sender_id, conversations.c.turns)).all()
        assert {s: t for s, t in rows} == _expected_turns(script)
        flagged = db.execute(sa.select(turns.c.red_flags).where(turns.c.red_flags != "[]")).scalars().all()
        versions = set(db.execute(sa.select(turns.c.knowledge_version)).scalars())
        assert verify(db).ok
    assert flagged, "the agency and credit-repair openings carry red flags"
    assert any(v for v in versions), "action replies carry the knowledge version"


RABBITMQ = ("127.0.0.1", 5672)


@pytest.fixture(scope="module")
def rabbit_servers(trained_model, tmp_path_factory):
    if not reachable(*RABBITMQ):
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    directory = tmp_path_factory.mktemp("compliance_rabbit")
    endpoints = write_sqlite_endpoints(directory)
    proxy = TcpProxy(RABBITMQ).start()
    queue = f"compliance_test_{uuid.uuid4().hex[:8]}"
    exchange = f"compliance_test_{uuid.uuid4().hex[:8]}"
    text = endpoints.read_text(encoding="utf-8")
    start = text.index("event_broker:")
    end = text.index("\n\n", start)
    text = text[:start] + (
        "event_broker:\n  type: bot.event_broker.BufferedPikaEventBroker\n  url: 127.0.0.1\n"
        f"  port: {proxy.port}\n  username: guest\n  password: guest\n  queues:\n    - {queue}\n"
        f"  exchange_name: {exchange}\n  retry_delay_in_seconds: 1\n") + text[end:]
    endpoints.write_text(text, encoding="utf-8")
    proxy.cut()  # RabbitMQ is unreachable when the servers start
    running = start_test_servers(trained_model, directory, endpoints)
    yield running, make_engine(f"sqlite:///{directory / 'compliance.db'}"), proxy
    running.stop()
    proxy.stop()
    asyncio.run(_delete_queue(queue, exchange))


async def _delete_queue(queue: str, exchange: str) -> None:
    """Remove the test's queue and exchange from the shared RabbitMQ."""
    import aio_pika

    connection = await aio_pika.connect(host=RABBITMQ[0], port=RABBITMQ[1], login="guest", password="guest")
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)


def test_rabbitmq_unreachable_the_bot_answers_and_the_record_catches_up(rabbit_servers):
    servers, engine, proxy = rabbit_servers
    script = list(_script(4))
    for sender, channel, messages in script[:2]:  # RabbitMQ unreachable since the start
        _send(servers, sender, channel, messages)
    proxy.restore()
    first = sum(len(m) for _, _, m in script[:2])
    assert _wait_for_turns(engine, first) == first
    proxy.cut()  # mid-run
    for sender, channel, messages in script[2:]:
        _send(servers, sender, channel, messages)
    time.sleep(3)
    proxy.restore()
    total = sum(len(m) for _, _, m in script)
    assert _wait_for_turns(engine, total) == total
    time.sleep(2)
    with engine.connect() as db:
        rows = db.execute(sa.select(conversations.c.sender_id, conversations.c.turns)).all()
        assert verify(db).ok
    assert {s: t for s, t in rows} == _expected_turns(script)
