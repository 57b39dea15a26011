"""Whatever happens to the action server, every message gets a useful reply from the Rasa side within seconds.

Real servers on loopback (SQLite tracker store). The action server is killed, then hung (SIGSTOP), then
replaced by a server answering HTTP 500 to everything; in each case 20 varied messages (questions, a seller's
pitch, distress, greetings, nonsense) each get, within 10 s, a non-empty reply naming an official channel, and
the distress ones the psychological assistance hotline. After each outage the real action server answers
again and the replies are normal ones.
"""
from __future__ import annotations

import http.server
import json
import os
import signal
import threading
import time
import urllib.request
import uuid

import pytest

from bot.crisis import reads_as_danger
from bot.ops.health import probe
from tests.support.servers import joined_text, post, start_test_servers, write_sqlite_endpoints

pytestmark = pytest.mark.e2e

REPLY_SECONDS = 10.0
"""The longest a reply may take while something is down."""

MESSAGES = [
    "你好",
    "您好，在吗",
    "信用卡还不上了想跟银行协商",
    "逾期三个月了会不会坐牢",
    "有人说交三千块钱就能帮我停息挂账，可信吗",
    "我们是专业债务优化团队，先交服务费，保证帮您停息挂账",
    "征信能花钱修复吗",
    "催收天天打电话骚扰我家人怎么办",
    "去哪里投诉银行",
    "我真的不想活了",
    "欠了太多钱，我想自杀",
    "撑不下去了，不如死了算了",
    "谢谢",
    "你是机器人吗",
    "asdfghjkl",
    "？？？",
    "今天天气怎么样",
    "网贷可以不还吗",
    "转人工",
    "再见",
]


@pytest.fixture(scope="module")
def outage_servers(trained_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("outages")
    running = start_test_servers(trained_model, directory, write_sqlite_endpoints(directory))
    yield running
    if running.action_server.poll() is None:
        os.kill(running.action_server.pid, signal.SIGCONT)  # in case a test stopped it and failed
    running.stop()


def _official_markers(knowledge):
    return [knowledge.fact("nfra_hotline").value, "金融消费者保护服务平台", "银行卡背面"]


def _say_all(servers, knowledge, scenario):
    """Send MESSAGES; check each reply's time, channel and (for danger) hotline; return the senders used."""
    crisis_line = knowledge.fact("psychological_hotline").value
    senders = [f"{scenario}-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    problems = []
    for index, text in enumerate(MESSAGES):
        started = time.monotonic()
        status, body = post(f"{servers.rasa_url}/webhooks/rest/webhook",
                            {"sender": senders[index % 3], "message": text}, timeout=60)
        elapsed = time.monotonic() - started
        reply = joined_text(body) if status == 200 and isinstance(body, list) else ""
        if not reply.strip():
            problems.append(f"{text!r}: no reply ({status} {body!r})")
        elif elapsed > REPLY_SECONDS:
            problems.append(f"{text!r}: replied after {elapsed:.1f} s")
        elif not any(marker in reply for marker in _official_markers(knowledge)):
            problems.append(f"{text!r}: no official channel in {reply!r}")
        elif reads_as_danger(text) and crisis_line not in reply:
            problems.append(f"{text!r}: distress without {crisis_line} in {reply!r}")
    assert problems == [], "\n".join(problems)
    return senders


def _wait_until_answering(servers, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe("action", f"{servers.action_url}/health", timeout=2).up:
            return
        time.sleep(0.5)
    raise AssertionError("the action server did not come back")


def _assert_normal_service(servers, knowledge):
    """A question answered by a custom action gets its real answer, and no outage reply, within a few tries
    (the Rasa side notices that the action server is back at its next probe, every 2 s)."""
    deadline = time.monotonic() + 30
    reply = ""
    while time.monotonic() < deadline:
        status, body = post(f"{servers.rasa_url}/webhooks/rest/webhook",
                            {"sender": f"back-{uuid.uuid4().hex[:6]}", "message": "信用卡还不上了想跟银行协商"})
        reply = joined_text(body)
        if status == 200 and "个性化分期还款" in reply and "系统暂时出了点问题" not in reply:
            return
        time.sleep(1)
    raise AssertionError(f"no normal answer after the outage: {reply!r}")


def _tracker(servers, sender):
    url = f"{servers.rasa_url}/conversations/{sender}/tracker?token={servers.config.token}"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def test_action_server_killed(outage_servers, knowledge):
    outage_servers.action_server.kill()
    outage_servers.action_server.wait()
    senders = _say_all(outage_servers, knowledge, "killed")

    # The outage replies are recorded in the background, after the reply went out: poll the record.
    deadline, outage_replies, users = time.monotonic() + 20, [], []
    while time.monotonic() < deadline and len(outage_replies) < len(MESSAGES[0::3]):
        events = _tracker(outage_servers, senders[0])["events"]
        users = [e["text"] for e in events if e["event"] == "user"]
        outage_replies = [e for e in events
                          if e["event"] == "bot" and (e.get("metadata") or {}).get("outage_fallback")]
        time.sleep(0.5)
    assert users == MESSAGES[0::3], "each message recorded once, in order"
    assert len(outage_replies) == len(MESSAGES[0::3]), "every outage reply is in the record"

    outage_servers.restart("action_server")
    _wait_until_answering(outage_servers)
    _assert_normal_service(outage_servers, knowledge)


def test_action_server_hung(outage_servers, knowledge):
    pid = outage_servers.action_server.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        _say_all(outage_servers, knowledge, "hung")
    finally:
        os.kill(pid, signal.SIGCONT)
    _wait_until_answering(outage_servers)
    _assert_normal_service(outage_servers, knowledge)


class _Failing(http.server.BaseHTTPRequestHandler):
    def _fail(self):
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"Internal Server Error")

    do_GET = do_POST = _fail

    def log_message(self, *args):
        pass


def test_action_server_answering_500(outage_servers, knowledge):
    outage_servers.action_server.terminate()
    outage_servers.action_server.wait()
    failing = http.server.ThreadingHTTPServer(("127.0.0.1", outage_servers.config.action_port), _Failing)
    thread = threading.Thread(target=failing.serve_forever, daemon=True)
    thread.start()
    try:
        status, _ = post(f"{outage_servers.action_url}/webhook", {})
        assert status == 500
        _say_all(outage_servers, knowledge, "error")
    finally:
        failing.shutdown()
        failing.server_close()
    outage_servers.restart("action_server")
    _wait_until_answering(outage_servers)
    _assert_normal_service(outage_servers, knowledge)
