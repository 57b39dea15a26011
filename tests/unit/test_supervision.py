"""The run command's supervisor (bot.ops.servers.Supervisor) and the health probes (bot.ops.health), with
stand-in processes and a loopback HTTP server instead of the real servers."""
from __future__ import annotations

import http.server
import json
import sys
import threading
from pathlib import Path

import pytest

from bot.ops.health import check, probe, report
from bot.ops.servers import (
    RESTART_DELAYS,
    STABLE_SECONDS,
    RunningServers,
    ServerConfig,
    ServerSpec,
    Supervisor,
    free_port,
    restart_delay,
)


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _servers(tmp_path: Path) -> RunningServers:
    """A 'server' that exits at once with code 3, and one that runs until stopped."""
    import subprocess

    exits = [sys.executable, "-c", "import sys; sys.exit(3)"]
    runs = [sys.executable, "-c", "import time; time.sleep(60)"]
    specs = {
        "action_server": ServerSpec("action server", exits, {}, tmp_path / "action.log", "", tmp_path),
        "rasa_server": ServerSpec("Rasa server", runs, {}, tmp_path / "rasa.log", "", tmp_path),
    }
    action = subprocess.Popen(exits)
    rasa = subprocess.Popen(runs)
    action.wait()
    return RunningServers(ServerConfig(model=Path("m"), log_dir=tmp_path), action, rasa, [], [], None, specs)


def test_back_off_grows_and_then_repeats_its_last_delay():
    assert [restart_delay(n) for n in range(len(RESTART_DELAYS) + 2)] == \
        list(RESTART_DELAYS) + [RESTART_DELAYS[-1]] * 2
    assert list(RESTART_DELAYS) == sorted(RESTART_DELAYS)


def test_an_exited_server_is_restarted_after_its_delay_and_the_others_keep_running(tmp_path):
    servers = _servers(tmp_path)
    clock, lines = _Clock(), []
    supervisor = Supervisor(servers, lines.append, clock)
    rasa = servers.rasa_server
    try:
        first = servers.action_server
        supervisor.check()
        assert "action server exited with code 3" in lines[0] and f"restarting in {RESTART_DELAYS[0]:g} s" in lines[0]
        supervisor.check()
        assert servers.action_server is first, "not before the delay"
        clock.now += RESTART_DELAYS[0]
        supervisor.check()
        assert servers.action_server is not first and "action server restarted" in lines[-1]
        servers.action_server.wait()
        supervisor.check()
        assert f"restarting in {RESTART_DELAYS[1]:g} s" in lines[-1], "a server that keeps exiting backs off"
        assert servers.rasa_server is rasa and rasa.poll() is None
    finally:
        servers.stop()


def test_a_server_that_ran_long_enough_starts_its_back_off_over(tmp_path):
    servers = _servers(tmp_path)
    clock, lines = _Clock(), []
    supervisor = Supervisor(servers, lines.append, clock)
    supervisor.restarts["action_server"] = 4
    clock.now += STABLE_SECONDS
    try:
        supervisor.check()
        assert f"restarting in {RESTART_DELAYS[0]:g} s" in lines[-1]
    finally:
        servers.stop()


@pytest.fixture
def http_server():
    """A loopback server answering /ok with 200 and anything else with 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path.startswith("/ok") or self.path.startswith("/health") else 503
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_probe_tells_up_from_an_error_and_from_nothing_listening(http_server):
    assert probe("x", f"http://127.0.0.1:{http_server}/ok").up
    failing = probe("x", f"http://127.0.0.1:{http_server}/fail")
    assert not failing.up and failing.status == 503
    closed = probe("x", f"http://127.0.0.1:{free_port()}/")
    assert not closed.up and closed.status is None and "Refused" in closed.detail


def test_check_reports_each_part_and_hides_the_token(http_server):
    results = check(free_port(), http_server, http_server, token="secret-token")
    assert [(r.name, r.up) for r in results] == [("rasa", False), ("rasa_model", False), ("action_server", True),
                                                 ("agent_desk", True)]
    as_json = json.loads(report(results, as_json=True))
    assert as_json["ok"] is False and "secret-token" not in report(results, as_json=True)
    table = report(results)
    assert "rasa           DOWN" in table and "action_server  up" in table
