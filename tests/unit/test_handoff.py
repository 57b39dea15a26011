"""The handoff's pieces without servers: hours, settings, priority, summary, messages, auth, webhook
signing and delivery, the intake decision, the action side's desk client and ``action_handoff``.

The intake tests hand tickets to the desk's own intake logic over a real SQLite store (tests.support.handoff.
InProcessDesk); the HTTP route itself is tested over a real desk process in tests/integration/test_handoff_desk.py.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ConversationPaused, FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from bot.db import upgrade_database
from bot.handoff.auth import AgentAuth, AuthError, ServiceAuth
from bot.handoff.config import HandoffConfigError, load_settings
from bot.handoff.contract import ContractError, IntakeAnswer, NewTicket
from bot.handoff.credentials import CredentialError
from bot.handoff.hours import OpeningHoursError, hours_from_mapping, hours_from_text, parse_span
from bot.handoff.intake import (
    NOT_CONFIGURED,
    DeskUnavailable,
    HandoffContext,
    HttpDeskClient,
    open_handoff,
    read_answer,
)
from bot.handoff.messages import agent_message_event, bot_event, render
from bot.handoff.notifier import WebhookNotifier, signature, verify_signature
from bot.handoff.priority import (
    PRIORITY_DISTRESS,
    PRIORITY_OTHER,
    PRIORITY_VICTIM,
    handoff_reason,
    is_repeated_fallback,
    ticket_priority,
)
from bot.handoff.store import TicketStore
from bot.handoff.summary import build_summary, transcript
from tests.support.handoff import INTAKE_TOKEN, InProcessDesk, WebhookReceiver, always_open_config

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _user(text, intent, t=1_780_000_000.0, channel="socketio"):
    return {"event": "user", "text": text, "timestamp": t, "input_channel": channel,
            "parse_data": {"intent": {"name": intent, "confidence": 0.9}}}


def _bot(text, t=1_780_000_001.0):
    return {"event": "bot", "text": text, "timestamp": t, "metadata": {"utter_action": "utter_x"}}


CONVERSATION = [
    {"event": "action", "name": "action_listen"},
    _user("我交了三千给协商公司，还把身份证号11010519491231002X给了他们", "agency_victim"),
    _bot("请拨打110报警，也可以拨打公安部反诈专线96110咨询。"),
    _user("我真的不想活了", "express_distress"),
    _bot("现在就可以拨打全国统一心理援助热线12356。"),
    _user("转人工", "request_human"),
]


# ----- opening hours -------------------------------------------------------------------------------------
def test_opening_hours_are_checked_in_their_time_zone():
    hours = hours_from_mapping({"mon": "09:00-21:00", "sat": "10:00-16:00"}, "Asia/Shanghai")
    monday_morning = dt.datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI)  # a Monday
    assert hours.is_open(monday_morning)
    assert not hours.is_open(monday_morning - dt.timedelta(minutes=1))
    assert not hours.is_open(dt.datetime(2026, 11, 30, 21, 0, tzinfo=SHANGHAI))
    assert hours.is_open(dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC))  # 09:00 in Shanghai
    assert not hours.is_open(dt.datetime(2026, 12, 1, 12, 0, tzinfo=SHANGHAI))  # Tuesday: closed
    assert hours.is_open(dt.datetime(2026, 12, 5, 15, 59, tzinfo=SHANGHAI))  # Saturday


def test_opening_hours_are_described_in_chinese_grouping_days():
    assert hours_from_text("mon-fri 09:00-18:00; sat,sun 10:00-16:00").describe() == \
        "周一至周五 09:00-18:00，周六、周日 10:00-16:00（北京时间）"
    assert hours_from_text("always").describe() == "每天全天（北京时间）"
    assert hours_from_text("mon 08:30-12:00").describe() == "周一 08:30-12:00（北京时间）"


@pytest.mark.parametrize("bad", ["9-21", "21:00-09:00", "09:00-25:00", "09:60-10:00"])
def test_malformed_spans_are_refused(bad):
    with pytest.raises(OpeningHoursError):
        parse_span(bad)


def test_unknown_days_and_zones_are_refused():
    with pytest.raises(OpeningHoursError):
        hours_from_text("monday 09:00-18:00")
    with pytest.raises(OpeningHoursError):
        hours_from_mapping({"mon": "09:00-18:00"}, "Mars/Olympus")


# ----- settings ------------------------------------------------------------------------------------------
def test_settings_come_from_the_file_and_the_environment(tmp_path):
    config = always_open_config(tmp_path, claim_timeout_seconds=120)
    settings = load_settings({"HANDOFF_CONFIG": str(config), "HANDOFF_REFERENCE_KEY": "abcdefghijklmnop",
                              "HANDOFF_DATABASE_URL": "sqlite:///var/x.db", "HANDOFF_CLAIM_TIMEOUT_SECONDS": "30",
                              "HANDOFF_INTAKE_TOKEN": INTAKE_TOKEN})
    assert settings.reference_key == "abcdefghijklmnop"
    assert settings.claim_timeout_seconds == 30 and settings.intake_token == INTAKE_TOKEN
    assert settings.database_url.startswith("sqlite:////") and settings.database_url.endswith("var/x.db")
    assert "abcdefghijklmnop" not in repr(settings) and INTAKE_TOKEN not in repr(settings)
    assert load_settings({}).opening_hours.describe().startswith("周一至周五")
    # The action server's side: the desk's URL (without its trailing slash) and the service token.
    client = HttpDeskClient.from_env({"HANDOFF_DESK_URL": "http://127.0.0.1:5056/", "HANDOFF_INTAKE_TOKEN": "t"})
    assert client.base_url == "http://127.0.0.1:5056" and client.token == "t"
    assert HttpDeskClient.from_env({"HANDOFF_INTAKE_TOKEN": "t"}) is None


@pytest.mark.parametrize("env, problem", [
    ({"HANDOFF_AGENT_TOKENS": "王敏=abcdefghijklmnop"}, "HANDOFF_AGENT_TOKENS is no longer accepted"),
    ({"HANDOFF_SHARED_SECRET": "abcdefghijklmnop"}, "HANDOFF_SHARED_SECRET is no longer accepted"),
    ({"HANDOFF_WEBHOOK_URL": "http://127.0.0.1:9/hook"}, "HANDOFF_WEBHOOK_SECRET"),
    ({"HANDOFF_CLAIM_TIMEOUT_SECONDS": "soon"}, "whole number"),
    ({"HANDOFF_OPENING_HOURS": "weekdays 9-5"}, "HANDOFF_OPENING_HOURS"),
    ({"HANDOFF_CONFIG": "/nonexistent/handoff.yml"}, "missing"),
    ({"HANDOFF_INTAKE_TOKEN": "short"}, "HANDOFF_INTAKE_TOKEN is shorter than 16"),
    ({"HANDOFF_INTAKE_TOKEN": "abcdefghijklmnop", "RASA_AUTH_TOKEN": "abcdefghijklmnop"}, "RASA_AUTH_TOKEN"),
])
def test_bad_settings_are_named(env, problem):
    with pytest.raises(HandoffConfigError, match=problem):
        load_settings(env)


# ----- priority and summary ------------------------------------------------------------------------------
def test_reason_and_priority():
    assert handoff_reason("express_distress") == "distress"
    assert handoff_reason("nlu_fallback") == "repeated_fallback"
    assert handoff_reason(None) == "user_request"
    assert ticket_priority("user_request", ["greet", "express_distress"]) == PRIORITY_DISTRESS
    assert ticket_priority("agency_victim", ["agency_victim"]) == PRIORITY_VICTIM
    assert ticket_priority("user_request", ["greet"], risk_level="high") == PRIORITY_VICTIM
    assert ticket_priority("repeated_fallback", ["nlu_fallback"]) == PRIORITY_OTHER


def test_summary_names_intents_slots_risk_and_channels_given_and_masks_pii(knowledge):
    slots = {"bank": "招商银行", "debt_type": "信用卡", "amount": "三千", "overdue_duration": None,
             "risk_level": "high", "red_flags": ["paid_fee", "gave_id"]}
    summary = build_summary(CONVERSATION, slots, knowledge, "user_request", PRIORITY_DISTRESS)
    assert summary["intents_seen"] == ["agency_victim", "express_distress", "request_human"]
    assert summary["situation"] == {"bank": "招商银行", "debt_type": "信用卡", "amount": "三千"}
    assert summary["risk"] == {"risk_level": "high", "red_flags": ["paid_fee", "gave_id"]}
    assert "user_segment" not in summary["risk"]
    given = " ".join(summary["channels_given"])
    assert "报警电话：110" in given and "96110" in given and "12356" in given and "12378" not in given
    assert summary["last_user_message"] == "转人工" and summary["user_messages"] == 3
    lines = transcript(CONVERSATION)
    assert [line["role"] for line in lines] == ["user", "bot", "user", "bot", "user"]
    assert "11010519491231002X" not in json.dumps(lines, ensure_ascii=False)
    assert "[身份证号已隐藏]" in lines[0]["text"] and lines[0]["intent"] == "agency_victim"


def test_summary_tolerates_a_tracker_without_the_risk_slots(knowledge):
    summary = build_summary(CONVERSATION[:2], {"bank": None}, knowledge, "agency_victim", PRIORITY_VICTIM)
    assert summary["risk"] == {} and summary["situation"] == {}


def test_agent_messages_are_told_apart_in_the_transcript():
    event = agent_message_event("您好，我是客服王敏", "王敏", "t1")
    (line,) = transcript([event])
    assert line == {"role": "agent", "text": "您好，我是客服王敏", "time": None, "agent": "王敏"}


# ----- messages ------------------------------------------------------------------------------------------
def test_desk_messages_carry_the_handoff_payload():
    joined = render("utter_handoff_agent_joined", ticket_id="t1", agent_name="王敏")
    assert "王敏" in joined["text"]
    assert joined["custom"] == {"type": "handoff", "status": "agent_joined", "ticket_id": "t1", "agent_name": "王敏"}
    closed = bot_event(render("utter_handoff_closed", ticket_id="t1"), "t1", "closed", "王敏")
    assert closed["event"] == "bot" and closed["data"]["custom"]["status"] == "closed"
    assert closed["metadata"]["handoff"] == {"ticket_id": "t1", "kind": "closed", "agent": "王敏"}
    reply = agent_message_event("好的", "王敏", "t1")["data"]["custom"]
    assert reply == {"type": "handoff", "status": "agent_message", "ticket_id": "t1", "text": "好的",
                     "agent_name": "王敏"}
    returned = render("utter_handoff_returned_to_bot", ticket_id="t1")
    assert "12378" in returned["text"] and returned["custom"]["status"] == "returned_to_bot"


# ----- auth ----------------------------------------------------------------------------------------------
def _credentials(tmp_path, clock=None):
    from bot.db import make_engine
    from bot.handoff.credentials import CredentialStore

    url = f"sqlite:///{tmp_path / 'credentials.db'}"
    upgrade_database(url, "handoff")
    return CredentialStore(make_engine(url), **({"clock": clock} if clock else {}))


def test_agent_credentials_are_stored_hashed_and_name_the_agent(tmp_path):
    credentials = _credentials(tmp_path)
    token, issued = credentials.issue("王敏", "agent", days=30)
    assert token.startswith("dhk_") and len(token) >= 40
    with credentials.engine.connect() as conn:
        stored = json.dumps([list(map(str, row)) for row in conn.exec_driver_sql(
            "SELECT * FROM handoff_agent_credentials")], ensure_ascii=False)
    assert token not in stored and token[4:] not in stored  # only the scrypt hash and a public id
    auth = AgentAuth(credentials)
    agent = auth.authenticate(f"Bearer {token}", None)
    assert (agent.name, agent.role, agent.credential_id) == ("王敏", "agent", issued.id)
    assert auth.authenticate(f"Bearer {token}", "%E7%8E%8B%E6%95%8F").name == "王敏"  # her own name: fine
    for header, name, reason, status in [
        (None, None, "missing", 401), ("Basic abc", None, "missing", 401), ("Bearer ", None, "missing", 401),
        ("Bearer wrong", None, "unknown credential", 401), (f"Bearer {token}x", None, "unknown credential", 401),
        (f"Bearer {token}", "%E6%9D%8E%E5%BC%BA", "X-Agent-Name", 403),  # 李强
    ]:
        with pytest.raises(AuthError, match=reason) as refused:
            auth.authenticate(header, name)
        assert refused.value.status == status
    with pytest.raises(AuthError, match="role") as refused:
        auth.authenticate(f"Bearer {token}", None, roles=("compliance",))
    assert refused.value.status == 403


def test_agent_credentials_expire_and_can_be_revoked(tmp_path):
    now = [dt.datetime(2026, 12, 2, 12, 0)]
    credentials = _credentials(tmp_path, clock=lambda: now[0])
    token, issued = credentials.issue("李强", days=1)
    other, _ = credentials.issue("李强", "compliance", days=30)
    auth = AgentAuth(credentials)
    assert auth.authenticate(f"Bearer {token}").name == "李强"
    now[0] += dt.timedelta(days=1)
    with pytest.raises(AuthError, match="expired credential"):
        auth.authenticate(f"Bearer {token}")
    assert [c.id for c in credentials.credentials()] != [issued.id]  # the expired one is no longer active
    assert len(credentials.revoke(agent="李强")) == 2  # every credential of the agent not yet revoked
    with pytest.raises(AuthError, match="revoked credential"):
        auth.authenticate(f"Bearer {other}", roles=("compliance",))
    assert credentials.credentials() == [] and len(credentials.credentials(include_inactive=True)) == 2
    with pytest.raises(CredentialError, match="no active credential"):
        credentials.revoke(credential=issued.id)


@pytest.mark.parametrize("name, role, days, problem", [
    ("", "agent", 30, "printable"), ("system", "agent", 30, "printable"), ("a" * 33, "agent", 30, "printable"),
    ("王<b>", "agent", 30, "printable"), ("王敏", "admin", 30, "role"), ("王敏", "agent", 0, "1-366 days"),
    ("王敏", "agent", 400, "1-366 days"),
])
def test_bad_credential_requests_are_named(tmp_path, name, role, days, problem):
    with pytest.raises(CredentialError, match=problem):
        _credentials(tmp_path).issue(name, role, days)


def test_service_auth_takes_only_the_service_token():
    auth = ServiceAuth(INTAKE_TOKEN)
    auth.check(f"Bearer {INTAKE_TOKEN}")
    for header, reason in [(None, "missing"), (INTAKE_TOKEN, "missing"), ("Bearer ", "wrong"),
                           ("Bearer token-a-0123456789", "wrong")]:
        with pytest.raises(AuthError, match=reason):
            auth.check(header)
    with pytest.raises(AuthError, match="no intake token"):
        ServiceAuth(None).check(f"Bearer {INTAKE_TOKEN}")


# ----- webhook -------------------------------------------------------------------------------------------
def test_signature_is_hmac_sha256_of_timestamp_and_body():
    import hashlib
    import hmac

    body = b'{"event":"ticket.created"}'
    expected = "sha256=" + hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("secret", "1700000000", body) == expected
    assert verify_signature("secret", "1700000000", body, expected)
    assert not verify_signature("secret", "1700000001", body, expected)
    assert not verify_signature("other", "1700000000", body, expected)


def test_webhook_posts_signed_events_and_records_retries_and_failures(tmp_path):
    url = f"sqlite:///{tmp_path / 'hook.db'}"
    upgrade_database(url, "handoff")
    clock_now = [dt.datetime(2026, 11, 30, 2, 0)]
    store = TicketStore.from_url(url, webhook_enabled=True)
    store.clock = lambda: clock_now[0]
    ticket, _ = store.create_ticket(NewTicket("u", "socketio", 3, "user_request", {"reason": "user_request"}, []))
    receiver = WebhookReceiver(failures=1)
    try:
        notifier = WebhookNotifier(store, receiver.url, "hook-secret", max_attempts=3, retry_seconds=5)
        assert notifier.deliver_due() == 0
        (row,) = store.deliveries()
        assert row.status == "pending" and row.attempts == 1 and row.last_status_code == 500
        assert notifier.deliver_due() == 0  # not due yet
        clock_now[0] += dt.timedelta(seconds=5)
        assert notifier.deliver_due() == 1
        (row,) = store.deliveries()
        assert row.status == "delivered" and row.attempts == 2 and row.last_error is None
        headers, body = receiver.received[-1]
        assert headers["X-Handoff-Event"] == "ticket.created"
        assert verify_signature("hook-secret", headers["X-Handoff-Timestamp"], body, headers["X-Handoff-Signature"])
        payload = json.loads(body)
        assert payload["ticket"]["id"] == ticket.id and payload["event"] == "ticket.created"
    finally:
        receiver.stop()
    dead = WebhookNotifier(store, "http://127.0.0.1:9/unreachable", "hook-secret", max_attempts=1)
    store.add_note(ticket.id, "王敏", "备注")
    assert dead.deliver_due() == 0
    failed = store.deliveries()[-1]
    assert failed.status == "failed" and failed.attempts == 1 and failed.last_error


# ----- intake and the action -----------------------------------------------------------------------------
@pytest.fixture
def intake_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    upgrade_database(url, "handoff")
    return TicketStore.from_url(url)


def _context(events=CONVERSATION, slots=None, intent="request_human", sender="intake-user"):
    return HandoffContext(sender_id=sender, channel="socketio", events=events,
                          slots=slots or {"bank": "招行"}, latest_intent=intent, latest_text="转人工")


def test_intake_queues_a_ticket_and_tells_the_opening_hours(intake_store, knowledge, tmp_path):
    settings = load_settings({"HANDOFF_CONFIG": str(always_open_config(tmp_path))})
    result = open_handoff(_context(), InProcessDesk(intake_store, settings), knowledge)
    stored = intake_store.get(result.ticket_id)
    assert result.queued and result.created and stored.priority == PRIORITY_DISTRESS
    (reply,) = result.replies
    assert reply.response == "utter_handoff_queued"
    assert reply.variables["opening_hours"] == "每天全天（北京时间）"
    assert reply.variables["ticket_id"] == result.ticket_id
    assert stored.summary["intents_seen"][-1] == "request_human" and stored.reason == "user_request"
    assert (stored.sender_id, stored.channel) == ("intake-user", "socketio")
    assert "11010519491231002X" not in json.dumps(stored.transcript, ensure_ascii=False)  # masked before sending


def test_intake_outside_hours_says_so_with_official_channels_and_hotlines(intake_store, knowledge):
    # Until this release an after-hours ticket paused the conversation with nobody to answer; now it is a
    # follow-up record and the bot keeps talking (issue "Never silent when it matters").
    settings = load_settings({"HANDOFF_OPENING_HOURS": "mon-fri 09:00-18:00"})
    sunday_night = dt.datetime(2026, 12, 6, 23, 0, tzinfo=SHANGHAI)
    result = open_handoff(_context(), InProcessDesk(intake_store, settings, now=sunday_night), knowledge)
    assert not result.queued and result.follow_up
    assert intake_store.get(result.ticket_id).status == "follow_up"
    assert [r.response for r in result.replies] == [
        "utter_handoff_follow_up", "utter_bank_channel", "utter_handoff_distress_reminder"]
    assert result.replies[0].variables["nfra_hotline"] == "12378"
    assert result.replies[0].variables["opening_hours"] == "周一至周五 09:00-18:00（北京时间）"  # the desk's hours


def test_intake_after_repeated_fallback_apologises_first(intake_store, knowledge, tmp_path):
    settings = load_settings({"HANDOFF_CONFIG": str(always_open_config(tmp_path))})
    events = [_user("asdf", "nlu_fallback"), _bot("抱歉"), _user("qwer", "nlu_fallback")]
    result = open_handoff(_context(events, {}, "nlu_fallback", "fallback-user"),
                          InProcessDesk(intake_store, settings), knowledge)
    assert [r.response for r in result.replies] == ["utter_handoff_after_fallback", "utter_handoff_queued"]
    stored = intake_store.get(result.ticket_id)
    assert stored.reason == "repeated_fallback" and stored.priority == PRIORITY_OTHER


def test_intake_refreshes_the_senders_open_ticket(intake_store, knowledge, tmp_path):
    desk = InProcessDesk(intake_store, load_settings({"HANDOFF_CONFIG": str(always_open_config(tmp_path))}))
    first = open_handoff(_context(), desk, knowledge)
    again = open_handoff(_context(CONVERSATION + [_user("还在吗", "request_human")]), desk, knowledge)
    assert again.queued and again.ticket_id == first.ticket_id and first.created and not again.created
    assert len(intake_store.queue()) == 1


def test_intake_without_a_desk_is_honestly_unavailable(intake_store, knowledge):
    result = open_handoff(_context(), None, knowledge)  # no HANDOFF_DESK_URL
    assert not result.queued and result.ticket_id is None and result.problem == NOT_CONFIGURED
    assert [r.response for r in result.replies] == ["utter_handoff_unavailable", "utter_bank_channel"]
    assert intake_store.queue() == []
    unreachable = open_handoff(_context(), HttpDeskClient("http://127.0.0.1:9", INTAKE_TOKEN), knowledge)
    assert not unreachable.queued and "not reachable" in unreachable.problem
    assert [r.response for r in unreachable.replies] == ["utter_handoff_unavailable", "utter_bank_channel"]


def test_intake_with_a_broken_store_is_unavailable(knowledge, tmp_path):
    settings = load_settings({})
    unmigrated = TicketStore.from_url(f"sqlite:///{tmp_path / 'empty.db'}")
    result = open_handoff(_context(), InProcessDesk(unmigrated, settings), knowledge)
    assert not result.queued and result.problem == "the ticket store failed"


class _BrokenClient:
    def open_ticket(self, ticket):
        raise KeyError("a bug in a client")


def test_intake_with_a_failing_client_is_unavailable(knowledge):
    result = open_handoff(_context(), _BrokenClient(), knowledge)
    assert not result.queued and result.problem == "the desk client failed (KeyError)"


# ----- the action side's desk client over HTTP ---------------------------------------------------------------
class _Desk:
    """A stand-in desk on loopback answering every POST with ``status`` and ``body`` after ``delay`` seconds."""

    def __init__(self, status=201, body=b"", delay=0.0, headers=None):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        desk = self
        self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers["Content-Length"]))
                desk.requests.append((self.path, dict(self.headers), json.loads(data)))
                import time

                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except BrokenPipeError:  # the client gave up waiting
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


_GOOD = json.dumps({"ticket_id": "t1", "created": True, "open_now": False, "opening_hours": "每天全天（北京时间）"},
                   ensure_ascii=False).encode()
_TICKET = NewTicket("u1", "rest", 3, "user_request", {"reason": "user_request"}, [{"role": "user", "text": "转人工"}])


def test_the_desk_client_posts_the_ticket_with_the_service_token():
    desk = _Desk(201, _GOOD)
    try:
        answer = HttpDeskClient(desk.url + "/", INTAKE_TOKEN).open_ticket(_TICKET)
    finally:
        desk.stop()
    assert answer == IntakeAnswer("t1", True, False, "每天全天（北京时间）")
    ((path, headers, body),) = desk.requests
    assert path == "/api/intake/tickets" and headers["Authorization"] == f"Bearer {INTAKE_TOKEN}"
    assert NewTicket.from_json(body) == _TICKET


@pytest.mark.parametrize("status, body, delay, problem", [
    (500, b'{"error": "the ticket store failed"}', 0.0, "the ticket store failed"),
    (401, b'{"error": "wrong intake token"}', 0.0, "wrong intake token"),
    (502, b"<html>bad gateway</html>", 0.0, "HTTP 502"),
    (200, b"not json", 0.0, "malformed"),
    (200, b'{"ticket_id": "t1", "created": "yes", "open_now": true, "opening_hours": "x"}', 0.0, "malformed"),
    (201, _GOOD, 3.0, "not reachable"),  # slower than the 2 s timeout
])
def test_the_desk_client_turns_every_failure_into_desk_unavailable(status, body, delay, problem):
    desk = _Desk(status, body, delay)
    try:
        with pytest.raises(DeskUnavailable, match=problem):
            HttpDeskClient(desk.url, INTAKE_TOKEN).open_ticket(_TICKET)
    finally:
        desk.stop()


def test_the_desk_client_waits_two_seconds_at_most_even_for_a_desk_that_answers_drop_by_drop():
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def dripping_desk():
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(8):  # a byte every 1.5 s: no single read ever times out
            time.sleep(1.5)
            try:
                connection.sendall(b" ")
            except OSError:
                break
        connection.close()

    threading.Thread(target=dripping_desk, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(DeskUnavailable, match="no answer within 2 s"):
            HttpDeskClient(f"http://127.0.0.1:{listener.getsockname()[1]}", INTAKE_TOKEN).open_ticket(_TICKET)
    finally:
        listener.close()
    assert time.monotonic() - started < 3.0


def test_the_desk_client_uses_no_proxy_and_follows_no_redirect(monkeypatch):
    proxy = _Desk(201, _GOOD)  # would answer as a desk: it must not be asked at all
    desk = _Desk(201, _GOOD)
    moved = _Desk(302, b"", headers={"Location": desk.url + "/api/intake/tickets"})
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert HttpDeskClient(desk.url, INTAKE_TOKEN).open_ticket(_TICKET).ticket_id == "t1"
        with pytest.raises(DeskUnavailable, match="HTTP 302"):
            HttpDeskClient(moved.url, INTAKE_TOKEN).open_ticket(_TICKET)
    finally:
        for server in (proxy, desk, moved):
            server.stop()
    assert proxy.requests == [] and len(desk.requests) == 1


def test_the_desk_client_needs_the_service_token_and_a_valid_url():
    with pytest.raises(DeskUnavailable, match="HANDOFF_INTAKE_TOKEN is not set"):
        HttpDeskClient("http://127.0.0.1:9", None).open_ticket(_TICKET)
    with pytest.raises(DeskUnavailable, match="not reachable"):
        HttpDeskClient("not a url", INTAKE_TOKEN).open_ticket(_TICKET)


def test_the_contract_round_trips_and_names_bad_fields_without_their_values():
    assert NewTicket.from_json(json.loads(json.dumps(_TICKET.to_json()))) == _TICKET
    assert read_answer(201, _GOOD).ticket_id == "t1"
    with pytest.raises(ContractError, match="'sender_id'") as err:
        NewTicket.from_json({**_TICKET.to_json(), "sender_id": "x" * 300})
    assert "xxx" not in str(err.value)
    with pytest.raises(ContractError, match="'priority'"):
        NewTicket.from_json({**_TICKET.to_json(), "priority": True})
    assert NewTicket.from_json({**_TICKET.to_json(), "added_later": 1}) == _TICKET  # unknown fields are ignored


def _tracker(events, intent, text):
    return Tracker(sender_id="action-user", slots={"bank": None, "debt_type": None},
                   latest_message={"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []},
                   events=events, paused=False, followup_action=None, active_loop={},
                   latest_action_name="action_listen")


def test_action_handoff_without_a_desk_answers_unavailable_and_does_not_pause(monkeypatch):
    from actions import handoff_actions

    monkeypatch.delenv("HANDOFF_DESK_URL", raising=False)
    assert handoff_actions.desk_client() is None
    dispatcher = CollectingDispatcher()
    events = asyncio.run(handoff_actions.ActionHandoff().run(
        dispatcher, _tracker(CONVERSATION, "request_human", "转人工"), {}))
    assert events == [FollowupAction("action_listen")]
    assert [m["response"] for m in dispatcher.messages] == ["utter_handoff_unavailable"]


def test_action_handoff_with_a_desk_opens_a_ticket_and_pauses(monkeypatch, tmp_path):
    from actions import handoff_actions

    url = f"sqlite:///{tmp_path / 'action.db'}"
    upgrade_database(url, "handoff")
    monkeypatch.setenv("HANDOFF_DESK_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("HANDOFF_INTAKE_TOKEN", INTAKE_TOKEN)
    assert isinstance(handoff_actions.desk_client(), HttpDeskClient)  # what the action would use
    desk = InProcessDesk(TicketStore.from_url(url),
                         load_settings({"HANDOFF_CONFIG": str(always_open_config(tmp_path))}))
    monkeypatch.setattr(handoff_actions, "desk_client", lambda: desk)
    dispatcher = CollectingDispatcher()
    events = asyncio.run(handoff_actions.ActionHandoff().run(
        dispatcher, _tracker(CONVERSATION, "request_human", "转人工"), {}))
    assert events == [ConversationPaused()]
    (message,) = dispatcher.messages
    assert message["response"] == "utter_handoff_queued" and message["opening_hours"] == "每天全天（北京时间）"
    (ticket,) = TicketStore.from_url(url).queue()
    assert ticket.id == message["ticket_id"] and ticket.sender_id == "action-user"
    assert ticket.channel == "socketio" and ticket.priority == PRIORITY_DISTRESS


# ----- repeated misunderstandings ------------------------------------------------------------------------
def _clarify():
    return {"event": "bot", "text": "抱歉，我没有完全理解您的意思。", "metadata": {"utter_action": "utter_clarify"}}


@pytest.mark.parametrize("events, expected", [
    ([_user("asdf", "nlu_fallback")], False),
    ([_user("asdf", "nlu_fallback"), _clarify(), _user("qwer", "nlu_fallback")], True),
    ([_user("你好", "greet"), _bot("您好"), _user("qwer", "nlu_fallback")], False),
    ([_user("asdf", "nlu_fallback"), _clarify(), _user("转人工", "request_human")], False),
    # Already handed over after the previous one: do not open a ticket again at once.
    ([_user("a", "nlu_fallback"), {"event": "action", "name": "action_handoff"}, _clarify(),
      _user("b", "nlu_fallback")], False),
    # A fallback written while paused (no clarifying answer) does not count.
    ([_user("a", "nlu_fallback"), {"event": "resume"}, _user("b", "nlu_fallback")], False),
])
def test_repeated_fallback_is_the_second_misunderstanding_in_a_row(events, expected):
    assert is_repeated_fallback(events) is expected


def test_clarify_or_handoff_asks_first_and_hands_over_the_second_time():
    from actions.guidance_actions import ActionClarifyOrAnswerRisk

    action = ActionClarifyOrAnswerRisk()
    first = [_user("asdf", "nlu_fallback")]
    dispatcher = CollectingDispatcher()
    assert asyncio.run(action.run(dispatcher, _tracker(first, "nlu_fallback", "asdf"), {})) == []
    assert [m["response"] for m in dispatcher.messages] == ["utter_clarify"]
    second = first + [_clarify(), _user("qwer", "nlu_fallback")]
    dispatcher = CollectingDispatcher()
    assert asyncio.run(action.run(dispatcher, _tracker(second, "nlu_fallback", "qwer"), {})) == [
        FollowupAction("action_handoff")]
    assert dispatcher.messages == []
