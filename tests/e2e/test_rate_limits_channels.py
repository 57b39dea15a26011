"""The per-client rate limit over the real channels: a client's REST requests and socket.io sockets share one
limit keyed on its address, so opening more sockets or sessions buys no more messages; behind a balancer
(``SANIC_PROXIES_COUNT=1``, as behind deploy/haproxy) the address is the forwarded one, so two customers behind the
same balancer do not share a limit.

Servers of their own on loopback, with ``RATE_LIMITS=client=4/<WINDOW>``.
"""
from __future__ import annotations

import asyncio
from typing import List, Tuple

import pytest

from bot.texts import response_text
from tests.support.servers import TEST_TOKEN, joined_text, request_json, start_test_servers, write_sqlite_endpoints
from tests.support.widget import Widget

pytestmark = pytest.mark.e2e

CLIENT_LIMIT = 4
WINDOW = 1_000_000_000
"""Seconds of the test's rate-limit window. The counters' windows are fixed and epoch-aligned
(bot.channels.limits), so a short one can end mid-test and let more through; the next boundary of this one is in
2033."""


@pytest.fixture(scope="module")
def limited_servers(trained_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("rate-limits")
    running = start_test_servers(trained_model, directory, write_sqlite_endpoints(directory), extra_env={
        "RATE_LIMITS": f"client={CLIENT_LIMIT}/{WINDOW},conversation=100/{WINDOW}", "SANIC_PROXIES_COUNT": "1"})
    yield running
    running.stop()


def _rest(servers, sender: str, text: str, forwarded_for: str) -> str:
    status, body = request_json("POST", f"{servers.rasa_url}/webhooks/rest/webhook",
                                {"sender": sender, "message": text}, headers={"X-Forwarded-For": forwarded_for})
    assert status == 200, (status, body)
    return joined_text(body)


async def _socket_flood(url: str, forwarded_for: str, sockets: int, messages: int) -> Tuple[List[str], List[str]]:
    """Open ``sockets`` widgets from one (forwarded) address, each with a session of its own, and send
    ``messages`` from each in turn. Returns the sessions' sender ids and the texts of every bot message they got
    (waiting until each message has had an answer: replies are counted, not matched to messages, so a slow reply
    cannot be taken for the next message's)."""
    widgets = [Widget(url) for _ in range(sockets)]
    try:
        senders = []
        for widget in widgets:
            await widget.connect(headers={"X-Forwarded-For": forwarded_for})
            confirm = await widget.request_session({})
            assert confirm
            senders.append(confirm["session_id"])
        for _ in range(messages):
            for widget in widgets:
                await widget.say({"message": "信用卡逾期了怎么办"}, wait=30)
        throttled = response_text("utter_rate_limited")
        for _ in range(300):  # every throttled message's notice has arrived
            texts = [m.get("text", "") for w in widgets for m in w.bot if isinstance(m, dict)]
            if sum(throttled in t for t in texts) >= sockets * messages - CLIENT_LIMIT:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        return senders, [m.get("text", "") for w in widgets for m in w.bot if isinstance(m, dict)]
    finally:
        for widget in widgets:
            await widget.client.disconnect()


def _user_turns(servers, sender: str) -> int:
    status, tracker = request_json("GET", f"{servers.rasa_url}/conversations/{sender}/tracker?token={TEST_TOKEN}")
    assert status == 200, (status, tracker)
    return sum(1 for event in tracker["events"] if event["event"] == "user")


def test_new_sockets_and_sessions_from_one_address_share_its_limit(limited_servers):
    throttled = response_text("utter_rate_limited")
    senders, texts = asyncio.run(_socket_flood(limited_servers.rasa_url, "198.51.100.7", sockets=3, messages=2))
    assert sum(throttled in t for t in texts) == 6 - CLIENT_LIMIT, texts
    assert sum(_user_turns(limited_servers, sender) for sender in senders) == CLIENT_LIMIT, \
        "only the messages within the client's limit reached the dialogue, whichever socket sent them"
    # The same address over REST is already over its limit: the two channels count together.
    assert throttled in _rest(limited_servers, "rest-same-address", "信用卡逾期了怎么办", "198.51.100.7")


def test_another_address_behind_the_same_balancer_has_its_own_limit(limited_servers):
    throttled = response_text("utter_rate_limited")
    for number in range(CLIENT_LIMIT):
        assert throttled not in _rest(limited_servers, f"rest-other-{number}", "信用卡逾期了怎么办", "203.0.113.20")
    assert throttled in _rest(limited_servers, "rest-other-last", "信用卡逾期了怎么办", "203.0.113.20")
