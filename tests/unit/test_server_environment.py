"""What bot.ops.servers gives the servers it starts, and how ``python -m bot shell`` avoids ports in use."""
from __future__ import annotations

import socket
from pathlib import Path

from bot.__main__ import _shell_ports
from bot.ops.servers import (
    LOOPBACK,
    ServerConfig,
    available_port,
    free_port,
    port_is_free,
    rasa_server_environment,
    server_environment,
)


def _config(**overrides):
    return ServerConfig(**{"model": Path("model.tar.gz"), "rasa_port": 5105, "action_port": 5155,
                           "token": "rasa-token", **overrides})


def test_with_a_desk_the_action_server_gets_its_url_and_a_fresh_intake_token(monkeypatch):
    monkeypatch.delenv("HANDOFF_INTAKE_TOKEN", raising=False)
    env = server_environment(_config(desk_port=5156))
    assert env["HANDOFF_DESK_URL"] == f"http://{LOOPBACK}:5156" and env["ACTION_SERVER_PORT"] == "5155"
    assert len(env["HANDOFF_INTAKE_TOKEN"]) >= 16
    assert server_environment(_config(desk_port=5156))["HANDOFF_INTAKE_TOKEN"] != env["HANDOFF_INTAKE_TOKEN"]
    monkeypatch.setenv("HANDOFF_INTAKE_TOKEN", "intake-token-from-the-environment")
    assert server_environment(_config(desk_port=5156))["HANDOFF_INTAKE_TOKEN"] == "intake-token-from-the-environment"
    assert server_environment(_config(desk_port=5156, intake_token="x" * 20))["HANDOFF_INTAKE_TOKEN"] == "x" * 20


def test_without_a_desk_the_action_server_knows_none(monkeypatch):
    monkeypatch.setenv("HANDOFF_DESK_URL", "http://127.0.0.1:5056")
    monkeypatch.delenv("HANDOFF_INTAKE_TOKEN", raising=False)
    env = server_environment(_config())
    assert "HANDOFF_DESK_URL" not in env and "HANDOFF_INTAKE_TOKEN" not in env


def test_shell_takes_free_ports_where_the_given_ones_are_taken_and_says_so(capsys):
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert not port_is_free(busy)
        assert available_port(busy) != busy
        idle = free_port()
        action_port, rasa_port = _shell_ports(busy, idle)
    assert action_port != busy and rasa_port == idle
    out = capsys.readouterr().out
    assert f"Port {busy} is taken" in out and f"uses port {action_port}" in out and str(idle) not in out
    assert server_environment(_config(action_port=action_port))["ACTION_SERVER_PORT"] == str(action_port)


def test_the_rasa_server_does_not_get_the_intake_token(monkeypatch):
    monkeypatch.delenv("HANDOFF_INTAKE_TOKEN", raising=False)
    env = server_environment(_config(desk_port=5156))
    rasa = rasa_server_environment(env)
    assert "HANDOFF_INTAKE_TOKEN" not in rasa and rasa["RASA_AUTH_TOKEN"] == env["RASA_AUTH_TOKEN"]
    assert set(env) - set(rasa) == {"HANDOFF_INTAKE_TOKEN"}
