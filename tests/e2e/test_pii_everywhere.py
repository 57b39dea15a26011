"""Personal data sent over every channel reaches no store and no log: issue 14, "a test sends each kind over every
channel and reads every store and log file afterwards".

One set of real servers for the module, on loopback: the agent desk (with a webhook receiver), the action server,
the Rasa server with the REST, socket.io and WeChat (safe mode, the fake WeChat API) channels, and the compliance
consumer. Each kind of personal data (resident ID with a valid check character, mobile, Luhn-valid bank card,
verification code, e-mail, WeChat id, QQ number, landline, a mobile in Chinese numerals) is generated afresh for
every channel (``PII_SEED`` replays a run) and typed the odd ways people type it (separators, 4-3-4 grouping,
full-width digits, invisible characters), then sent:

* over REST (with ``metadata`` and a client-set ``input_channel``, and once as ``?stream=true``), socket.io (with
  ``customData``, and forged ``session_request`` fields) and WeChat pushes; as free-text answers of the hardship
  form, whose slots reach a ticket's summary;
* through a hand-over: the user's messages while paused (one reads as danger and alerts the desk), the agent's
  reply and note through the desk API, and an agent reply to a REST follow-up ticket that cannot be delivered;
* on failure paths: the action server killed, and the SQLite tracker store locked (with one client hanging up
  while it waits, so that Rasa logs the request's own text).

The servers are then stopped and every file they wrote is read: each SQLite database found by globbing the
servers' folder (raw bytes, WAL and journal included, and every row), every log file (Rasa logs at DEBUG),
anything new under the project's ``var/``, the webhook bodies and what the channel sent to WeChat. None may hold a
raw value, the value as typed, or its digits-only form, whether stored plainly, ``\\u``-escaped, percent-encoded,
full-width or in Chinese numerals.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import sqlite3
import threading
import time
import unicodedata
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
import socketio

from bot import PROJECT_ROOT
from bot.channels.wechat.security import user_id
from bot.channels.wechat.settings import WeChatSettings
from bot.ops.servers import ServerConfig, free_port, start_servers
from bot.privacy import CHINESE_DIGITS, passes_luhn
from tests.support.handoff import (
    AGENT_TOKENS,
    REFERENCE_KEY,
    WebhookReceiver,
    always_open_config,
    call,
    issue_agents,
    reference_of,
)
from tests.support.servers import TEST_TOKEN, request_json, write_sqlite_endpoints
from tests.support.wechat import APPID, APPSECRET, ID_HASH_KEY, environment
from tests.support.wechat_fake import FakeWeChatApi
from tests.support.wechat_pushes import signed_request, text_message

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("PII_SEED") or secrets.randbits(32))
"""The seed of this run's values; ``PII_SEED=<seed>`` replays it (printed in every failure)."""

WANG_TOKEN = AGENT_TOKENS["王敏"]
WEBHOOK = "/webhooks/wechat_miniprogram/webhook"
WEBHOOK_SECRET = "pii-webhook-secret-0123456789abcdef"

# ----------------------------------------------------------------------------------------- generated values

KINDS = ("resident_id", "mobile", "bank_card", "verification_code", "email", "wechat_id", "qq", "landline",
         "chinese_mobile")

TEMPLATES = {
    "resident_id": "我的身份证号是{}，能帮我查一下征信吗",
    "mobile": "催收天天打我手机{}，烦死了",
    "bank_card": "我的卡号是{}，这个月还款失败了",
    "verification_code": "中介让我把验证码是：{}发给他",
    "email": "我的邮箱是{}，有资料可以发我",
    "wechat_id": "加我微信号：{}，我们私聊",
    "qq": "我QQ号{}，中介让我加他",
    "landline": "单位座机{}，催收打到单位去了",
    "chinese_mobile": "我电话{}，有事打给我",
}
"""How each kind is written into a user message (the reply's topic does not matter here)."""

AREA_CODES = ("110105", "310104", "440305", "510107", "330106", "420102", "320102", "610103")
LANDLINE_AREAS = ("010", "021", "022", "0755", "0571", "028", "0731")
EMAIL_DOMAINS = ("example.com", "163.com", "qq.com", "example.com.cn", "126.com")
SEPARATORS = ("-", " ", "  ", ".", "·", "—", "/", "_", "\u3000", "－")
INVISIBLES = ("\u00ad", "\u2060", "\u200b", "\ufeff", "\u200e")
STYLES = ("grouped", "full_width", "invisible", "grouped_full_width")
_FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id(rng: random.Random) -> str:
    """An 18-character resident ID with a valid GB 11643-1999 check character (which may be X)."""
    birth = f"{rng.randint(1955, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = rng.choice(AREA_CODES) + birth + f"{rng.randrange(1000):03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


def mobile(rng: random.Random) -> str:
    """A mainland mobile number, 11 digits starting 13-19."""
    return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))


def bank_card(rng: random.Random) -> str:
    """A 16-19 digit UnionPay-like card number (starting 62) that passes the Luhn check."""
    prefix = "62" + "".join(rng.choice("0123456789") for _ in range(rng.randint(16, 19) - 3))
    return next(prefix + d for d in "0123456789" if passes_luhn(prefix + d))


def generate(kind: str, rng: random.Random) -> str:
    """A fresh value of ``kind`` (one of KINDS)."""
    digits = "0123456789"
    if kind == "resident_id":
        return resident_id(rng)
    if kind in ("mobile", "chinese_mobile"):
        return mobile(rng)
    if kind == "bank_card":
        return bank_card(rng)
    if kind == "verification_code":
        return rng.choice("123456789") + "".join(rng.choice(digits) for _ in range(5))
    if kind == "email":
        local = rng.choice("abcdefghkmnpqrstwxyz") + "".join(rng.choice("abcdefghkmnpqrstwxyz0123456789")
                                                             for _ in range(rng.randint(7, 10)))
        return f"{local}{rng.choice('._')}{rng.randint(10, 99)}@{rng.choice(EMAIL_DOMAINS)}"
    if kind == "wechat_id":
        tail = "".join(rng.choice("abcdefghkmnpqrstwxyz0123456789") for _ in range(rng.randint(6, 9)))
        return rng.choice("ABCDEFGHKLMNPQRSTWXYZ") + tail[:3] + "_" + tail[3:]
    if kind == "qq":
        return rng.choice("23456789") + "".join(rng.choice(digits) for _ in range(rng.randint(8, 9)))
    if kind == "landline":
        return rng.choice(LANDLINE_AREAS) + rng.choice("2345678") + "".join(rng.choice(digits) for _ in range(7))
    raise ValueError(kind)


def _grouped(value: str, rng: random.Random, separator: Optional[str] = None) -> str:
    """``value`` cut into groups of 2-5 characters joined by a separator (one per number)."""
    separator = separator or rng.choice(SEPARATORS)
    groups, rest = [], value
    while rest:
        size = rng.randint(2, 5) if len(rest) > 5 else len(rest)
        groups.append(rest[:size])
        rest = rest[size:]
    return separator.join(groups)


def _invisible(value: str, rng: random.Random) -> str:
    out = []
    for index, char in enumerate(value):
        out.append(char)
        if 0 < index < len(value) - 1 and rng.random() < 0.35:
            out.append(rng.choice(INVISIBLES))
    return "".join(out)


def typed(kind: str, value: str, style: str, rng: random.Random) -> str:
    """``value`` as a person might type it in ``style`` (one of STYLES)."""
    if kind == "chinese_mobile":
        numerals = "".join({"0": rng.choice("零〇"), "1": rng.choice("一幺")}.get(d) or "零一二三四五六七八九"[int(d)]
                           for d in value)
        return numerals if style in ("full_width", "invisible") else \
            f"{numerals[:3]} {numerals[3:7]} {numerals[7:]}"
    if kind in ("email", "wechat_id"):
        if style.endswith("full_width"):
            return "".join(_FULL_WIDTH.get(c, c) for c in value)
        if style == "invisible":
            return _invisible(value, rng)
        return value  # no separators inside an address
    if kind == "verification_code" and style.startswith("grouped"):
        text = " ".join(value)
    elif kind == "landline" and style.startswith("grouped"):
        area = 4 if value.startswith("0755") or value.startswith("0571") or value.startswith("0731") else 3
        text = f"({value[:area]}) {value[area:area + 4]}{rng.choice(SEPARATORS)}{value[area + 4:]}" \
            if rng.random() < 0.5 else f"{value[:area]}-{value[area:area + 4]} {value[area + 4:]}"
    elif kind == "mobile" and style.startswith("grouped"):
        text = f"{value[:3]}{rng.choice(SEPARATORS)}{value[3:7]}{rng.choice(SEPARATORS)}{value[7:]}" \
            if rng.random() < 0.5 else f"+86 {value[:4]} {value[4:7]} {value[7:]}"
    elif style.startswith("grouped"):
        text = _grouped(value, rng)
    elif style == "invisible":
        text = _invisible(value, rng)
    else:
        text = value
    if style.endswith("full_width"):
        text = "".join(_FULL_WIDTH.get(c, c) for c in text)
    return text


@dataclass(frozen=True)
class Secret:
    """One value sent once: where (``route``), what kind, the value itself and as it was typed."""

    route: str
    kind: str
    value: str
    typed: str

    def message(self) -> str:
        """The user message carrying the value."""
        return TEMPLATES[self.kind].format(self.typed)


SENT: List[Secret] = []
"""Every value this module sent (the final test looks for each of them everywhere)."""

_RNG = random.Random(SEED)
_USED: set = set()


def secret(route: str, kind: str, style_index: int = 0) -> Secret:
    """A fresh value of ``kind`` for ``route``, typed in a style that rotates with the kind and ``style_index``,
    recorded in SENT."""
    value = generate(kind, _RNG)
    while value in _USED:
        value = generate(kind, _RNG)
    _USED.add(value)
    style = STYLES[(KINDS.index(kind) + style_index) % len(STYLES)]
    made = Secret(route, kind, value, typed(kind, value, style, _RNG))
    SENT.append(made)
    return made


def secrets_for(route: str, style_index: int, kinds: Tuple[str, ...] = KINDS) -> List[Secret]:
    """One fresh value of every kind in ``kinds`` for ``route``."""
    return [secret(route, kind, style_index) for kind in kinds]


# --------------------------------------------------------------------------------------------------- servers

STARTED_AT = time.time()


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pii-everywhere")


@pytest.fixture(scope="module")
def fake_api():
    fake = FakeWeChatApi(APPID, APPSECRET).start_in_thread()
    yield fake
    fake.stop_thread()


@pytest.fixture(scope="module")
def webhook():
    receiver = WebhookReceiver(failures=0)
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def wechat_settings(fake_api, e2e_dir) -> WeChatSettings:
    return WeChatSettings.from_env(environment(WECHAT_API_BASE_URL=fake_api.base_url,
                                               WECHAT_STORE_URL=f"sqlite:///{e2e_dir / 'wechat.db'}"))


@pytest.fixture(scope="module")
def servers(trained_model, e2e_dir, fake_api, webhook):
    handoff_db = f"sqlite:///{e2e_dir / 'handoff.db'}"
    issue_agents(handoff_db)
    env = {
        **environment(WECHAT_API_BASE_URL=fake_api.base_url, WECHAT_STORE_URL=f"sqlite:///{e2e_dir / 'wechat.db'}"),
        # Rasa's DEBUG lines, Sanic's access log and the libraries' INFO lines on: they are logs too.
        "LOG_LEVEL": "DEBUG", "LOG_LEVEL_LIBRARIES": "INFO",
        "HANDOFF_CONFIG": str(always_open_config(e2e_dir, claim_timeout_seconds=3600)),
        "HANDOFF_REFERENCE_KEY": REFERENCE_KEY,
        "HANDOFF_WEBHOOK_URL": webhook.url, "HANDOFF_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RATE_LIMITS": "client=1000000/60", "RATE_LIMIT_PREFIX": f"test-{uuid.uuid4().hex}:",
    }
    config = ServerConfig(
        model=trained_model, rasa_port=free_port(), action_port=free_port(), desk_port=free_port(),
        token=TEST_TOKEN, endpoints=str(write_sqlite_endpoints(e2e_dir)), log_dir=e2e_dir / "logs",
        handoff_database_url=handoff_db, compliance_database_url=f"sqlite:///{e2e_dir / 'compliance.db'}",
        extra_env=env)
    running = start_servers(config)
    yield running
    running.stop()


def _tracker(servers, sender: str) -> Dict[str, Any]:
    url = f"{servers.rasa_url}/conversations/{urllib.parse.quote(sender)}/tracker?token={TEST_TOKEN}"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def _user_texts(servers, sender: str) -> List[str]:
    return [e.get("text") or "" for e in _tracker(servers, sender)["events"] if e["event"] == "user"]


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    assert condition(), f"timed out waiting for {what} (PII_SEED={SEED})"


def _rest(servers, body: Dict[str, Any], query: str = "", timeout: float = 60) -> Tuple[int, Any]:
    return request_json("POST", f"{servers.rasa_url}/webhooks/rest/webhook{query}", body, timeout=timeout)


def _desk(servers, method: str, path: str, body: Any = None, ok: Tuple[int, ...] = (200, 201)) -> Any:
    status, answer = call(method, servers.desk_url + path, body, token=WANG_TOKEN)
    assert status in ok, (path, status, answer)
    return answer


def _ticket_of(servers, sender: str) -> Dict[str, Any]:
    reference = reference_of(sender)
    tickets = [t for t in _desk(servers, "GET", "/api/tickets")["tickets"] if t["reference"] == reference]
    assert len(tickets) == 1, tickets
    return tickets[0]


class Widget:
    """A socket.io user recording every ``bot_uttered``; ``session_id`` is the server's name for it."""

    def __init__(self, url: str, request: Optional[Dict[str, Any]] = None) -> None:
        self.url = url
        self.request = request or {}
        self.client = socketio.AsyncClient(reconnection=False)
        self.received: List[Dict[str, Any]] = []
        self.session_id = ""
        self.client.on("bot_uttered", self.received.append)

    async def __aenter__(self) -> Widget:
        confirmed = asyncio.Event()

        def on_confirm(data: Dict[str, Any]) -> None:
            self.session_id = data["session_id"]
            confirmed.set()

        self.client.on("session_confirm", on_confirm)
        await self.client.connect(self.url, transports=["polling"], socketio_path="/socket.io")
        await self.client.emit("session_request", self.request)
        await asyncio.wait_for(confirmed.wait(), timeout=10)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.disconnect()

    async def wait_for(self, predicate: Callable[[List[Dict[str, Any]]], bool], start: int,
                       timeout: float = 60) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.received[start:]):
                await asyncio.sleep(1)
                return self.received[start:]
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out; received {self.received[start:]}")

    async def say(self, text: str, custom: Optional[Dict[str, Any]] = None,
                  predicate: Callable[[List[Dict[str, Any]]], bool] = bool) -> List[Dict[str, Any]]:
        start = len(self.received)
        data: Dict[str, Any] = {"message": text}
        if custom is not None:
            data["customData"] = custom
        await self.client.emit("user_uttered", data)
        return await self.wait_for(predicate, start)

    async def say_quietly(self, text: str, seconds: float = 4) -> None:
        """Send while paused: no reply is expected."""
        await self.client.emit("user_uttered", {"message": text})
        await asyncio.sleep(seconds)


def _status(messages: List[Dict[str, Any]], status: str) -> bool:
    return any(m.get("type") == "handoff" and m.get("status") == status for m in messages)


def _texts(messages: List[Dict[str, Any]]) -> str:
    return "\n".join(m.get("text", "") for m in messages if m.get("text"))


# ---------------------------------------------------------------------------------------------------- routes

def test_rest_with_metadata_and_a_client_named_input_channel(servers):
    sender = f"pii-rest-{uuid.uuid4().hex[:8]}"
    for index, item in enumerate(secrets_for("rest", 0)):
        extra = secret("rest_metadata", item.kind, 1)
        body = {"sender": sender, "message": item.message(),
                "metadata": {"phone": extra.typed, "wechat_msg_type": extra.message(),
                             "customer": {"note": extra.message(), "list": [extra.value]}}}
        if index % 3 == 0:
            body["input_channel"] = secret("rest_input_channel", item.kind, 2).typed
        status, reply = _rest(servers, body)
        assert status == 200, (status, reply)
        assert "已被自动隐藏" in "\n".join(m.get("text", "") for m in reply), (item, reply, SEED)
    streamed = secret("rest_stream", "mobile", 3)
    status, _ = _rest(servers, {"sender": sender, "message": streamed.message()}, query="?stream=true")
    assert status == 200
    texts = _user_texts(servers, sender)
    assert len(texts) == len(KINDS) + 1 and all("已隐藏]" in text for text in texts), texts


def test_socketio_with_custom_data(servers):
    named = secret("socketio_session_request", "mobile", 0)
    forged = {"session_id": named.typed, "session_token": secret("socketio_session_request", "bank_card", 1).typed}
    customer = secret("socketio_session_request", "resident_id", 2)

    async def scenario() -> str:
        async with Widget(servers.rasa_url, forged) as user:
            assert user.session_id.startswith("web-")  # forged fields open a new conversation of its own
            refused = asyncio.Event()
            user.client.on("refused", lambda data: refused.set())
            await user.client.emit("session_request", {"customer_token": customer.message()})
            await asyncio.wait_for(refused.wait(), timeout=10)  # no bank key: customer tokens are refused
            for item in secrets_for("socketio", 1):
                extra = secret("socketio_custom_data", item.kind, 2)
                reply = await user.say(item.message(), {"phone": extra.typed, "wechat_option": extra.message()})
                assert "已被自动隐藏" in _texts(reply), (item, reply, SEED)
            return user.session_id

    sender = asyncio.run(scenario())
    texts = _user_texts(servers, sender)
    assert len(texts) == len(KINDS) and all("已隐藏]" in text for text in texts), texts


def test_wechat_pushes(servers, wechat_settings):
    openid = f"oPII-{uuid.uuid4().hex[:20]}"
    items = secrets_for("wechat", 2)
    for item in items:
        params, body = signed_request(wechat_settings, text_message(openid, item.message()))
        request = urllib.request.Request(f"{servers.rasa_url}{WEBHOOK}?{urllib.parse.urlencode(params)}", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.read() == b"success"
        time.sleep(0.3)
    sender = user_id(openid, ID_HASH_KEY)
    _wait(lambda: len(_user_texts(servers, sender)) == len(items), 120, "the WeChat messages in the tracker")
    assert all("已隐藏]" in text for text in _user_texts(servers, sender))


def test_free_text_answers_of_the_hardship_form_reach_the_ticket_masked(servers):
    sender = f"pii-form-{uuid.uuid4().hex[:8]}"
    status, reply = _rest(servers, {"sender": sender, "message": "我想自己跟银行协商分期还款"})
    assert status == 200 and "个性化分期还款" in "\n".join(m.get("text", "") for m in reply), reply
    for item in secrets_for("hardship_form", 2, ("bank_card", "resident_id", "mobile", "wechat_id", "landline")):
        assert _rest(servers, {"sender": sender, "message": f"是{item.message()}"})[0] == 200
    _desk(servers, "GET", "/api/me")
    assert _rest(servers, {"sender": sender, "message": "转人工"})[0] == 200
    ticket = _ticket_of(servers, sender)
    assert ticket["summary"], ticket


def test_a_hand_over_user_text_agent_reply_and_note(servers):
    before = secrets_for("handoff_before", 3, KINDS[:3])
    during = secrets_for("handoff_paused", 0, KINDS[3:])
    danger = secret("handoff_alert", "mobile", 1)
    reply_items = secrets_for("agent_reply", 2)
    note_items = secrets_for("agent_note", 3)

    async def scenario() -> Tuple[str, Dict[str, Any]]:
        async with Widget(servers.rasa_url) as user:
            for item in before:
                await user.say(item.message(), predicate=lambda m: "已被自动隐藏" in _texts(m))
            await asyncio.to_thread(_desk, servers, "GET", "/api/me")  # an agent is on duty
            await user.say("转人工", predicate=lambda m: _status(m, "queued"))
            for item in during:
                await user.say_quietly(item.message())
            start = len(user.received)
            await user.client.emit("user_uttered", {"message": f"我真的不想活了，{danger.message()}"})
            await user.wait_for(lambda m: "12356" in _texts(m), start)
            ticket = await asyncio.to_thread(_ticket_of, servers, user.session_id)
            assert ticket["alert_text"] and "已隐藏]" in ticket["alert_text"], ticket
            start = len(user.received)
            await asyncio.to_thread(_desk, servers, "POST", f"/api/tickets/{ticket['id']}/claim")
            await user.wait_for(lambda m: _status(m, "agent_joined"), start)
            start = len(user.received)
            answer = await asyncio.to_thread(_desk, servers, "POST", f"/api/tickets/{ticket['id']}/reply",
                                             {"text": "；".join(i.message() for i in reply_items)})
            assert "已隐藏]" in answer["sent"], answer
            await user.wait_for(lambda m: _status(m, "agent_message"), start)
            await asyncio.to_thread(_desk, servers, "POST", f"/api/tickets/{ticket['id']}/notes",
                                    {"text": "；".join(i.message() for i in note_items)})
            view = await asyncio.to_thread(_desk, servers, "GET", f"/api/tickets/{ticket['id']}/transcript")
            start = len(user.received)
            await asyncio.to_thread(_desk, servers, "POST", f"/api/tickets/{ticket['id']}/close",
                                    {"outcome": "resolved"})
            await user.wait_for(lambda m: _status(m, "closed"), start)
            return user.session_id, view

    sender, live = asyncio.run(scenario())
    user_texts = [m["text"] for m in live["messages"] if m.get("role") == "user"]
    assert len([t for t in user_texts if "已隐藏]" in t]) == len(before) + len(during) + 1, user_texts
    texts = _user_texts(servers, sender)
    assert len(texts) == len(before) + 1 + len(during) + 1


def test_an_undeliverable_agent_reply_to_a_rest_follow_up(servers):
    sender = f"pii-rest-handoff-{uuid.uuid4().hex[:8]}"
    for item in secrets_for("rest_handoff", 1, KINDS[::2]):
        assert _rest(servers, {"sender": sender, "message": item.message()})[0] == 200
    _desk(servers, "GET", "/api/me")
    assert _rest(servers, {"sender": sender, "message": "转人工"})[0] == 200
    ticket = _ticket_of(servers, sender)
    assert ticket["status"] == "follow_up"
    _desk(servers, "POST", f"/api/tickets/{ticket['id']}/claim")
    text = "；".join(item.message() for item in secrets_for("agent_reply_undelivered", 0, KINDS[1::2]))
    answer = _desk(servers, "POST", f"/api/tickets/{ticket['id']}/reply", {"text": text}, ok=(409,))
    assert answer["delivered"] is False
    _desk(servers, "POST", f"/api/tickets/{ticket['id']}/close", {"outcome": "resolved"})


def test_the_action_server_down(servers):
    sender = f"pii-outage-{uuid.uuid4().hex[:8]}"
    servers.action_server.kill()
    servers.action_server.wait()
    try:
        for item in secrets_for("action_server_down", 2, KINDS[:5]):
            status, reply = _rest(servers, {"sender": sender, "message": item.message()})
            assert status == 200 and reply, (status, reply)
    finally:
        servers.restart("action_server")
    _wait(lambda: _health(f"{servers.action_url}/health"), 60, "the action server to come back")
    _wait(lambda: len(_user_texts(servers, sender)) == 5, 40, "the outage turns in the tracker")


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def test_the_tracker_store_locked(servers, e2e_dir):
    """While a test connection holds SQLite's exclusive lock on the tracker store, every read and write of it
    fails ("database is locked"): the Rasa side logs the failures, the supervisor answers and records the turn
    once the lock is gone. One client hangs up while waiting, so that Rasa's REST channel logs the request."""
    sender = f"pii-locked-{uuid.uuid4().hex[:8]}"
    items = secrets_for("tracker_store_locked", 3, KINDS[4:])
    hung_up = secret("tracker_store_locked_hung_up", "resident_id", 0)
    lock = sqlite3.connect(e2e_dir / "tracker.db", timeout=10, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")
    released = threading.Event()

    def release_later() -> None:
        time.sleep(25)
        lock.execute("COMMIT")
        lock.close()
        released.set()

    threading.Thread(target=release_later, daemon=True).start()
    try:
        try:
            _rest(servers, {"sender": sender, "message": hung_up.message()}, timeout=1)
        except OSError:
            pass  # the client gave up: Rasa's handler is cancelled
        for item in items:
            status, reply = _rest(servers, {"sender": sender, "message": item.message()}, timeout=90)
            assert status == 200 and reply, (status, reply)
    finally:
        released.wait(60)
    _wait(lambda: len(_user_texts(servers, sender)) >= len(items), 90, "the locked turns recorded")


# ------------------------------------------------------------------------------------------- reading it all

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|\\U([0-9a-fA-F]{8})")
_CF = re.compile("[" + "".join(re.escape(chr(c)) for c in range(0x110000)
                               if unicodedata.category(chr(c)) == "Cf") + "]")
_NUMERALS = str.maketrans(CHINESE_DIGITS)
_SEPARATED = re.compile(r"(?<=\d)[ \t\-\u2010-\u2015\u2212._·•/\\()（）]{1,2}(?=\d)")
_DIGIT_RUN = re.compile(r"\d+")
LONG_DIGITS = 12
"""A digit needle this long is looked for inside any run of digits; a shorter one must be a whole run (not after
a decimal point), so that a timestamp, a port or a process id never counts as the value."""


def views(content: str) -> Tuple[str, str, str]:
    """``content`` with escapes (``\\uXXXX``, ``\\xNN``, ``%XX``) decoded; that NFKC-normalised with invisible
    (Cf) characters dropped and Chinese numerals as digits; and that with separators between digits removed."""
    unescaped = _ESCAPE.sub(lambda m: chr(int(next(g for g in m.groups() if g), 16)), content)
    if "%" in unescaped:
        unescaped = urllib.parse.unquote(unescaped)
    normalised = _CF.sub("", unicodedata.normalize("NFKC", unescaped)).translate(_NUMERALS)
    return unescaped, normalised, _SEPARATED.sub("", normalised)


def needles(item: Secret) -> Tuple[List[str], List[str]]:
    """What must not be found for ``item``: ``(digit needles, text needles)``. Digits: the value's digits (a
    resident ID without its check character), with 86 before a mobile; every way it was typed reduces to these
    in the normalised views. Text (lower case): an e-mail address or WeChat id, and an address's local part."""
    digits = re.sub(r"\D", "", item.value)
    if item.kind in ("email", "wechat_id"):
        texts = {item.value.lower(), item.value.split("@")[0].lower()}
        return ([digits] if len(digits) >= 5 else []), sorted(texts)
    found = [digits]
    if item.kind in ("mobile", "chinese_mobile"):
        found.append("86" + digits)
    return found, []


def find_leaks(name: str, content: str, items: List[Secret]) -> List[str]:
    """Lines naming each value of ``items`` found in ``content`` (called ``name``), with its context."""
    short: Dict[str, Secret] = {}
    long: List[Tuple[str, Secret]] = []
    texts: List[Tuple[str, Secret]] = []
    for item in items:
        digit_needles, text_needles = needles(item)
        for needle in digit_needles:
            if len(needle) >= LONG_DIGITS:
                long.append((needle, item))
            else:
                short[needle] = item
        texts += [(needle, item) for needle in text_needles]
    leaks = set()

    def leak(item: Secret, view: str, at: int, length: int) -> None:
        leaks.add(f"{item.route}/{item.kind} {item.value!r} (typed {item.typed!r}) in {name}: "
                  f"...{view[max(0, at - 80):at + length + 40]!r}...")

    unescaped, normalised, squeezed = views(content)
    for view in (unescaped, normalised, squeezed):
        for run in _DIGIT_RUN.finditer(view):
            digits = run.group()
            if digits in short and not (run.start() > 0 and view[run.start() - 1] == "."):
                leak(short[digits], view, run.start(), len(digits))
            if len(digits) >= LONG_DIGITS:
                for needle, item in long:
                    if needle in digits:
                        leak(item, view, run.start(), len(digits))
    lowered = normalised.lower()
    for needle, item in texts:
        at = lowered.find(needle)
        if at != -1:
            leak(item, lowered, at, len(needle))
    return sorted(leaks)


def sqlite_rows(path: Path) -> str:
    """Every row of every table of the SQLite database at ``path``, as text ("" if it is not one)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            return "\n".join(db.iterdump())
    except sqlite3.DatabaseError:
        return ""


def written_files(e2e_dir: Path) -> List[Path]:
    """Every file under the servers' folder, and whatever the servers changed under the project's var/."""
    files = [p for p in e2e_dir.rglob("*") if p.is_file()]
    var = PROJECT_ROOT / "var"
    if var.exists():
        files += [p for p in var.rglob("*") if p.is_file() and p.stat().st_mtime >= STARTED_AT - 1]
    return files


def test_no_store_and_no_log_holds_any_raw_value(servers, e2e_dir, webhook, fake_api):
    print(f"PII_SEED={SEED}: {len(SENT)} values sent")
    time.sleep(5)  # the compliance consumer and the background recordings catch up
    servers.stop()
    files = written_files(e2e_dir)
    contents: Dict[str, str] = {}
    for path in files:
        contents[str(path)] = path.read_bytes().decode("utf-8", "replace")
        if path.suffix == ".db":
            contents[f"{path} (rows)"] = sqlite_rows(path)
    for number, (_, body) in enumerate(webhook.received):
        contents[f"webhook body {number}"] = body.decode("utf-8", "replace")
    for number, attempt in enumerate(fake_api.send_attempts):
        contents[f"WeChat send {number}"] = json.dumps(attempt["body"], ensure_ascii=False)

    leaks = [line for name, content in contents.items() for line in find_leaks(name, content, SENT)]
    assert leaks == [], f"PII_SEED={SEED}: {len(leaks)} leaks\n" + "\n".join(leaks[:40])

    names = {p.name for p in files}
    for expected in ("tracker.db", "events.db", "compliance.db", "handoff.db", "wechat.db", "rasa-server.log",
                     "action-server.log", "agent-desk.log", "compliance-consumer.log"):
        assert expected in names, f"{expected} was not written: {sorted(names)}"
    assert webhook.received, "the desk sent webhook events"
    assert fake_api.send_attempts, "the channel sent replies to WeChat"
    routes = {item.route for item in SENT}
    assert {"rest", "rest_metadata", "rest_input_channel", "socketio", "socketio_custom_data", "wechat",
            "handoff_paused", "handoff_alert", "hardship_form", "socketio_session_request", "agent_reply",
            "agent_note", "agent_reply_undelivered",
            "action_server_down", "tracker_store_locked"} <= routes, routes
    assert {item.kind for item in SENT} == set(KINDS)


def test_the_leak_finder_finds_a_value_however_it_is_stored():
    """The reader above would find a value stored plainly, escaped, full-width, in Chinese numerals, with
    separators, or in its digits-only form; and not a timestamp that merely shares digits."""
    rng = random.Random(SEED)
    for kind in KINDS:
        value = generate(kind, rng)
        for style in STYLES:
            item = Secret("self-test", kind, value, typed(kind, value, style, rng))
            for stored in (item.message(), json.dumps(item.message()), urllib.parse.quote(item.message())):
                assert find_leaks("self-test", f"x {stored} y", [item]), (kind, style, stored)
    code = Secret("self-test", "verification_code", "482913", "482913")
    assert find_leaks("t", '{"timestamp": 1764741234.482913, "port": 48291}', [code]) == []
    assert find_leaks("t", "pid 4829130 and 1482913", [code]) == []
