"""Start and stop the action server and the Rasa server on loopback, as child processes.

Used by ``python -m bot run`` (the README's run command) and by the end-to-end tests, so the tests exercise
the same start-up path as a user. Both servers bind to 127.0.0.1 only; the Rasa HTTP API is protected by a
token (``--auth-token``); the ``rest`` and ``socketio`` channels come from credentials.yml.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Dict, List, Optional

from bot import PROJECT_ROOT

LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """A server process exited or did not answer its health check in time; the message says which."""


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def load_or_create_token(path: Path) -> str:
    """The Rasa API token: ``$RASA_AUTH_TOKEN`` if set, else the one stored at ``path`` (created, mode 600)."""
    from_env = os.environ.get("RASA_AUTH_TOKEN")
    if from_env:
        return from_env
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


@dataclass
class ServerConfig:
    """How to start the pair. Ports in 1..65535; paths relative to ``root`` unless absolute."""

    model: Path
    rasa_port: int = 5005
    action_port: int = 5055
    token: str = ""
    endpoints: str = "endpoints.yml"
    credentials: str = "credentials.yml"
    log_dir: Path = PROJECT_ROOT / "var" / "logs"
    root: Path = PROJECT_ROOT
    extra_env: Dict[str, str] = field(default_factory=dict)


@dataclass
class RunningServers:
    """The two child processes and where their output goes."""

    config: ServerConfig
    action_server: subprocess.Popen
    rasa_server: subprocess.Popen
    log_files: List[Path]
    _handles: List[IO] = field(default_factory=list, repr=False)

    @property
    def rasa_url(self) -> str:
        """Base URL of the Rasa server, e.g. ``http://127.0.0.1:5005``."""
        return f"http://{LOOPBACK}:{self.config.rasa_port}"

    @property
    def action_url(self) -> str:
        """Base URL of the action server."""
        return f"http://{LOOPBACK}:{self.config.action_port}"

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate both servers (SIGTERM, then SIGKILL after ``timeout`` seconds) and close the logs."""
        for process in (self.rasa_server, self.action_server):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.rasa_server, self.action_server):
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for handle in self._handles:
            handle.close()


def server_environment(config: ServerConfig) -> Dict[str, str]:
    """The environment both servers run with: ports, loopback binding and the project on PYTHONPATH."""
    env = dict(os.environ)
    env.update(
        ACTION_SERVER_PORT=str(config.action_port),
        SANIC_HOST=LOOPBACK,  # rasa_sdk binds to this
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",  # logs reach their files as they are written
        PYTHONPATH=os.pathsep.join(filter(None, [str(config.root), env.get("PYTHONPATH")])),
    )
    env.update(config.extra_env)
    return env


def _wait_healthy(url: str, process: subprocess.Popen, name: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"{name} exited with code {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.5)
    raise ServerStartError(f"{name} did not answer {url} within {timeout:.0f} s; see {log}")


def start_servers(config: ServerConfig, timeout: float = 240.0) -> RunningServers:
    """Start the action server, then the Rasa server, and wait until both answer their health checks.

    Returns: RunningServers (call ``stop()``). Raises: ServerStartError (both processes are stopped first).
    """
    config.log_dir.mkdir(parents=True, exist_ok=True)
    (config.root / "var").mkdir(exist_ok=True)
    env = server_environment(config)
    action_log = config.log_dir / "action-server.log"
    rasa_log = config.log_dir / "rasa-server.log"
    handles = [action_log.open("ab"), rasa_log.open("ab")]
    action = subprocess.Popen(
        [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(config.action_port)],
        cwd=config.root, env=env, stdout=handles[0], stderr=subprocess.STDOUT,
    )
    rasa_cmd = [
        sys.executable, "-m", "rasa", "run", "--enable-api", "--interface", LOOPBACK,
        "--port", str(config.rasa_port), "--model", str(config.model),
        "--credentials", config.credentials, "--endpoints", config.endpoints,
        "--cors", "*",
    ]
    if config.token:
        rasa_cmd += ["--auth-token", config.token]
    rasa = subprocess.Popen(rasa_cmd, cwd=config.root, env=env, stdout=handles[1], stderr=subprocess.STDOUT)
    servers = RunningServers(config, action, rasa, [action_log, rasa_log], handles)
    try:
        _wait_healthy(f"{servers.action_url}/health", action, "action server", action_log, timeout)
        _wait_healthy(f"{servers.rasa_url}/", rasa, "Rasa server", rasa_log, timeout)
    except BaseException:
        servers.stop()
        raise
    return servers


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def wait_for_exit(servers: RunningServers) -> Optional[int]:
    """Block until either server exits (returns its code) or Ctrl-C / SIGTERM (stops both, returns None)."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            for process in (servers.rasa_server, servers.action_server):
                if process.poll() is not None:
                    servers.stop()
                    return process.returncode
            time.sleep(1)
    except KeyboardInterrupt:
        servers.stop()
        return None
