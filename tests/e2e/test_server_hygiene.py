"""End to end: the Rasa server refuses a 50 MB body before reading it, keeps its token off the command line,
answers no other web origin, and keeps var/ and its logs private to the user."""
from __future__ import annotations

import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot import PROJECT_ROOT
from tests.support.servers import TEST_TOKEN

pytestmark = pytest.mark.e2e

FIFTY_MB = 50 * 1024 * 1024


def test_a_50_mb_body_is_refused_before_it_is_sent(servers):
    with socket.create_connection(("127.0.0.1", servers.config.rasa_port), timeout=30) as sock:
        sock.sendall((f"POST /webhooks/rest/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {FIFTY_MB}\r\n\r\n").encode()
                     + b'{"sender": "big", "message": "')
        answer = sock.recv(4096).decode("latin-1")  # the server answers with only 30 bytes of the body sent
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


def test_the_api_token_is_not_on_the_rasa_servers_command_line(servers):
    command_line = Path(f"/proc/{servers.rasa_server.pid}/cmdline").read_bytes()
    assert b"bot.ops.rasa_launcher" in command_line
    assert TEST_TOKEN.encode() not in command_line
    with urllib.request.urlopen(f"{servers.rasa_url}/status?token={TEST_TOKEN}", timeout=30) as answer:
        assert answer.status == 200  # and the token still protects the API


def test_a_request_from_an_unconfigured_origin_gets_no_cors_grant(servers):
    request = urllib.request.Request(f"{servers.rasa_url}/webhooks/rest/webhook", method="OPTIONS",
                                     headers={"Origin": "https://evil.example",
                                              "Access-Control-Request-Method": "POST"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            headers = answer.headers
    except urllib.error.HTTPError as err:
        headers = err.headers
    assert headers.get("Access-Control-Allow-Origin") is None
    assert headers.get("Access-Control-Allow-Credentials") is None


def test_var_and_the_logs_are_private_to_the_user(servers):
    for folder in (PROJECT_ROOT / "var", servers.config.log_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for log in servers.log_files:
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
