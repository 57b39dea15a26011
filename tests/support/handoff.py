"""Helpers for the handoff tests: databases (SQLite, PostgreSQL), a stand-in Rasa HTTP API, a desk process, a
desk client that needs no desk process, and a small JSON HTTP client."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from bot import PROJECT_ROOT
from bot.handoff.config import HandoffSettings
from bot.handoff.contract import IntakeAnswer, NewTicket
from bot.handoff.desk.service_api import receive_ticket
from bot.handoff.intake import read_answer
from bot.handoff.store import TicketStore
from bot.ops.servers import LOOPBACK, free_port
from tests.support.servers import request_json
from tests.support.services import PG_HOST, PG_PORT, postgres_reachable, throwaway_postgres  # noqa: F401

RASA_TOKEN = "fake-rasa-token"
AGENT_TOKENS = {"王敏": "dhk_test-wangmin-0123456789abcdefghij", "李强": "dhk_test-liqiang-0123456789abcdefghij"}
"""Agent credentials the tests issue into each desk's ticket store (bot.handoff.credentials)."""
COMPLIANCE_TOKEN = "dhk_test-compliance-0123456789abcdef"
"""A ``compliance`` credential (赵丽) the tests issue too."""
INTAKE_TOKEN = "intake-service-token-0123456789"
REFERENCE_KEY = "test-reference-key-0123456789abcdef"
"""HANDOFF_REFERENCE_KEY of the tests' desks, so that a test can find a sender's ticket by its reference."""


def issue_agents(database_url: str) -> None:
    """Migrate the ticket store at ``database_url`` and issue AGENT_TOKENS (role agent) and COMPLIANCE_TOKEN
    (赵丽, role compliance) into it, once."""
    from bot.db import make_engine, upgrade_database
    from bot.handoff.credentials import CredentialStore, credential_id

    upgrade_database(database_url, "handoff")
    engine = make_engine(database_url)
    try:
        credentials = CredentialStore(engine)
        known = {c.id for c in credentials.credentials(include_inactive=True)}
        for name, token, role in [*((n, t, "agent") for n, t in AGENT_TOKENS.items()),
                                  ("赵丽", COMPLIANCE_TOKEN, "compliance")]:
            if credential_id(token) not in known:
                credentials.issue(name, role, days=2, token=token)
    finally:
        engine.dispose()


def reference_of(sender_id: str) -> str:
    """The opaque reference the tests' desks show for ``sender_id``."""
    from bot.handoff.store import reference_for

    return reference_for(REFERENCE_KEY.encode("utf-8"), sender_id)


class FakeRasa:
    """A stand-in for the Rasa HTTP API on loopback: ``GET /conversations/<id>/tracker`` and
    ``POST /conversations/<id>/tracker/events`` with ``?token=``. Appended events are kept per sender in
    ``appended`` (and added to that sender's tracker); set ``fail = True`` to answer 500; senders in
    ``undeliverable`` get Rasa's 500 for a channel that could not deliver (bot.handoff.delivery) when the
    request asks for delivery (``execute_side_effects=true``); without it the events are stored."""

    def __init__(self) -> None:
        self.trackers: Dict[str, Dict[str, Any]] = {}
        self.appended: Dict[str, List[Dict[str, Any]]] = {}
        self.requests: List[Tuple[str, str]] = []
        self.fail = False
        self.undeliverable: set = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self) -> Optional[Tuple[str, str]]:
                parsed = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(parsed.query)
                fake.requests.append((self.command, self.path))
                if query.get("token") != [RASA_TOKEN]:
                    self._answer(401, {"error": "token"})
                    return None
                if fake.fail:
                    self._answer(500, {"error": "down"})
                    return None
                parts = parsed.path.split("/")
                return urllib.parse.unquote(parts[2]), "/".join(parts[3:])

            def do_GET(self) -> None:  # noqa: N802
                route = self._route()
                if route:
                    sender, _ = route
                    self._answer(200, fake.trackers.get(sender, {"sender_id": sender, "events": [],
                                                                 "paused": False}))

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                route = self._route()
                if route and route[0] in fake.undeliverable and "execute_side_effects=true" in self.path:
                    from bot.handoff.delivery import AgentMessageNotDelivered

                    self._answer(500, {"message": f"An unexpected error occurred. Error: "
                                                  f"{AgentMessageNotDelivered('the widget is not connected')}"})
                    return
                if route:
                    sender, _ = route
                    events = json.loads(body)
                    fake.appended.setdefault(sender, []).extend(events)
                    tracker = fake.trackers.setdefault(sender, {"sender_id": sender, "events": [], "paused": True})
                    tracker["events"].extend(events)
                    if any(e.get("event") == "resume" for e in events):
                        tracker["paused"] = False
                    self._answer(200, {"sender_id": sender})

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bot_texts(self, sender: str) -> List[str]:
        """Texts of the BotUttered events appended for ``sender``."""
        return [e.get("text", "") for e in self.appended.get(sender, []) if e.get("event") == "bot"]

    def stop(self) -> None:
        """Shut the server down."""
        self.server.shutdown()
        self.server.server_close()


class DeskProcess:
    """``python -m bot.handoff.desk`` on a free loopback port, with ``env`` added to the environment (and the
    service token INTAKE_TOKEN and REFERENCE_KEY unless ``env`` names others). The test credentials
    (:func:`issue_agents`) are issued into ``env["HANDOFF_DATABASE_URL"]`` first, when it is given."""

    def __init__(self, env: Dict[str, str], log: Path) -> None:
        if env.get("HANDOFF_DATABASE_URL"):
            issue_agents(env["HANDOFF_DATABASE_URL"])
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log = log
        self._handle = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.handoff.desk", "--port", str(self.port)], cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "HANDOFF_INTAKE_TOKEN": INTAKE_TOKEN,
                 "HANDOFF_REFERENCE_KEY": REFERENCE_KEY, **env},
            stdout=self._handle,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"desk exited with {self.process.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"desk did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Terminate the desk."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self._handle.close()


class InProcessDesk:
    """A DeskClient for unit tests: the ticket goes, as JSON, through the desk's own intake logic
    (bot.handoff.desk.service_api.receive_ticket) into a real ``store``, and the answer comes back through the
    action side's reader, as over HTTP; only the socket is left out. ``now`` fixes the desk's clock (aware);
    ``agents_present`` says whether an agent is at the desk (bot.handoff.presence)."""

    def __init__(self, store: TicketStore, settings: HandoffSettings, now: Optional[dt.datetime] = None,
                 agents_present: bool = True) -> None:
        self.store, self.settings, self.now = store, settings, now
        self.agents_present = agents_present
        self.sent: List[NewTicket] = []

    def open_ticket(self, ticket: NewTicket) -> IntakeAnswer:
        """Store ``ticket`` as the desk would. Raises DeskUnavailable as the HTTP client would."""
        self.sent.append(ticket)
        body = json.loads(json.dumps(ticket.to_json(), ensure_ascii=False))
        status, answer = receive_ticket(body, self.store, self.settings.opening_hours, self.now,
                                        self.agents_present)
        return read_answer(status, json.dumps(answer).encode())


def call(method: str, url: str, body: Any = None, token: Optional[str] = None, agent_name: Optional[str] = None,
         raw: Optional[bytes] = None, timeout: float = 30) -> Tuple[int, Any]:
    """An HTTP request with optional JSON body and agent credentials; returns ``(status, parsed JSON or text)``."""
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if agent_name is not None:
        headers["X-Agent-Name"] = urllib.parse.quote(agent_name)
    return request_json(method, url, body, raw=raw, headers=headers, timeout=timeout)


def always_open_config(directory: Path, **overrides: Any) -> Path:
    """A handoff config file open every day all day (so tests do not depend on the clock), with overrides."""
    import yaml

    content = {"timezone": "Asia/Shanghai", "opening_hours": {d: "00:00-24:00" for d in
                                                              ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
               "claim_timeout_seconds": 600, "check_interval_seconds": 1, "max_reply_chars": 1000,
               "webhook_max_attempts": 3, "webhook_retry_seconds": 1, **overrides}
    path = directory / f"handoff-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")
    return path


class WebhookReceiver:
    """A webhook receiver on a free loopback port (``url``) that answers the first ``failures`` requests with
    500 and the rest with 204; ``received`` holds ``(headers, body)`` of each request."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = 500 if len(receiver.received) <= receiver.failures else 204
                self.send_response(status)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
