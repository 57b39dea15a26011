"""The desk's compliance page and its routes (bot/handoff/desk/compliance_api.py), over a real desk process on
loopback reading a compliance record filled from the generated sample: only a ``compliance`` credential reads
it, every read is audited, and the CSV and charts are exactly what ``python -m bot report`` gives."""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from bot.handoff.store import TicketStore
from tests.support.compliance import SAMPLE_END, cli_report, fill_compliance_record
from tests.support.handoff import (
    AGENT_TOKENS,
    COMPLIANCE_TOKEN,
    RASA_TOKEN,
    DeskProcess,
    FakeRasa,
    always_open_config,
    call,
)

AGENT_TOKEN = AGENT_TOKENS["王敏"]
START, END = "2026-11-17", SAMPLE_END.isoformat()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    """``(url, expected, sender ids)`` of a compliance record holding 14 generated days up to SAMPLE_END."""
    url = f"sqlite:///{tmp_path_factory.mktemp('compliance') / 'compliance.db'}"
    expected, senders = fill_compliance_record(url)
    return url, expected, senders


@pytest.fixture(scope="module")
def desk(tmp_path_factory, record):
    tmp = tmp_path_factory.mktemp("compliance-desk")
    rasa = FakeRasa()
    process = DeskProcess({"HANDOFF_CONFIG": str(always_open_config(tmp)),
                           "HANDOFF_DATABASE_URL": f"sqlite:///{tmp / 'handoff.db'}",
                           "RASA_URL": rasa.url, "RASA_AUTH_TOKEN": RASA_TOKEN,
                           "COMPLIANCE_DATABASE_URL": record[0]}, tmp / "desk.log")
    process.store = TicketStore.from_url(f"sqlite:///{tmp / 'handoff.db'}")
    yield process
    process.stop()
    rasa.stop()


def _get(desk, path, token=COMPLIANCE_TOKEN, **query):
    """``(status, headers, body bytes)`` of a GET with the credential ``token`` (None: without one)."""
    url = desk.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def _since(desk):
    return max((e.id for e in desk.store.audit_log(limit=1)), default=0)


def _audited(desk, since):
    return [(e.agent, e.action, e.detail) for e in reversed(desk.store.audit_log(limit=100)) if e.id > since]


@pytest.mark.parametrize("path", ["/api/compliance/report", "/api/compliance/report.csv"])
def test_agents_and_callers_without_a_credential_are_refused_and_the_refusal_is_audited(desk, path):
    since = _since(desk)
    status, _, body = _get(desk, path, token=None)
    assert status == 401 and "token" in json.loads(body)["error"]
    status, _, body = _get(desk, path, token=AGENT_TOKEN, **{"from": START, "to": END})
    assert status == 403 and "'agent' may not do this" in json.loads(body)["error"]
    status, _, _ = _get(desk, path, token="dhk_not-issued-0123456789abcdefghijklmn")
    assert status == 401
    rows = _audited(desk, since)
    assert [(agent, action, detail["status"]) for agent, action, detail in rows] == [
        ("unknown", "refused", 401), ("王敏", "refused", 403), ("unknown", "refused", 401)]
    assert all(detail["path"] == path for _, _, detail in rows)


def test_the_compliance_role_gets_the_report_and_its_charts_exactly_as_the_command_gives_them(desk, record,
                                                                                              tmp_path):
    url, expected, _ = record
    status, headers, body = _get(desk, "/api/compliance/report", **{"from": START, "to": END, "by": "week"})
    assert status == 200 and headers["Cache-Control"] == "no-store"
    data = json.loads(body)
    assert data["report"] == json.loads(cli_report(url, START, END, "week", "json"))
    assert sum(g["conversations"] for g in data["report"]["groups"]) == expected.conversations
    # Tuesday 17th .. Monday 30th: three ISO weeks
    assert [g["group"] for g in data["report"]["groups"]] == ["2026-W47", "2026-W48", "2026-W49"]
    cli_report(url, START, END, "week", "table", charts=tmp_path)
    for name in ("conversations", "referrals"):
        prefix, encoded = data["charts"][name].split(",", 1)
        assert prefix == "data:image/png;base64"
        png = base64.b64decode(encoded)
        assert png.startswith(PNG_SIGNATURE) and png == (tmp_path / f"{name}.png").read_bytes()


@pytest.mark.parametrize("by", ["day", "channel", "tactic"])
def test_the_csv_download_is_byte_for_byte_the_commands_csv_for_the_same_range(desk, record, by):
    url, expected, _ = record
    status, headers, body = _get(desk, "/api/compliance/report.csv", **{"from": START, "to": END, "by": by})
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == f'attachment; filename="compliance-report_{START}_{END}_by-{by}.csv"'
    assert body == cli_report(url, START, END, by, "csv")
    lines = body.decode("utf-8").splitlines()
    assert lines[0].startswith("group,conversations,risk_conversations,")
    if by == "channel":
        assert sum(int(line.split(",")[1]) for line in lines[1:]) == expected.conversations
        assert {line.split(",")[0] for line in lines[1:]} == set(expected.by_channel)


def test_without_a_range_the_page_reports_on_the_commands_default_period(desk):
    status, _, body = _get(desk, "/api/compliance/report")
    report = json.loads(body)["report"]
    assert status == 200 and report["by"] == "day"
    import datetime as dt

    start, end = dt.date.fromisoformat(report["from"]), dt.date.fromisoformat(report["to"])
    assert (end - start).days == 27


@pytest.mark.parametrize("query, message", [
    ({"from": "2026-13-01", "to": END}, "'from' must be a date written YYYY-MM-DD, not '2026-13-01'"),
    ({"from": START, "to": "30.11.2026"}, "'to' must be a date written YYYY-MM-DD, not '30.11.2026'"),
    ({"from": END, "to": START}, f"'to' ({START}) is before 'from' ({END})"),
    ({"from": "2024-01-01", "to": END}, "the range has 1065 days; the page reports on at most 366 at a time"),
    ({"from": START, "to": END, "by": "month"}, "'by' must be one of day, week, channel, segment, tactic, bank, "
                                               "debt_type, not 'month'"),
])
@pytest.mark.parametrize("path", ["/api/compliance/report", "/api/compliance/report.csv"])
def test_a_bad_range_or_grouping_is_a_400_that_says_what_is_wrong_and_is_no_read(desk, path, query, message):
    since = _since(desk)
    status, headers, body = _get(desk, path, **query)
    assert (status, json.loads(body)) == (400, {"error": message})
    assert _audited(desk, since) == []


def test_every_read_and_download_is_audited_with_who_what_range_and_grouping(desk):
    since = _since(desk)
    assert _get(desk, "/api/compliance/report", **{"from": START, "to": END, "by": "segment"})[0] == 200
    assert _get(desk, "/api/compliance/report.csv", **{"from": START, "to": END, "by": "bank"})[0] == 200
    rows = _audited(desk, since)
    assert [(agent, action, {k: detail[k] for k in ("from", "to", "by")}) for agent, action, detail in rows] == [
        ("赵丽", "compliance_report", {"from": START, "to": END, "by": "segment"}),
        ("赵丽", "compliance_export", {"from": START, "to": END, "by": "bank"})]


def test_no_personal_data_reaches_the_page(desk, record):
    _, _, senders = record
    for path in ("/api/compliance/report", "/api/compliance/report.csv"):
        for by in ("day", "bank", "tactic"):
            status, _, body = _get(desk, path, **{"from": START, "to": END, "by": by})
            text = body.decode("utf-8")
            assert status == 200 and senders
            assert not any(sender in text for sender in senders)
            assert "示例消息" not in text and "sender" not in text  # the users' words and ids are not in it
    status, page = call("GET", desk.url + "/compliance")
    assert status == 200 and "合规报表" in page and "/static/compliance.js" in page
    assert "http://" not in page and "https://" not in page  # nothing from a CDN
    status, script = call("GET", desk.url + "/static/compliance.js")
    assert status == 200 and "/api/compliance/report.csv" in script


def test_a_compliance_record_that_cannot_be_opened_is_a_503_and_the_desk_keeps_working(tmp_path):
    rasa = FakeRasa()
    desk = DeskProcess({"HANDOFF_CONFIG": str(always_open_config(tmp_path)),
                        "HANDOFF_DATABASE_URL": f"sqlite:///{tmp_path / 'handoff.db'}",
                        "RASA_URL": rasa.url, "RASA_AUTH_TOKEN": RASA_TOKEN,
                        "COMPLIANCE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/compliance"},
                       tmp_path / "desk.log")
    try:
        for path in ("/api/compliance/report", "/api/compliance/report.csv"):
            status, _, body = _get(desk, path)
            assert (status, json.loads(body)) == (503, {"error": "compliance record unavailable: OperationalError"})
        assert call("GET", desk.url + "/health") == (200, {"status": "ok"})
        assert call("GET", desk.url + "/api/tickets", token=AGENT_TOKEN)[0] == 200
    finally:
        desk.stop()
        rasa.stop()
