"""What bot.ops.servers gives the servers it starts."""
from __future__ import annotations

from pathlib import Path

from bot.ops.servers import LOOPBACK, ServerConfig, server_environment


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
