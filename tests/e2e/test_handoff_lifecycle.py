"""The hand-over's lifecycle end to end ("Never silent when it matters"): the real desk, action server and Rasa
server on loopback, with short timers. The tests run in file order and share one set of servers; the last two
kill the desk, then restart it with closed opening hours.

Every user message must get a useful reply within seconds whatever is down, a person in crisis is never left
with silence, and nothing promises a transfer that has not happened.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import time
import urllib.request
from typing import Any, Dict, List

import pytest
import yaml

from bot.ops.servers import LOOPBACK, ServerConfig, free_port, server_environment, start_servers
from tests.e2e.test_handoff import SocketUser, _payloads, _texts, sender_of
from tests.support.handoff import AGENT_TOKENS, REFERENCE_KEY, always_open_config, call, issue_agents, reference_of
from tests.support.servers import TEST_TOKEN, joined_text, rest_say, write_sqlite_endpoints

pytestmark = pytest.mark.e2e

WANG = "王敏"
WANG_TOKEN = AGENT_TOKENS[WANG]
SILENCE_SECONDS = 15
"""The claimed-ticket silence timer of these servers."""
PROMPT_SECONDS = 8
"""How soon a reply must come when the desk is gone (the gate waits 1.5 s at most, the bot a few seconds)."""
QUESTION = "征信上的逾期记录要保存多久"


@pytest.fixture(scope="module")
def lifecycle_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("handoff-lifecycle")


@pytest.fixture(scope="module")
def servers(trained_model, lifecycle_dir):
    issue_agents(f"sqlite:///{lifecycle_dir / 'handoff.db'}")
    config = ServerConfig(
        model=trained_model, rasa_port=free_port(), action_port=free_port(), desk_port=free_port(),
        token=TEST_TOKEN, endpoints=str(write_sqlite_endpoints(lifecycle_dir)), log_dir=lifecycle_dir / "logs",
        handoff_database_url=f"sqlite:///{lifecycle_dir / 'handoff.db'}",
        intake_token="lifecycle-intake-token-0123456789",
        extra_env={"HANDOFF_CONFIG": str(always_open_config(lifecycle_dir, claim_timeout_seconds=3600,
                                                            agent_silence_seconds=SILENCE_SECONDS)),
                   "HANDOFF_REFERENCE_KEY": REFERENCE_KEY},
    )
    running = start_servers(config)
    yield running
    running.stop()


def desk(servers, method: str, path: str, body: Any = None) -> Dict[str, Any]:
    """Call the desk API as agent 王敏 (which also keeps 王敏 present); fails unless 2xx."""
    status, answer = call(method, servers.desk_url + path, body, token=WANG_TOKEN)
    assert 200 <= status < 300, (status, answer)
    return answer


def ticket_of(servers, sender: str, include_closed: bool = False) -> Dict[str, Any]:
    """``sender``'s (a sender or a SocketUser label) ticket from the desk's queue, by its opaque reference."""
    query = "?include_closed=1" if include_closed else ""
    reference = reference_of(sender_of(sender))
    (ticket,) = [t for t in desk(servers, "GET", "/api/tickets" + query)["tickets"] if t["reference"] == reference]
    return ticket


def paused(servers, sender: str) -> bool:
    """Whether Rasa holds ``sender``'s conversation paused (HTTP API)."""
    url = f"{servers.rasa_url}/conversations/{sender_of(sender)}/tracker?token={TEST_TOKEN}"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return bool(json.loads(answer.read())["paused"])


async def queued_user(servers, user: SocketUser, first: str = "转人工") -> Dict[str, Any]:
    """Hand ``user`` over with an agent on duty; returns the queued payload."""
    await asyncio.to_thread(desk, servers, "GET", "/api/me")
    reply = await user.say(first, lambda m: bool(_payloads(m, "queued")))
    assert "我已经为您转接人工客服" in _texts(reply)
    (payload,) = _payloads(reply, "queued")
    assert await asyncio.to_thread(paused, servers, user.session_id)
    return payload


def test_distress_with_an_agent_on_duty_is_paused_answered_by_the_agent_and_back_to_the_bot(servers):
    session = "life-distress-1"

    async def scenario() -> None:
        async with SocketUser(servers.rasa_url, session) as user:
            await asyncio.to_thread(desk, servers, "GET", "/api/me")
            first = await user.say("我真的不想活了", lambda m: bool(_payloads(m, "queued")))
            assert "12356" in _texts(first) and "我已经为您转接人工客服" in _texts(first)
            ticket = await asyncio.to_thread(ticket_of, servers, session)
            assert ticket["priority"] == 1 and ticket["status"] == "queued"

            start = len(user.received)
            await asyncio.to_thread(desk, servers, "POST", f"/api/tickets/{ticket['id']}/claim")
            await user.wait_for(lambda m: bool(_payloads(m, "agent_joined")), start)
            start = len(user.received)
            sent = await asyncio.to_thread(desk, servers, "POST", f"/api/tickets/{ticket['id']}/reply",
                                           {"text": "我是客服王敏，我在，您愿意和我说说发生了什么吗？"})
            assert sent["delivered"] is True
            await user.wait_for(lambda m: bool(_payloads(m, "agent_message")), start)

            start = len(user.received)
            await user.client.emit("user_uttered", {"message": "欠了很多钱，催收天天打电话"})
            await asyncio.sleep(4)
            assert user.received[start:] == [], "the bot talked over the agent"
            live = await asyncio.to_thread(desk, servers, "GET", f"/api/tickets/{ticket['id']}/transcript")
            assert live["messages"][-1]["text"] == "欠了很多钱，催收天天打电话"

            start = len(user.received)
            await asyncio.to_thread(desk, servers, "POST", f"/api/tickets/{ticket['id']}/close",
                                    {"outcome": "resolved"})
            await user.wait_for(lambda m: bool(_payloads(m, "closed")), start)
            answer = await user.say(QUESTION, lambda m: "保存" in _texts(m))
            assert "征信" in _texts(answer)

    asyncio.run(scenario())
    assert not paused(servers, session)


def test_a_claimed_ticket_with_a_silent_agent_is_released_and_the_user_told(servers):
    session = "life-silence-1"

    async def scenario() -> None:
        async with SocketUser(servers.rasa_url, session) as user:
            payload = await queued_user(servers, user)
            start = len(user.received)
            await asyncio.to_thread(desk, servers, "POST", f"/api/tickets/{payload['ticket_id']}/claim")
            await user.wait_for(lambda m: bool(_payloads(m, "agent_joined")), start)
            start = len(user.received)
            released = await user.wait_for(lambda m: bool(_payloads(m, "released")), start,
                                           timeout=SILENCE_SECONDS + 20)
            assert "重新排队" in _texts(released) and WANG in _texts(released)
            ticket = await asyncio.to_thread(ticket_of, servers, session)
            assert ticket["status"] == "queued" and ticket["claimed_by"] is None

    asyncio.run(scenario())


def test_an_agent_releases_a_ticket_then_the_user_leaves_with_bu_deng_le_and_the_bot_answers(servers):
    session = "life-leave-1"

    async def scenario() -> None:
        async with SocketUser(servers.rasa_url, session) as user:
            payload = await queued_user(servers, user)
            ticket_id = payload["ticket_id"]
            start = len(user.received)
            await asyncio.to_thread(desk, servers, "POST", f"/api/tickets/{ticket_id}/claim")
            await user.wait_for(lambda m: bool(_payloads(m, "agent_joined")), start)
            start = len(user.received)
            await asyncio.to_thread(desk, servers, "POST", f"/api/tickets/{ticket_id}/release")
            await user.wait_for(lambda m: bool(_payloads(m, "released")), start)

            left = await user.say("不等了", lambda m: bool(_payloads(m, "closed")))
            assert "已为您取消人工客服" in _texts(left)
            ticket = await asyncio.to_thread(ticket_of, servers, session, True)
            assert ticket["status"] == "closed" and ticket["outcome"] == "user_left"
            answer = await user.say(QUESTION, lambda m: "保存" in _texts(m))
            assert "征信" in _texts(answer)

    asyncio.run(scenario())
    assert not paused(servers, session)


def test_danger_while_queued_is_answered_at_once_and_put_first_for_the_agents(servers):
    session = "life-danger-1"
    sentence = "等了这么久，我真的不想活了"

    async def scenario() -> None:
        async with SocketUser(servers.rasa_url, session) as user:
            await queued_user(servers, user)
            sent_at = time.monotonic()
            care = await user.say(sentence, lambda m: "12356" in _texts(m))
            assert time.monotonic() - sent_at < PROMPT_SECONDS
            assert "110" in _texts(care) and "120" in _texts(care) and "优先处理" in _texts(care)

    asyncio.run(scenario())
    first = desk(servers, "GET", "/api/tickets")["tickets"][0]
    assert first["reference"] == reference_of(sender_of(session)) and first["priority"] == 1
    assert first["alert_text"] == sentence and first["alert_at"]
    assert paused(servers, session)  # still waiting for the agent, who now sees it first


def test_an_agent_reply_to_a_widget_that_is_gone_is_reported_as_not_delivered(servers):
    session = "life-gone-1"

    async def scenario() -> str:
        async with SocketUser(servers.rasa_url, session) as user:
            payload = await queued_user(servers, user)
            return payload["ticket_id"]

    ticket_id = asyncio.run(scenario())  # the user closed the widget while waiting
    time.sleep(1)
    # The claim still goes through (its notice waits in the transcript); the agent's reply is not delivered.
    assert desk(servers, "POST", f"/api/tickets/{ticket_id}/claim")["ticket"]["status"] == "claimed"
    status, answer = call("POST", f"{servers.desk_url}/api/tickets/{ticket_id}/reply", {"text": "您好，还在吗？"},
                          token=WANG_TOKEN)
    assert status == 502 and answer["delivered"] is False and "not delivered" in answer["error"], (status, answer)
    audit = desk(servers, "GET", f"/api/audit?ticket_id={ticket_id}")["entries"]
    assert "reply_undelivered" in [e["action"] for e in audit] and "reply" not in [e["action"] for e in audit]
    url = f"{servers.rasa_url}/conversations/{sender_of(session)}/tracker?token={TEST_TOKEN}"
    with urllib.request.urlopen(url, timeout=30) as stored:
        texts = [e.get("text") or "" for e in json.loads(stored.read())["events"] if e["event"] == "bot"]
    assert any(f"人工客服{WANG}已接入" in t for t in texts) and "您好，还在吗？" not in texts


def test_rest_is_never_paused_and_never_promised_a_reply_here(servers):
    desk(servers, "GET", "/api/me")
    reply = rest_say(servers, "life-rest-1", "转人工")
    text = joined_text(reply)
    assert "在这里回复您" not in text and "我已经为您转接人工客服" not in text
    assert [m["custom"]["status"] for m in reply if m.get("custom", {}).get("type") == "handoff"] == ["follow_up"]
    assert not paused(servers, "life-rest-1")
    assert "保存" in joined_text(rest_say(servers, "life-rest-1", QUESTION))


def test_the_desk_killed_while_paused_the_next_message_gets_the_bot_within_seconds(servers):
    session = "life-killed-1"

    async def scenario() -> None:
        async with SocketUser(servers.rasa_url, session) as user:
            await queued_user(servers, user)
            servers.desk_server.terminate()
            servers.desk_server.wait(timeout=30)
            sent_at = time.monotonic()
            reply = await user.say(QUESTION, lambda m: "保存" in _texts(m))
            assert time.monotonic() - sent_at < PROMPT_SECONDS + 4
            assert _payloads(reply, "returned_to_bot") and "暂时连接不上" in _texts(reply)

    asyncio.run(scenario())
    assert not paused(servers, session)


@pytest.fixture
def closed_desk(servers, lifecycle_dir):
    """The desk restarted on its port and store with opening hours that are closed now (only a day two days
    ahead, in Shanghai)."""
    shanghai_day = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).weekday()
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(shanghai_day + 2) % 7]
    path = lifecycle_dir / "closed.yml"
    path.write_text(yaml.safe_dump({"timezone": "Asia/Shanghai", "opening_hours": {day: "09:00-10:00"},
                                    "check_interval_seconds": 1}), encoding="utf-8")
    env = {**server_environment(servers.config), "HANDOFF_CONFIG": str(path)}
    log = (lifecycle_dir / "logs" / "closed-desk.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "bot.handoff.desk", "--host", LOOPBACK, "--port",
                                str(servers.config.desk_port)], cwd=servers.config.root, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(servers.desk_url + "/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    yield process
    process.terminate()
    process.wait(timeout=30)
    log.close()


def test_after_hours_a_socketio_user_is_not_paused_and_the_bot_answers_the_next_five(servers, closed_desk):
    session = "life-night-1"
    questions = [QUESTION, "信用卡逾期了会怎么样", "可以协商分期还款吗", "催收打电话骚扰我怎么办", "你好"]

    async def scenario() -> List[List[Dict[str, Any]]]:
        async with SocketUser(servers.rasa_url, session) as user:
            await asyncio.to_thread(desk, servers, "GET", "/api/me")  # an agent there does not open the desk
            night = await user.say("转人工", lambda m: bool(_payloads(m, "follow_up")))
            assert not _payloads(night, "queued")
            text = _texts(night)
            assert "我没有为您转接" in text and "周" in text and "12378" in text
            assert "客服一接入就会在这里回复您" not in text and "我已经为您转接人工客服" not in text
            return [await user.say(q) for q in questions]

    answers = asyncio.run(scenario())
    assert all(_texts(a) for a in answers), answers
    assert "保存" in _texts(answers[0])
    assert not paused(servers, session)
    assert ticket_of(servers, session)["status"] == "follow_up"
