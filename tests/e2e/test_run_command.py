"""The README's run path: ``python -m bot run`` serves on loopback (Rasa, actions and the agent desk), and
Ctrl-C stops everything it started."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from bot import PROJECT_ROOT
from bot.ops.servers import free_port
from tests.support.handoff import call
from tests.support.servers import joined_text, post

pytestmark = pytest.mark.e2e


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _issue_agent(database_url: str, name: str) -> str:
    """A desk credential issued with the command the README gives (``python -m bot agents issue``); its token."""
    issued = subprocess.run([sys.executable, "-m", "bot", "agents", "issue", name], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HANDOFF_DATABASE_URL": database_url})
    assert issued.returncode == 0, issued.stdout + issued.stderr
    return issued.stdout.strip().splitlines()[-1]


def test_run_serves_and_ctrl_c_stops_all_servers(trained_model, tmp_path):
    rasa_port, action_port, desk_port = free_port(), free_port(), free_port()
    agent_token = _issue_agent(f"sqlite:///{tmp_path / 'handoff.db'}", "值班客服")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--port", str(rasa_port), "--action-port", str(action_port),
         "--desk-port", str(desk_port)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("WECHAT_")},
             "RASA_AUTH_TOKEN": "run-test-token",
             "HANDOFF_DATABASE_URL": f"sqlite:///{tmp_path / 'handoff.db'}"},
    )
    output = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        assert any("The assistant is running" in line for line in output), "".join(output)
        assert any(f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook" in line for line in output)
        status, body = post(f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook",
                            {"sender": f"run-{uuid.uuid4().hex[:8]}", "message": "信用卡还不上了想跟银行协商"})
        assert status == 200 and "个性化分期还款" in joined_text(body)
        status, body = post(f"http://127.0.0.1:{rasa_port}/webhooks/wechat_miniprogram/webhook", {})
        assert status == 503 and "not configured" in body["error"], "no WeChat settings: 503, the rest runs"
        assert _port_open(action_port)
        widget = f"http://127.0.0.1:{rasa_port}/webhooks/widget/"
        assert any(widget in line for line in output), "the run command prints the widget's URL"
        with urllib.request.urlopen(widget, timeout=10) as answer:
            assert answer.status == 200 and "债务咨询助手" in answer.read().decode("utf-8")
        assert any(f"Agent desk: http://127.0.0.1:{desk_port}/" in line for line in output), "".join(output)
        status, me = call("GET", f"http://127.0.0.1:{desk_port}/api/me", token=agent_token)
        assert status == 200 and me["agent"] == "值班客服"
        status, _ = call("GET", f"http://127.0.0.1:{desk_port}/api/me", token=agent_token, agent_name="别人")
        assert status == 403, "the name comes from the credential, not from X-Agent-Name"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert not _port_open(rasa_port) and not _port_open(action_port) and not _port_open(desk_port)


def _children(pid: int) -> list:
    """(pid, command line) of the live children of ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.append((int(entry), command))
    return found


def test_run_restarts_a_killed_action_server_within_seconds(trained_model, tmp_path):
    rasa_port, action_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--port", str(rasa_port), "--action-port", str(action_port),
         "--desk-port", str(free_port())],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("WECHAT_")},
             "RASA_AUTH_TOKEN": "run-test-token",
             "HANDOFF_DATABASE_URL": f"sqlite:///{tmp_path / 'handoff.db'}"},
    )
    output = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        assert any("The assistant is running" in line for line in output), "".join(output)
        actions = [pid for pid, command in _children(process.pid) if "rasa_sdk" in command]
        assert len(actions) == 1, _children(process.pid)
        os.kill(actions[0], signal.SIGKILL)
        killed_at = time.monotonic()
        back = None
        while time.monotonic() - killed_at < 30:
            if _port_open(action_port) and any("rasa_sdk" in c for p, c in _children(process.pid)
                                               if p != actions[0]):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{action_port}/health", timeout=2) as answer:
                        if answer.status == 200:
                            back = time.monotonic() - killed_at
                            break
                except OSError:
                    pass
            time.sleep(0.2)
        assert back is not None and back <= 10, f"the action server was not back within 10 s ({back})"
        reply = ""
        for _ in range(10):  # the Rasa side notices at its next probe (every 2 s) or call
            status, body = post(f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook",
                                {"sender": f"restart-{uuid.uuid4().hex[:8]}", "message": "信用卡还不上了想跟银行协商"})
            reply = joined_text(body)
            if status == 200 and "个性化分期还款" in reply:
                break
            time.sleep(1)
        assert "个性化分期还款" in reply, reply
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    log = "".join(output) + rest
    assert "action server exited with code -9" in log and "action server restarted" in log, log[-3000:]
    assert not _port_open(rasa_port) and not _port_open(action_port)
