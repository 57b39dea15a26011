"""Rate limits: a flood from one client or one conversation is throttled with a Chinese reply, a person in
crisis still gets the hotlines, and the counters hold across replicas (Redis) or in memory."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from bot.channels import limits
from bot.channels.guard import guard_messages
from bot.channels.limits import (
    Limit,
    MemoryCounter,
    RateLimiter,
    RedisCounter,
    current_client,
    parse_limits,
)
from bot.knowledge import default_knowledge
from bot.texts import response_text
from tests.support.services import REDIS_HOST, REDIS_PORT, redis_reachable


def _flood(texts, sender="user-1", client="ip:203.0.113.9", senders=None):
    received = []

    async def dialogue(message: UserMessage) -> None:
        received.append(message.text)
        await message.output_channel.send_response(message.sender_id, {"text": "回答"})

    screened = guard_messages(dialogue)
    replies = []

    async def run() -> None:
        current_client.set(client)
        for number, text in enumerate(texts):
            output = CollectingOutputChannel()
            who = senders[number] if senders else sender
            await screened(UserMessage(text, output, who))
            replies.append([m["text"] for m in output.messages])

    asyncio.run(run())
    return received, replies


@pytest.fixture
def strict_limits(monkeypatch):
    monkeypatch.setenv("RATE_LIMITS", "conversation=5/60,client=10/60")
    monkeypatch.delenv("REDIS_HOST", raising=False)
    monkeypatch.delenv("RATE_LIMIT_REDIS_URL", raising=False)
    limits.reset_default_limiter()


def test_300_distress_messages_from_one_conversation_reach_the_dialogue_only_up_to_the_limit(strict_limits):
    received, replies = _flood(["/express_distress"] * 300)
    assert len(received) == 5
    hotline = default_knowledge().template_values()["psychological_hotline"]
    for throttled in replies[5:]:
        assert len(throttled) == 1 and hotline in throttled[0]  # never silence, even when throttled


def test_300_distress_messages_from_one_client_under_many_senders_are_capped_per_client(strict_limits):
    senders = [f"s{n}" for n in range(300)]
    received, replies = _flood(["/express_distress"] * 300, senders=senders)
    assert len(received) == 10  # so at most 10 tickets can be opened by this client per window
    assert all(replies[n] for n in range(300))


def test_an_ordinary_throttled_message_gets_the_clear_chinese_notice(strict_limits):
    received, replies = _flood(["信用卡逾期怎么办"] * 7)
    assert len(received) == 5
    assert replies[5] == [response_text("utter_rate_limited")] == replies[6]


def test_a_throttled_message_that_reads_as_danger_gets_the_hotlines(strict_limits):
    _, replies = _flood(["信用卡逾期怎么办"] * 5 + ["我不想活了"])
    hotline = default_knowledge().template_values()["psychological_hotline"]
    assert hotline in replies[5][0]


def test_another_conversation_from_another_client_is_not_throttled_by_a_flood(strict_limits):
    _flood(["你好"] * 50, sender="flooder", client="ip:203.0.113.9")
    received, _ = _flood(["你好"], sender="someone-else", client="ip:198.51.100.7")
    assert received == ["你好"]


def test_memory_counter_starts_over_in_the_next_window():
    now = [1000.0]
    limiter = RateLimiter(MemoryCounter(clock=lambda: now[0]), {"conversation": Limit(2, 60)})
    results = [asyncio.run(limiter.allow("conversation", "a")) for _ in range(3)]
    assert results == [True, True, False]
    now[0] += 60
    assert asyncio.run(limiter.allow("conversation", "a")) is True


def test_a_counter_store_that_fails_lets_messages_through():
    class Broken:
        async def hit(self, key, seconds):
            raise ConnectionError("down")

    assert asyncio.run(RateLimiter(Broken()).allow("conversation", "a")) is True


def test_malformed_limits_are_refused():
    assert parse_limits("conversation=3/10")["conversation"] == Limit(3, 10)
    for bad in ("conversation=3", "nonsense=1/1", "client=a/10", "client=1/0"):
        with pytest.raises(ValueError):
            parse_limits(bad)


@pytest.mark.skipif(not redis_reachable(), reason="Redis is not running on 127.0.0.1:6379")
def test_redis_counters_are_shared_by_two_replicas():
    prefix = f"test-ratelimit-{uuid.uuid4().hex}:"
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"

    async def run():
        first = RateLimiter(RedisCounter(url, prefix), {"conversation": Limit(3, 60)})
        second = RateLimiter(RedisCounter(url, prefix), {"conversation": Limit(3, 60)})
        return [await (first if n % 2 else second).allow("conversation", "c") for n in range(5)]

    assert asyncio.run(run()) == [True, True, True, False, False]
