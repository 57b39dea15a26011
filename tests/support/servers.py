"""Helpers for the end-to-end tests: a server pair on free loopback ports, and REST and socketio clients."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import socketio

from bot import PROJECT_ROOT
from bot.ops.servers import RunningServers, ServerConfig, free_port, start_servers

TEST_TOKEN = "e2e-test-token"


def write_sqlite_endpoints(directory: Path) -> Path:
    """endpoints.yml, byte for byte except that its SQLite files (tracker store, event broker) live in
    ``directory``; returns the copy's path."""
    original = (PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8")
    default_db = 'db: "var/tracker.db"'
    assert default_db in original, "endpoints.yml no longer has the default SQLite path"
    default_events = 'db: "var/events.db"'
    assert default_events in original, "endpoints.yml no longer has the default SQL event broker path"
    path = directory / "endpoints.yml"
    path.write_text(original.replace(default_db, f'db: "{directory / "tracker.db"}"')
                    .replace(default_events, f'db: "{directory / "events.db"}"'), encoding="utf-8")
    return path


def start_test_servers(model: Path, directory: Path, endpoints: Path,
                       extra_env: Optional[Dict[str, str]] = None) -> RunningServers:
    """The real action and Rasa servers (and the compliance consumer, writing ``directory/compliance.db``) on free
    loopback ports, logging into ``directory/logs``.

    Every test client is 127.0.0.1, so the per-client rate limit is lifted unless ``extra_env`` sets
    ``RATE_LIMITS``; counters in a shared Redis get a prefix of their own."""
    env = {"RATE_LIMITS": "client=1000000/60", "RATE_LIMIT_PREFIX": f"test-{uuid.uuid4().hex}:",
           **(extra_env or {})}
    config = ServerConfig(model=model, rasa_port=free_port(), action_port=free_port(), token=TEST_TOKEN,
                          endpoints=str(endpoints), log_dir=directory / "logs", extra_env=env,
                          compliance_database_url=f"sqlite:///{directory / 'compliance.db'}")
    return start_servers(config)


def request_json(method: str, url: str, body: Any = None, raw: Optional[bytes] = None,
                 headers: Optional[Dict[str, str]] = None, timeout: float = 60) -> Tuple[int, Any]:
    """An HTTP request with a JSON body (or ``raw`` bytes, or none); returns ``(status, parsed JSON or text)``."""
    data = raw if raw is not None else (None if body is None else json.dumps(body, ensure_ascii=False).encode())
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, payload = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    text = payload.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def post(url: str, body: Any, raw: Optional[bytes] = None, timeout: float = 60) -> Tuple[int, Any]:
    """POST JSON (or ``raw`` bytes) and return ``(status, parsed JSON body or text)``."""
    return request_json("POST", url, body, raw=raw, timeout=timeout)


def rest_say(servers: RunningServers, sender: str, message: str) -> List[Dict[str, Any]]:
    """Send one message over the REST channel; return the bot messages. Fails on a non-200 answer."""
    status, body = post(f"{servers.rasa_url}/webhooks/rest/webhook", {"sender": sender, "message": message})
    assert status == 200, (status, body)
    return body


def joined_text(messages: List[Dict[str, Any]]) -> str:
    """All bot texts of a reply, joined by newlines."""
    return "\n".join(m.get("text", "") for m in messages)


SOCKET_SESSIONS: Dict[str, str] = {}
"""A test's label for a socketio conversation -> the sender id the server gave it at ``session_confirm``."""


async def socketio_conversation(url: str, label: str, messages: List[str],
                                quiet_seconds: float = 4.0, timeout: float = 60) -> List[List[Dict[str, Any]]]:
    """Talk over the socketio channel: one new session (the server names it; its sender id is kept in
    SOCKET_SESSIONS under ``label``), each message sent after the previous reply settles.

    Returns the bot_uttered payloads received for each message.
    """
    client = socketio.AsyncClient(reconnection=False)
    received: List[Dict[str, Any]] = []
    confirmed = asyncio.Event()

    @client.on("bot_uttered")
    async def on_bot(data):  # noqa: ANN001
        received.append(data)

    @client.on("session_confirm")
    async def on_confirm(data):  # noqa: ANN001
        SOCKET_SESSIONS[label] = data["session_id"]
        confirmed.set()

    # Long-polling: the aiohttp that Rasa pins (3.9) lacks what python-engineio's websocket client needs.
    await client.connect(url, transports=["polling"], socketio_path="/socket.io")
    try:
        await client.emit("session_request", {})
        await asyncio.wait_for(confirmed.wait(), timeout=10)
        replies = []
        for text in messages:
            start = len(received)
            await client.emit("user_uttered", {"message": text})
            waited = 0.0
            while len(received) == start and waited < timeout:
                await asyncio.sleep(0.2)
                waited += 0.2
            last = len(received)
            while True:  # wait until no new message arrives for quiet_seconds
                await asyncio.sleep(quiet_seconds)
                if len(received) == last:
                    break
                last = len(received)
            replies.append(received[start:])
        return replies
    finally:
        await client.disconnect()
