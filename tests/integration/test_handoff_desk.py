"""The agent desk's HTTP API, over a real desk process (``python -m bot.handoff.desk``) on loopback.

Rasa is replaced here by a small stand-in HTTP server that records the events the desk appends (the real
Rasa is used in tests/e2e/test_handoff.py). Tickets for the agents' tests are created through the store; the
intake tests post them as the action server does (bot.handoff.intake.HttpDeskClient). Bad input is answered
with a clear 4xx and leaves the database and the conversation untouched.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from bot.db import upgrade_database
from bot.handoff.contract import INTAKE_PATH
from bot.handoff.intake import DeskUnavailable, HandoffContext, HttpDeskClient, open_handoff
from bot.handoff.notifier import verify_signature
from bot.handoff.store import CLAIMED, CLOSED, QUEUED, NewTicket, TicketStore
from bot.ops.servers import LOOPBACK
from tests.support.handoff import (
    AGENT_TOKENS,
    COMPLIANCE_TOKEN,
    INTAKE_TOKEN,
    RASA_TOKEN,
    DeskProcess,
    FakeRasa,
    WebhookReceiver,
    always_open_config,
    call,
    reference_of,
)

WANG, LI = "王敏", "李强"
WANG_TOKEN, LI_TOKEN = AGENT_TOKENS[WANG], AGENT_TOKENS[LI]


def _env(tmp, database_url, rasa, **extra):
    return {"HANDOFF_CONFIG": str(always_open_config(tmp)), "HANDOFF_DATABASE_URL": database_url,
            "RASA_URL": rasa.url, "RASA_AUTH_TOKEN": RASA_TOKEN, **extra}


@pytest.fixture(scope="module")
def rasa():
    fake = FakeRasa()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('desk') / 'handoff.db'}"
    upgrade_database(url, "handoff")
    return url


@pytest.fixture(scope="module")
def desk(tmp_path_factory, database_url, rasa):
    tmp = tmp_path_factory.mktemp("desk-run")
    process = DeskProcess(_env(tmp, database_url, rasa), tmp / "desk.log")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def store(database_url):
    return TicketStore.from_url(database_url)


_counter = iter(range(10_000))


def _ticket(store, priority=3, reason="user_request"):
    sender = f"desk-user-{next(_counter)}"
    ticket, _ = store.create_ticket(NewTicket(
        sender, "socketio", priority, reason,
        {"reason": reason, "intents_seen": ["request_human"], "situation": {"bank": "招商银行"}},
        [{"role": "user", "text": "转人工", "time": None}]))
    return ticket


def _api(desk, method, path, body=None, token=WANG_TOKEN, name=None, raw=None):
    return call(method, desk.url + path, body, token=token, agent_name=name, raw=raw)


def test_health_page_and_script_are_served(desk):
    assert call("GET", desk.url + "/health") == (200, {"status": "ok"})
    status, page = call("GET", desk.url + "/")
    assert status == 200 and "人工坐席工作台" in page and "/static/desk.js" in page
    assert "http://" not in page and "https://" not in page  # nothing from a CDN
    status, script = call("GET", desk.url + "/static/desk.js")
    assert status == 200 and "/api/tickets" in script


def test_agents_sign_in_with_their_own_credential_and_the_name_comes_from_it(desk):
    assert _api(desk, "GET", "/api/me")[1] | {"outcomes": None, "slot_labels": None} == {
        "agent": WANG, "role": "agent", "outcomes": None, "slot_labels": None, "max_reply_chars": 1000}
    assert _api(desk, "GET", "/api/me", token=LI_TOKEN, name=LI)[1]["agent"] == LI  # the own name: harmless


def test_no_sender_id_reaches_the_agents_only_the_ticket_id_and_an_opaque_reference(desk, store):
    ticket = _ticket(store)
    queued = next(t for t in _api(desk, "GET", "/api/tickets")[1]["tickets"] if t["id"] == ticket.id)
    opened = _api(desk, "GET", f"/api/tickets/{ticket.id}")[1]["ticket"]
    for view in (queued, opened):
        assert "sender_id" not in view and ticket.sender_id not in json.dumps(view, ensure_ascii=False)
        assert view["reference"] == reference_of(ticket.sender_id) != ticket.sender_id


def test_queue_lists_open_tickets_by_priority_then_age(desk, store):
    other = _ticket(store)
    distress = _ticket(store, 1, "distress")
    tickets = _api(desk, "GET", "/api/tickets")[1]["tickets"]
    ids = [t["id"] for t in tickets]
    assert ids.index(distress.id) < ids.index(other.id)
    first = next(t for t in tickets if t["id"] == distress.id)
    assert first["priority_label"] == "情绪危机" and first["reason_label"].startswith("用户表达绝望")
    assert first["status"] == QUEUED and first["age_seconds"] >= 0 and "transcript" not in first


def test_a_flood_of_distress_tickets_never_hides_a_real_crisis_and_every_ticket_is_reachable(desk, store):
    flood = [_ticket(store, 1, "distress") for _ in range(250)]
    real = _ticket(store, 1, "distress")
    store.raise_alert(real.sender_id, "我不想活了")  # the danger sentence that a real person in crisis wrote
    seen, offset, pages = [], 0, 0
    while offset is not None:
        status, page = _api(desk, "GET", f"/api/tickets?offset={offset}")
        assert status == 200
        seen += [t["id"] for t in page["tickets"]]
        offset, pages = page["next_offset"], pages + 1
    for ticket in flood + [real]:  # the store is shared by the module's tests
        store.leave(ticket.sender_id)
    assert seen[0] == real.id
    assert pages >= 3 and len(seen) == len(set(seen)) and {t.id for t in flood} <= set(seen)
    assert _api(desk, "GET", "/api/tickets?offset=x")[0] == 400


def test_personal_data_in_agent_replies_and_notes_is_masked_before_it_is_stored_or_sent(desk, store, rasa):
    ticket = _ticket(store)
    assert _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")[0] == 200
    mobile, resident_id = "13812345678", "11010519491231002X"
    status, body = _api(desk, "POST", f"/api/tickets/{ticket.id}/reply", {"text": f"请回拨{mobile}"})
    assert status == 200 and mobile not in body["sent"]
    assert mobile not in rasa.appended[ticket.sender_id][-1]["text"]
    assert _api(desk, "POST", f"/api/tickets/{ticket.id}/notes", {"text": f"身份证{resident_id}"})[0] == 201
    stored = json.dumps([n.to_dict() for n in store.notes(ticket.id)]
                        + [e.to_dict() for e in store.audit_log(ticket.id)]
                        + [d.__dict__ for d in store.deliveries(ticket.id)], ensure_ascii=False, default=str)
    assert mobile not in stored and resident_id not in stored and "[" in stored
    store.leave(ticket.sender_id)


def test_an_agent_claims_reads_replies_notes_and_closes(desk, store, rasa):
    ticket = _ticket(store)
    sender = ticket.sender_id
    status, body = _api(desk, "GET", f"/api/tickets/{ticket.id}")
    assert status == 200 and body["ticket"]["summary"]["situation"] == {"bank": "招商银行"}
    assert body["ticket"]["transcript"][0]["text"] == "转人工"

    status, body = _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")
    assert status == 200 and body["ticket"]["claimed_by"] == WANG and body["ticket"]["status"] == CLAIMED
    pause, joined = rasa.appended[sender]  # the pause holds the bot back even if the session had expired
    assert pause == {"event": "pause"}
    assert joined["event"] == "bot" and WANG in joined["text"]
    assert joined["data"]["custom"]["status"] == "agent_joined"

    status, body = _api(desk, "POST", f"/api/tickets/{ticket.id}/reply", {"text": "您好，我是客服王敏，您慢慢说。"})
    assert status == 200
    reply = rasa.appended[sender][-1]
    assert reply["text"] == "您好，我是客服王敏，您慢慢说。"
    assert reply["data"]["custom"] == {"type": "handoff", "status": "agent_message", "ticket_id": ticket.id,
                                       "text": "您好，我是客服王敏，您慢慢说。", "agent_name": WANG}

    status, body = _api(desk, "POST", f"/api/tickets/{ticket.id}/notes", {"text": "用户情绪稳定"}, token=LI_TOKEN)
    assert status == 201 and body["note"]["agent"] == LI

    rasa.trackers[sender]["events"].append(
        {"event": "user", "text": "我手机号13812345678", "timestamp": 1.0, "parse_data": {"intent": {"name": "x"}}})
    status, body = _api(desk, "GET", f"/api/tickets/{ticket.id}/transcript")
    assert status == 200 and body["live"] is True
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["bot", "agent", "user"]
    assert "13812345678" not in json.dumps(body, ensure_ascii=False)

    status, body = _api(desk, "POST", f"/api/tickets/{ticket.id}/close", {"outcome": "referred_hardship_plan"})
    assert status == 200 and body["ticket"]["status"] == CLOSED
    assert body["ticket"]["outcome"] == "referred_hardship_plan"
    resume, listen, goodbye = rasa.appended[sender][-3:]
    assert resume == {"event": "resume"} and listen["name"] == "action_listen"
    assert goodbye["data"]["custom"]["status"] == "closed" and "助手继续" in goodbye["text"]

    entries = _api(desk, "GET", f"/api/audit?ticket_id={ticket.id}")[1]["entries"]
    assert [(e["agent"], e["action"]) for e in reversed(entries)] == [
        ("system", "create"), (WANG, "view"), (WANG, "claim"), (WANG, "reply"), (LI, "note"),
        (WANG, "transcript"), (WANG, "close"), (WANG, "audit_read")]  # reads are audited too
    assert all(e["at"].endswith("Z") for e in entries)


def _unchanged(store, rasa, action):
    """Run ``action``; assert it changed nothing but the audit of refusals (bot.handoff.desk.agent_api)."""
    before_counts, before_rasa = store.counts(), json.dumps(rasa.appended, sort_keys=True)
    last_audit = max((e.id for e in store.audit_log(limit=1)), default=0)
    status, body = action()
    after = store.counts()
    assert {k: v for k, v in after.items() if k != "handoff_audit"} == {
        k: v for k, v in before_counts.items() if k != "handoff_audit"}, "a refused request changed the database"
    assert {e.action for e in store.audit_log(limit=50) if e.id > last_audit} <= {"refused"}
    assert json.dumps(rasa.appended, sort_keys=True) == before_rasa, "a refused request reached the user"
    return status, body


@pytest.mark.parametrize("method, suffix, body", [
    ("GET", "", None), ("GET", "/transcript", None), ("POST", "/claim", None),
    ("POST", "/reply", {"text": "你好"}), ("POST", "/notes", {"text": "备注"}),
    ("POST", "/close", {"outcome": "resolved"}),
])
def test_an_unknown_ticket_gets_404(desk, store, rasa, method, suffix, body):
    status, answer = _unchanged(store, rasa, lambda: _api(desk, method, f"/api/tickets/no-such-ticket{suffix}", body))
    assert status == 404 and "does not exist" in answer["error"]


def test_a_reply_to_a_closed_ticket_gets_409(desk, store, rasa):
    ticket = _ticket(store)
    _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")
    _api(desk, "POST", f"/api/tickets/{ticket.id}/close", {"outcome": "resolved"})
    status, body = _unchanged(store, rasa, lambda: _api(desk, "POST", f"/api/tickets/{ticket.id}/reply",
                                                        {"text": "还在吗？"}))
    assert status == 409 and "closed" in body["error"]
    status, body = _unchanged(store, rasa, lambda: _api(desk, "POST", f"/api/tickets/{ticket.id}/close",
                                                        {"outcome": "resolved"}))
    assert status == 409


def test_replies_need_the_claim_of_the_same_agent(desk, store, rasa):
    ticket = _ticket(store)
    status, body = _unchanged(store, rasa, lambda: _api(desk, "POST", f"/api/tickets/{ticket.id}/reply",
                                                        {"text": "你好"}))
    assert status == 409 and "claim it first" in body["error"]
    _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")
    status, body = _unchanged(store, rasa, lambda: _api(desk, "POST", f"/api/tickets/{ticket.id}/reply",
                                                        {"text": "你好"}, token=LI_TOKEN))
    assert status == 409 and WANG in body["error"]


@pytest.mark.parametrize("token, name", [
    (None, None), ("wrong-token-0123456789", None), ("shared-desk-secret-0123456789", "赵丽"), ("", None),
    ("dhk_" + "x" * 43, WANG),
])
def test_a_missing_or_wrong_agent_token_gets_401(desk, store, rasa, token, name):
    ticket = _ticket(store)
    for method, path, body in [("GET", "/api/tickets", None), ("GET", f"/api/tickets/{ticket.id}", None),
                               ("POST", f"/api/tickets/{ticket.id}/claim", None),
                               ("POST", f"/api/tickets/{ticket.id}/reply", {"text": "你好"}),
                               ("POST", f"/api/tickets/{ticket.id}/close", {"outcome": "resolved"})]:
        status, answer = _unchanged(store, rasa, lambda method=method, path=path, body=body: _api(
            desk, method, path, body, token=token, name=name))
        assert status == 401 and ("token" in answer["error"] or "credential" in answer["error"])
    assert store.get(ticket.id).status == QUEUED


def test_an_oversized_reply_gets_413(desk, store, rasa):
    ticket = _ticket(store)
    _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")
    status, body = _unchanged(store, rasa, lambda: _api(desk, "POST", f"/api/tickets/{ticket.id}/reply",
                                                        {"text": "欠" * 1001}))
    assert status == 413 and "1000 characters" in body["error"]
    status, body = _unchanged(store, rasa, lambda: _api(
        desk, "POST", f"/api/tickets/{ticket.id}/reply", raw=json.dumps({"text": "x" * 40_000}).encode()))
    assert status == 413
    status, body = _unchanged(store, rasa, lambda: _api(desk, "POST", f"/api/tickets/{ticket.id}/notes",
                                                        {"text": "注" * 1001}))
    assert status == 413


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "JSON object"), (b'"text"', "JSON object"), (b'{"text": 42}', "'text' is required"),
    (b'{"text": "   "}', "'text' is required"),
])
def test_a_malformed_reply_gets_400(desk, store, rasa, raw, reason):
    ticket = _ticket(store)
    _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")
    status, body = _unchanged(store, rasa, lambda: _api(desk, "POST", f"/api/tickets/{ticket.id}/reply", raw=raw))
    assert status == 400 and reason in body["error"]


def test_an_unknown_outcome_gets_400(desk, store, rasa):
    ticket = _ticket(store)
    _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")
    status, body = _unchanged(store, rasa, lambda: _api(desk, "POST", f"/api/tickets/{ticket.id}/close",
                                                        {"outcome": "gave_up"}))
    assert status == 400 and "referred_12378" in body["error"]
    assert store.get(ticket.id).status == CLAIMED


def test_when_rasa_refuses_the_message_nothing_changes(desk, store, rasa):
    ticket = _ticket(store)
    rasa.fail = True
    try:
        status, body = _unchanged(store, rasa, lambda: _api(desk, "POST", f"/api/tickets/{ticket.id}/claim"))
    finally:
        rasa.fail = False
    assert status == 502 and "nothing was changed" in body["error"]
    assert store.get(ticket.id).status == QUEUED


def test_two_agents_claiming_the_same_ticket_at_once_exactly_one_wins(desk, store, rasa):
    for _ in range(5):
        ticket = _ticket(store)
        barrier = threading.Barrier(2)
        results = {}

        def claim(name, token, barrier=barrier, results=results, ticket=ticket):
            barrier.wait()
            results[name] = _api(desk, "POST", f"/api/tickets/{ticket.id}/claim", token=token)

        threads = [threading.Thread(target=claim, args=(n, t)) for n, t in ((WANG, WANG_TOKEN), (LI, LI_TOKEN))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        statuses = sorted(status for status, _ in results.values())
        assert statuses == [200, 409], results
        winner = next(name for name, (status, _) in results.items() if status == 200)
        assert store.get(ticket.id).claimed_by == winner
        assert len(rasa.bot_texts(ticket.sender_id)) == 1  # the user is told once who joined
        assert [e.agent for e in store.audit_log(ticket.id) if e.action == "claim"] == [winner]


def test_unclaimed_tickets_go_back_to_the_bot_silent_agents_are_released_and_webhooks_are_signed(
        tmp_path, rasa):
    # Until this release an unclaimed ticket got one notice and stayed queued, the bot paused with nobody
    # coming; the issue "Never silent when it matters" forbids that: the bot now takes the conversation back.
    url = f"sqlite:///{tmp_path / 'timeouts.db'}"
    upgrade_database(url, "handoff")
    receiver = WebhookReceiver(failures=1)
    env = _env(tmp_path, url, rasa, HANDOFF_CLAIM_TIMEOUT_SECONDS="2", HANDOFF_CHECK_INTERVAL_SECONDS="1",
               HANDOFF_AGENT_SILENCE_SECONDS="2",
               HANDOFF_WEBHOOK_URL=receiver.url, HANDOFF_WEBHOOK_SECRET="hook-secret-0123")
    desk = DeskProcess(env, tmp_path / "desk.log")
    try:
        store = TicketStore.from_url(url, webhook_enabled=True)
        plain, distress, held = _ticket(store), _ticket(store, 1, "distress"), _ticket(store)
        assert _api(desk, "POST", f"/api/tickets/{held.id}/claim")[0] == 200  # then silence
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (rasa.bot_texts(plain.sender_id)
                                                   and rasa.bot_texts(distress.sender_id)
                                                   and len(rasa.bot_texts(held.sender_id)) >= 2):
            time.sleep(0.5)
        time.sleep(2)  # further rounds must not repeat the message
        resume, listen, told = rasa.appended[plain.sender_id]
        assert resume == {"event": "resume"} and listen["name"] == "action_listen"
        assert told["data"]["custom"]["status"] == "returned_to_bot"
        assert "暂时没有客服能接入" in told["text"] and "12378" in told["text"]
        assert "在这里回复您" not in told["text"]
        assert store.get(plain.id).status == "follow_up" and store.get(plain.id).returned_at is not None
        wait_message, hotlines = rasa.bot_texts(distress.sender_id)
        assert "12356" in hotlines

        joined, released = rasa.bot_texts(held.sender_id)[:2]
        assert WANG in joined and WANG in released and "重新排队" in released
        released_event = [e for e in rasa.appended[held.sender_id] if e.get("event") == "bot"][1]
        assert released_event["data"]["custom"]["status"] == "released"
        audit = [(e.agent, e.action, e.detail.get("reason")) for e in store.audit_log(held.id)]
        assert ("system", "release", "silence") in audit
        # Released back to the queue, then unclaimed again: back to the bot as well.
        assert store.get(held.id).status in ("queued", "follow_up") and store.get(held.id).claimed_by is None

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(d.status == "pending" for d in store.deliveries()):
            time.sleep(0.5)
        deliveries = store.deliveries()
        assert {"ticket.created", "ticket.timeout", "ticket.claimed", "ticket.released"} <= {
            d.event for d in deliveries}
        assert all(d.status == "delivered" for d in deliveries), deliveries
        assert any(d.attempts == 2 and d.last_status_code in (200, 204) for d in deliveries)  # one retry
        for headers, body in receiver.received:
            assert verify_signature("hook-secret-0123", headers["X-Handoff-Timestamp"], body,
                                    headers["X-Handoff-Signature"])
            payload = json.loads(body)  # the external desk gets the ticket id and a reference, never the sender
            assert "sender_id" not in payload["ticket"] and payload["ticket"]["reference"].startswith("ref-")
            assert not any(t.sender_id in body.decode("utf-8") for t in (plain, distress, held))
    finally:
        desk.stop()
        receiver.stop()


def test_the_desk_migrates_postgresql_at_start_up_and_serves_from_it(tmp_path, rasa):
    from tests.support.handoff import PG_HOST, PG_PORT, postgres_reachable, throwaway_postgres

    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    with throwaway_postgres() as url:
        desk = DeskProcess(_env(tmp_path, url, rasa), tmp_path / "desk.log")  # runs the migrations
        try:
            store = TicketStore.from_url(url)
            ticket = _ticket(store, 2, "agency_victim")
            assert [t["id"] for t in _api(desk, "GET", "/api/tickets")[1]["tickets"]] == [ticket.id]
            assert _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")[0] == 200
            assert _api(desk, "POST", f"/api/tickets/{ticket.id}/close", {"outcome": "police_report_advised"})[0] == 200
            assert store.get(ticket.id).outcome == "police_report_advised"
            store.engine.dispose()
        finally:
            desk.stop()


# ----- the intake route (the action server's) ------------------------------------------------------------------
def _new_ticket(sender, priority=3, reason="user_request", lines=1, text="转人工"):
    return NewTicket(sender, "socketio", priority, reason,
                     {"reason": reason, "intents_seen": ["request_human"], "situation": {"bank": "招商银行"}},
                     [{"role": "user", "text": text, "time": None}] * lines)


def test_the_action_server_hands_a_ticket_over_with_the_service_token(desk, store):
    sender = f"intake-user-{next(_counter)}"
    client = HttpDeskClient(desk.url, INTAKE_TOKEN)
    first = client.open_ticket(_new_ticket(sender, 2, "agency_victim"))
    assert first.created and first.open_now and first.opening_hours == "每天全天（北京时间）"
    stored = store.get(first.ticket_id)
    assert (stored.sender_id, stored.channel, stored.priority, stored.reason, stored.status) == (
        sender, "socketio", 2, "agency_victim", QUEUED)
    assert stored.summary["situation"] == {"bank": "招商银行"} and stored.transcript[0]["text"] == "转人工"

    again = client.open_ticket(_new_ticket(sender, 1, "distress", text="还在吗"))
    assert again.ticket_id == first.ticket_id and not again.created
    assert store.get(first.ticket_id).priority == 1 and store.get(first.ticket_id).transcript[0]["text"] == "还在吗"
    assert [(e.agent, e.action) for e in reversed(store.audit_log(first.ticket_id))] == [
        ("system", "create"), ("system", "refresh")]
    queued = [t for t in _api(desk, "GET", "/api/tickets")[1]["tickets"] if t["reference"] == reference_of(sender)]
    assert [t["id"] for t in queued] == [first.ticket_id]


def test_open_handoff_over_http_queues_the_user_with_the_desks_hours(desk, store, knowledge):
    assert _api(desk, "GET", "/api/me")[0] == 200  # an agent is at the desk
    context = HandoffContext(f"intake-user-{next(_counter)}", "socketio", [], {"bank": None}, "request_human",
                             "转人工")
    result = open_handoff(context, HttpDeskClient(desk.url, INTAKE_TOKEN), knowledge)
    assert result.queued and result.created and result.problem is None
    (reply,) = result.replies
    assert reply.response == "utter_handoff_queued" and reply.variables["opening_hours"] == "每天全天（北京时间）"
    assert store.get(result.ticket_id).sender_id == context.sender_id
    assert store.get(result.ticket_id).status == QUEUED


def test_a_rest_user_is_never_queued_even_with_agents_on_duty(desk, store, knowledge):
    assert _api(desk, "GET", "/api/presence")[1]["agents_on_duty"] is True
    context = HandoffContext(f"intake-user-{next(_counter)}", "rest", [], {"bank": None}, "request_human", "转人工")
    result = open_handoff(context, HttpDeskClient(desk.url, INTAKE_TOKEN), knowledge)
    assert not result.queued and result.follow_up and result.created
    assert [r.response for r in result.replies] == ["utter_handoff_follow_up_no_push"]
    assert store.get(result.ticket_id).status == "follow_up"


def _paused(desk, sender, kind, text=None, token=RASA_TOKEN):
    return call("POST", desk.url + "/api/intake/paused-message", {"sender_id": sender, "kind": kind, "text": text},
                token=token)


def test_the_paused_message_route_prioritises_danger_and_closes_on_leave(desk, store, rasa):
    plain, other = _ticket(store), _ticket(store, 2, "agency_victim")
    assert _paused(desk, plain.sender_id, "message") == (200, {
        "ticket_id": plain.id, "status": "queued", "hold": True, "prioritised": False, "closed": False})
    status, answer = _paused(desk, plain.sender_id, "danger", "我不想活了，我的手机13812345678")
    assert status == 200 and answer["prioritised"] and answer["hold"]
    alerted = store.get(plain.id)
    assert alerted.priority == 1 and alerted.alert_text.startswith("我不想活了")
    assert "13812345678" not in alerted.alert_text  # masked again by the desk
    queue = _api(desk, "GET", "/api/tickets")[1]["tickets"]
    assert queue[0]["id"] == plain.id and queue[0]["alert_text"] == alerted.alert_text  # top, sentence visible
    assert other.id in [t["id"] for t in queue]

    status, answer = _paused(desk, plain.sender_id, "leave")
    assert status == 200 and answer["closed"] and not answer["hold"]
    left = store.get(plain.id)
    assert left.status == "closed" and left.outcome == "user_left" and left.closed_by == "user"
    assert _paused(desk, plain.sender_id, "message")[1] == {
        "ticket_id": None, "status": None, "hold": False, "prioritised": False, "closed": False}
    assert ("user", "alert") in {(e.agent, e.action) for e in store.audit_log(plain.id)}


@pytest.mark.parametrize("token", [None, WANG_TOKEN, "wrong-gate-token-0123456789"])
def test_the_paused_message_route_takes_only_the_service_or_rasa_token(desk, store, rasa, token):
    ticket = _ticket(store)
    status, _ = _unchanged(store, rasa, lambda: _paused(desk, ticket.sender_id, "leave", token=token))
    assert status == 401
    assert _paused(desk, ticket.sender_id, "message", token=INTAKE_TOKEN)[0] == 200


def test_an_agent_releases_a_ticket_and_the_user_is_told(desk, store, rasa):
    ticket = _ticket(store)
    assert _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")[0] == 200
    assert _api(desk, "POST", f"/api/tickets/{ticket.id}/release", token=LI_TOKEN)[0] == 409  # not Li's
    status, body = _api(desk, "POST", f"/api/tickets/{ticket.id}/release")
    assert status == 200 and body["ticket"]["status"] == QUEUED and body["ticket"]["claimed_by"] is None
    released = rasa.appended[ticket.sender_id][-1]
    assert released["data"]["custom"]["status"] == "released" and WANG in released["text"]
    assert _api(desk, "POST", f"/api/tickets/{ticket.id}/claim", token=LI_TOKEN)[0] == 200  # the next agent


def test_a_reply_the_channel_could_not_deliver_is_reported_as_not_delivered(desk, store, rasa):
    ticket = _ticket(store)
    assert _api(desk, "POST", f"/api/tickets/{ticket.id}/claim")[0] == 200
    before = len(rasa.appended[ticket.sender_id])
    rasa.undeliverable.add(ticket.sender_id)
    try:
        status, body = _api(desk, "POST", f"/api/tickets/{ticket.id}/reply", {"text": "您好，还在吗？"})
    finally:
        rasa.undeliverable.discard(ticket.sender_id)
    assert status == 502 and body["delivered"] is False and "not delivered" in body["error"]
    assert len(rasa.appended[ticket.sender_id]) == before
    actions = [e.action for e in store.audit_log(ticket.id)]
    assert "reply_undelivered" in actions and "reply" not in actions
    # The widget is still gone: releasing and closing change the state anyway, the notices wait in the transcript.
    rasa.undeliverable.add(ticket.sender_id)
    try:
        assert _api(desk, "POST", f"/api/tickets/{ticket.id}/close", {"outcome": "no_response"})[0] == 200
    finally:
        rasa.undeliverable.discard(ticket.sender_id)
    assert {"event": "resume"} in rasa.appended[ticket.sender_id]
    assert store.get(ticket.id).status == CLOSED

    rest, _ = store.create_ticket(NewTicket(f"desk-rest-{next(_counter)}", "rest", 3, "user_request",
                                            {"reason": "user_request"}, []), "follow_up")
    assert _api(desk, "POST", f"/api/tickets/{rest.id}/claim")[0] == 200
    status, body = _api(desk, "POST", f"/api/tickets/{rest.id}/reply", {"text": "您好"})
    assert status == 409 and body["delivered"] is False
    assert rest.sender_id not in rasa.appended  # nothing was sent, not even the join notice


@pytest.mark.parametrize("token", [None, "", "wrong-intake-token-0123456789", WANG_TOKEN, COMPLIANCE_TOKEN])
def test_the_intake_route_takes_only_the_service_token(desk, store, rasa, token):
    body = _new_ticket(f"intake-refused-{next(_counter)}").to_json()
    status, answer = _unchanged(store, rasa, lambda: call("POST", desk.url + INTAKE_PATH, body, token=token,
                                                          agent_name="赵丽"))
    assert status == 401 and "intake token" in answer["error"]
    with pytest.raises(DeskUnavailable, match="intake token"):
        HttpDeskClient(desk.url, token or "x").open_ticket(_new_ticket("intake-refused"))


def test_the_service_token_is_not_an_agent_credential(desk, store, rasa):
    for name in (None, "赵丽"):
        status, answer = _unchanged(store, rasa, lambda name=name: _api(desk, "GET", "/api/tickets",
                                                                        token=INTAKE_TOKEN, name=name))
        assert status == 401 and "unknown credential" in answer["error"]


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "JSON object"), (b'["a"]', "JSON object"),
    (b'{"channel": "rest", "priority": 3, "reason": "user_request", "summary": {}, "transcript": []}',
     "'sender_id'"),
    (b'{"sender_id": "u", "channel": "rest", "priority": 7, "reason": "user_request", "summary": {},'
     b' "transcript": []}', "'priority'"),
    (b'{"sender_id": "u", "channel": "rest", "priority": 3, "reason": "bored", "summary": {}, "transcript": []}',
     "'reason'"),
    (b'{"sender_id": "u", "channel": "rest", "priority": 3, "reason": "user_request", "summary": [],'
     b' "transcript": []}', "'summary'"),
    (b'{"sender_id": "u", "channel": "rest", "priority": 3, "reason": "user_request", "summary": {},'
     b' "transcript": ["hi"]}', "'transcript'"),
    (b'{"sender_id": "u", "channel": "rest", "priority": 3, "reason": "user_request", "summary": {},'
     b' "transcript": [{"role": 5, "text": {"a": 1}}]}', "'transcript' line"),
    (b'{"sender_id": "u", "channel": "rest", "priority": 3, "reason": "user_request", "summary": {"amount": NaN},'
     b' "transcript": []}', "NaN"),
])
def test_a_malformed_ticket_gets_400(desk, store, rasa, raw, reason):
    status, answer = _unchanged(store, rasa, lambda: call("POST", desk.url + INTAKE_PATH, raw=raw,
                                                          token=INTAKE_TOKEN))
    assert status == 400 and reason in answer["error"]
    assert '"u"' not in answer["error"] and "bored" not in answer["error"]  # fields are named, values never quoted


def test_the_intake_route_takes_long_transcripts_and_refuses_huge_bodies(desk, store, rasa):
    long_ticket = _new_ticket(f"intake-long-{next(_counter)}", lines=200, text="欠" * 200)
    assert len(json.dumps(long_ticket.to_json(), ensure_ascii=False).encode()) > 16 * 1024  # over the agents' limit
    answer = HttpDeskClient(desk.url, INTAKE_TOKEN).open_ticket(long_ticket)
    assert answer.created and len(store.get(answer.ticket_id).transcript) == 200
    status, answer = _unchanged(store, rasa, lambda: _declare_a_huge_body(desk))
    assert status == 413 and "larger than" in answer["error"]


def _declare_a_huge_body(desk):
    """Announce a 5 MiB ticket and send none of it: the answer must come before the body (raw socket, since an
    HTTP client sends the whole body before it reads)."""
    head = (f"POST {INTAKE_PATH} HTTP/1.1\r\nHost: {LOOPBACK}\r\nAuthorization: Bearer {INTAKE_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {5 * 1024 * 1024}\r\n\r\n").encode()
    with socket.create_connection((LOOPBACK, desk.port), timeout=10) as conn:
        conn.sendall(head)
        answer = http.client.HTTPResponse(conn)
        answer.begin()
        return answer.status, json.loads(answer.read(answer.length or 4096))


def test_the_desk_masks_what_it_stores_whatever_the_action_side_sent(desk, store):
    """A ticket is masked by the action server; the desk masks it again, so that a sender with the token that
    skipped the masking (or a future bug) cannot put an ID number in front of the agents."""
    raw_id = "110105194912310021"
    ticket = NewTicket(f"intake-mask-{next(_counter)}", "rest", 3, "user_request",
                       {"reason": "user_request", "last_user_message": f"身份证{raw_id}"},
                       [{"role": "user", "text": f"我的身份证{raw_id}", "time": None}])
    answer = HttpDeskClient(desk.url, INTAKE_TOKEN).open_ticket(ticket)
    stored = store.get(answer.ticket_id)
    assert raw_id not in json.dumps(stored.summary, ensure_ascii=False)
    assert raw_id not in json.dumps(stored.transcript, ensure_ascii=False)
    assert "已隐藏]" in stored.transcript[0]["text"]


def test_the_desk_refuses_to_start_without_an_intake_token(tmp_path, database_url, rasa):
    with pytest.raises(RuntimeError, match="HANDOFF_INTAKE_TOKEN"):
        DeskProcess(_env(tmp_path, database_url, rasa, HANDOFF_INTAKE_TOKEN=""), tmp_path / "desk.log")
    with pytest.raises(RuntimeError, match="HANDOFF_INTAKE_TOKEN must differ"):
        DeskProcess(_env(tmp_path, database_url, rasa, HANDOFF_INTAKE_TOKEN=RASA_TOKEN + "-0123456789",
                         RASA_AUTH_TOKEN=RASA_TOKEN + "-0123456789"), tmp_path / "desk2.log")


@pytest.mark.parametrize("variable", ["HANDOFF_SHARED_SECRET", "HANDOFF_AGENT_TOKENS"])
def test_the_desk_refuses_to_start_with_a_shared_secret_or_plaintext_tokens(tmp_path, database_url, rasa, variable):
    with pytest.raises(RuntimeError, match=f"{variable} is no longer accepted"):
        DeskProcess(_env(tmp_path, database_url, rasa, **{variable: "王敏=shared-desk-secret-0123456789"}),
                    tmp_path / "desk.log")


def _refusals(store, since):
    return [e for e in store.audit_log(limit=100) if e.id > since and e.action == "refused"]


def _last_audit_id(store):
    return max((e.id for e in store.audit_log(limit=1)), default=0)


def test_x_agent_name_naming_someone_else_is_refused_and_audited(desk, store, rasa):
    ticket = _ticket(store)
    since = _last_audit_id(store)
    for method, path, body in [("GET", "/api/me", None), ("POST", f"/api/tickets/{ticket.id}/claim", None)]:
        status, answer = _unchanged(store, rasa, lambda method=method, path=path, body=body: _api(
            desk, method, path, body, token=WANG_TOKEN, name=LI))
        assert status == 403 and "X-Agent-Name" in answer["error"]
    assert store.get(ticket.id).status == QUEUED and store.get(ticket.id).claimed_by is None
    refused = _refusals(store, since)
    assert len(refused) == 2 and {e.agent for e in refused} == {WANG}
    assert all(e.detail["status"] == 403 and e.detail["credential"] for e in refused)
    assert WANG_TOKEN not in json.dumps([e.to_dict() for e in store.audit_log()], ensure_ascii=False)


def test_a_revoked_or_expired_credential_is_refused_and_audited(desk, store, database_url, rasa):
    import datetime as dt

    from bot.db import make_engine
    from bot.handoff.credentials import CredentialStore

    engine = make_engine(database_url)
    try:
        credentials = CredentialStore(engine)
        revoked_token, revoked = credentials.issue("陈静", "agent", days=30)
        assert _api(desk, "GET", "/api/me", token=revoked_token)[1]["agent"] == "陈静"
        credentials.revoke(credential=revoked.id)
        past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=3)
        expired_token, expired = CredentialStore(engine, clock=lambda: past).issue("周凯", "agent", days=1)
    finally:
        engine.dispose()
    since = _last_audit_id(store)
    for token, reason in ((revoked_token, "revoked credential"), (expired_token, "expired credential")):
        status, answer = _unchanged(store, rasa, lambda token=token: _api(desk, "GET", "/api/tickets", token=token))
        assert status == 401 and reason in answer["error"]
    refused = _refusals(store, since)
    assert [(e.agent, e.detail["credential"], e.detail["reason"].split(":")[0]) for e in reversed(refused)] == [
        ("陈静", revoked.id, "revoked credential"), ("周凯", expired.id, "expired credential")]


def test_a_compliance_credential_reads_the_audit_but_does_not_work_tickets(desk, store, rasa):
    ticket = _ticket(store)
    assert _api(desk, "GET", "/api/me", token=COMPLIANCE_TOKEN)[1]["role"] == "compliance"
    for method, path in [("GET", "/api/tickets"), ("GET", f"/api/tickets/{ticket.id}"),
                         ("GET", f"/api/tickets/{ticket.id}/transcript"), ("POST", f"/api/tickets/{ticket.id}/claim")]:
        status, answer = _unchanged(store, rasa, lambda method=method, path=path: _api(
            desk, method, path, token=COMPLIANCE_TOKEN))
        assert status == 403 and "compliance" in answer["error"]
    assert _api(desk, "GET", "/api/audit", token=COMPLIANCE_TOKEN)[0] == 200


def test_every_desk_read_is_audited_with_who_read_what(desk, store):
    ticket = _ticket(store)
    since = _last_audit_id(store)
    assert _api(desk, "GET", "/api/tickets")[0] == 200
    assert _api(desk, "GET", f"/api/tickets/{ticket.id}")[0] == 200
    assert _api(desk, "GET", f"/api/tickets/{ticket.id}/transcript")[0] == 200
    assert _api(desk, "GET", "/api/audit", token=COMPLIANCE_TOKEN)[0] == 200
    rows = [(e.agent, e.action, e.ticket_id) for e in reversed(store.audit_log(limit=100)) if e.id > since]
    assert rows == [(WANG, "queue", None), (WANG, "view", ticket.id), (WANG, "transcript", ticket.id),
                    ("赵丽", "audit_read", None)]


def test_a_refused_intake_request_is_audited(desk, store):
    since = _last_audit_id(store)
    assert call("POST", desk.url + INTAKE_PATH, {}, token="wrong-intake-token-0123456789")[0] == 401
    (refused,) = _refusals(store, since)
    assert refused.agent == "unknown" and refused.detail["path"] == INTAKE_PATH
