"""Start and stop the agent desk, the action server and the Rasa server on loopback, as child processes.

Used by ``python -m bot run`` (the README's run command) and by the end-to-end tests, so the tests exercise
the same start-up path as a user. Every server binds to 127.0.0.1 only; the Rasa HTTP API is protected by a
token (``--auth-token``, added in-process by ``bot.ops.rasa_launcher`` from the environment so that it is not on
the command line); the ``rest`` and ``socketio`` channels come from credentials.yml. The agent desk
(``python -m bot.handoff.desk``) is started first when ``ServerConfig.desk_port`` is set; the action server
then hands tickets to it over its intake API (``HANDOFF_DESK_URL`` with the service token
``HANDOFF_INTAKE_TOKEN``, random per start unless set), and the desk reaches Rasa's HTTP API with the same
token as everyone. Output goes to ``agent-desk.log``, ``action-server.log`` and ``rasa-server.log`` in the log
folder (var/logs/ by default). When the endpoints file has an ``event_broker``, the compliance consumer
(``python -m bot compliance consume``, bot.compliance.consumer) runs beside them, logging to
``compliance-consumer.log``; it writes ``ServerConfig.compliance_database_url`` (default
``$COMPLIANCE_DATABASE_URL`` or var/compliance.db).

:func:`supervise` (what ``python -m bot run`` waits in) restarts a server that exits, with back-off
(``RESTART_DELAYS``), and logs each restart to stderr and ``supervisor.log``; Ctrl-C or SIGTERM stops all.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, TextIO

from bot import PROJECT_ROOT

LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """A server process exited or did not answer its health check in time; the message says which."""


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True if nothing listens on ``port`` of 127.0.0.1 (we could bind it now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def available_port(preferred: int) -> int:
    """``preferred`` if it is free on 127.0.0.1, else a free port the OS picks (for a second copy of a server,
    e.g. ``./scripts/shell`` while ``./scripts/run`` holds the default ports)."""
    return preferred if port_is_free(preferred) else free_port()


def load_or_create_token(path: Path, env_var: str = "RASA_AUTH_TOKEN") -> str:
    """A secret: ``$<env_var>`` if set, else the one stored at ``path`` (created once, mode 600).

    Used for the Rasa API token (``RASA_AUTH_TOKEN``, var/auth_token), the widget's session-token key
    (``SESSION_TOKEN_KEY``, var/session_key) and the key of the desk's opaque references
    (``HANDOFF_REFERENCE_KEY``, var/reference_key).
    """
    from_env = os.environ.get(env_var)
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
    desk_port: Optional[int] = None
    """Port of the agent desk; None starts no desk (the bot then answers requests for a human honestly
    that none is available)."""
    handoff_database_url: Optional[str] = None
    """The desk's ticket store (the action server never opens it); None: ``$HANDOFF_DATABASE_URL`` or the
    default var/handoff.db."""
    intake_token: str = ""
    """The service token the action server shows the desk; empty: ``$HANDOFF_INTAKE_TOKEN``, else a random one
    for this start."""
    session_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    """The Rasa server's key for widget session tokens (``SESSION_TOKEN_KEY``, bot.channels.ownership) unless the
    environment sets one; kept by the config, so that a restart with the same config keeps the sessions."""
    compliance_database_url: Optional[str] = None
    """The compliance record the consumer writes; None: ``$COMPLIANCE_DATABASE_URL`` or var/compliance.db."""


RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before the 1st, 2nd, ... restart of a server that keeps exiting; the last one repeats. A server that
ran STABLE_SECONDS before exiting starts again from the first delay."""

STABLE_SECONDS = 60.0
"""A server that ran this long before it exited counts as having worked: its back-off starts over."""


@dataclass
class ServerSpec:
    """How to (re)start one server: its command line, environment, log file and health URL."""

    name: str
    argv: List[str]
    env: Dict[str, str]
    log: Path
    health_url: str
    cwd: Path


@dataclass
class RunningServers:
    """The child processes (the desk may be None) and where their output goes; ``specs`` say how to restart
    each (by attribute: ``desk_server``, ``action_server``, ``rasa_server``)."""

    config: ServerConfig
    action_server: subprocess.Popen
    rasa_server: subprocess.Popen
    log_files: List[Path]
    _handles: List[IO[Any]] = field(default_factory=list, repr=False)
    desk_server: Optional[subprocess.Popen] = None
    specs: Dict[str, ServerSpec] = field(default_factory=dict)
    consumer: Optional[subprocess.Popen] = None
    """The compliance consumer (None when the endpoints file has no event broker)."""

    def restart(self, attribute: str) -> subprocess.Popen:
        """Start the server of ``attribute`` (e.g. ``"action_server"``) again from its spec, appending to its
        log; returns the new process (also stored in the attribute). Does not wait for it to be healthy."""
        spec = self.specs[attribute]
        handle = spec.log.open("ab")
        self._handles.append(handle)
        process = subprocess.Popen(spec.argv, cwd=spec.cwd, env=spec.env, stdout=handle, stderr=subprocess.STDOUT)
        setattr(self, attribute, process)
        return process

    @property
    def processes(self) -> List[subprocess.Popen]:
        """Every running child, Rasa first and the compliance consumer last (the order they are stopped in), so
        that the consumer sees the last events Rasa publishes."""
        return [p for p in (self.rasa_server, self.action_server, self.desk_server) if p is not None]

    def stop_consumer(self, timeout: float = 20.0) -> None:
        """Stop the compliance consumer (SIGTERM, SIGKILL after ``timeout`` s), if there is one."""
        if self.consumer is not None and self.consumer.poll() is None:
            self.consumer.send_signal(signal.SIGTERM)
            try:
                self.consumer.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.consumer.kill()
                self.consumer.wait()

    @property
    def rasa_url(self) -> str:
        """Base URL of the Rasa server, e.g. ``http://127.0.0.1:5005``."""
        return f"http://{LOOPBACK}:{self.config.rasa_port}"

    @property
    def action_url(self) -> str:
        """Base URL of the action server."""
        return f"http://{LOOPBACK}:{self.config.action_port}"

    @property
    def desk_url(self) -> Optional[str]:
        """Base URL of the agent desk, e.g. ``http://127.0.0.1:5056``, or None if no desk was started."""
        return f"http://{LOOPBACK}:{self.config.desk_port}" if self.config.desk_port else None

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate every server (SIGTERM, then SIGKILL after ``timeout`` seconds) and close the logs."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.stop_consumer(timeout)
        for handle in self._handles:
            handle.close()


def server_environment(config: ServerConfig) -> Dict[str, str]:
    """The environment every server of one start runs with: ports, loopback binding, the project on PYTHONPATH,
    and with a desk its URL and intake token (the same for the desk and the action server) and Rasa's API."""
    env = dict(os.environ)
    env.update(
        ACTION_SERVER_PORT=str(config.action_port),
        SANIC_HOST=LOOPBACK,  # rasa_sdk binds to this
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",  # logs reach their files as they are written
        PYTHONPATH=os.pathsep.join(filter(None, [str(config.root), env.get("PYTHONPATH")])),
    )
    if config.handoff_database_url:
        env["HANDOFF_DATABASE_URL"] = config.handoff_database_url
    if config.compliance_database_url:
        env["COMPLIANCE_DATABASE_URL"] = config.compliance_database_url
    if config.desk_port:
        env.update(
            HANDOFF_DESK_URL=f"http://{LOOPBACK}:{config.desk_port}",
            HANDOFF_INTAKE_TOKEN=(config.intake_token or env.get("HANDOFF_INTAKE_TOKEN")
                                  or secrets.token_urlsafe(24)),
            RASA_URL=f"http://{LOOPBACK}:{config.rasa_port}",
            RASA_AUTH_TOKEN=config.token,
        )
    else:
        env.pop("HANDOFF_DESK_URL", None)
    env.update(config.extra_env)
    return env


def private_directory(path: Path) -> None:
    """Create ``path`` (and parents) if missing and make it mode 700, and the files directly in it 600: the
    tracker and ticket databases, the logs and the tokens in var/ are for this user only."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    for child in path.iterdir():
        if child.is_file() and not child.is_symlink():
            child.chmod(0o600)


def cors_arguments(env: Mapping[str, str]) -> List[str]:
    """Rasa's ``--cors`` for the origins in ``RASA_CORS_ORIGINS`` (space- or comma-separated), or none at all.

    Rasa's CORS (sanic-cors) sends ``Access-Control-Allow-Credentials``, and with ``--cors "*"`` it reflects any
    origin, so any web page could call the API and the channels with the user's cookies. The widget is served
    from the Rasa server's own origin and needs no CORS; a bank page embedding it from elsewhere is listed here.
    """
    origins = [origin for origin in env.get("RASA_CORS_ORIGINS", "").replace(",", " ").split() if origin != "*"]
    return ["--cors", *origins] if origins else []


def _without_channel_secrets(env: Mapping[str, str]) -> Dict[str, str]:
    return {name: value for name, value in env.items() if name not in CHANNEL_SECRETS}


def rasa_server_environment(env: Mapping[str, str], session_key: str = "") -> Dict[str, str]:
    """``env`` without what the Rasa server has no use for: the desk's intake token stays with the desk and the
    action server, so that a leak from the Rasa process cannot open tickets. It alone gets the channels' session
    key (``$SESSION_TOKEN_KEY``, else ``session_key``)."""
    rasa_env = {name: value for name, value in env.items() if name != "HANDOFF_INTAKE_TOKEN"}
    if not rasa_env.get("SESSION_TOKEN_KEY") and session_key:
        rasa_env["SESSION_TOKEN_KEY"] = session_key
    return rasa_env


CHANNEL_SECRETS = ("SESSION_TOKEN_KEY", "BANK_SIGNING_KEY")
"""Keys only the Rasa server's channels use: the desk and the action server run without them."""


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


def _desk_argv(config: ServerConfig) -> List[str]:
    return [sys.executable, "-m", "bot.handoff.desk", "--host", LOOPBACK, "--port", str(config.desk_port)]


def _start_desk(config: ServerConfig, env: Dict[str, str], log: Path, handle: IO,
                timeout: float) -> subprocess.Popen:
    desk = subprocess.Popen(_desk_argv(config), cwd=config.root, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(f"http://{LOOPBACK}:{config.desk_port}/health", desk, "agent desk", log, timeout)
    except BaseException:
        desk.terminate()
        desk.wait()
        raise
    return desk


def has_event_broker(config: ServerConfig) -> bool:
    """True if the endpoints file of ``config`` has an ``event_broker`` section (then a consumer runs)."""
    import yaml

    path = Path(config.endpoints)
    path = path if path.is_absolute() else config.root / path
    return bool((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("event_broker"))


def consumer_argv(config: ServerConfig) -> List[str]:
    """The compliance consumer's command line for ``config``."""
    return [sys.executable, "-m", "bot", "compliance", "consume", "--endpoints", str(config.endpoints)]


def rasa_server_spec(config: ServerConfig, full_env: Optional[Dict[str, str]] = None) -> ServerSpec:
    """How :func:`start_servers` starts the Rasa server of ``config`` (command line, environment, log
    ``rasa-server.log`` in ``config.log_dir``, health URL), from ``full_env`` (default
    :func:`server_environment`). A second replica of the same configuration is this spec with another
    ``rasa_port`` and ``log_dir`` (tests/support/topology.py)."""
    full_env = server_environment(config) if full_env is None else full_env
    rasa_cmd = [
        sys.executable, "-m", "bot.ops.rasa_launcher", "run", "--enable-api", "--interface", LOOPBACK,
        "--port", str(config.rasa_port), "--model", str(config.model),
        "--credentials", config.credentials, "--endpoints", config.endpoints,
    ]
    rasa_cmd += cors_arguments(full_env)
    rasa_env = rasa_server_environment(full_env, config.session_key)
    rasa_env["RASA_AUTH_TOKEN"] = config.token  # read by the launcher: never on the command line
    return ServerSpec("Rasa server", rasa_cmd, rasa_env, config.log_dir / "rasa-server.log",
                      f"http://{LOOPBACK}:{config.rasa_port}/", config.root)


def start_servers(config: ServerConfig, timeout: float = 240.0) -> RunningServers:
    """Start the agent desk (if ``desk_port``), the action server, then the Rasa server, and wait until each
    answers its health check.

    Returns: RunningServers (call ``stop()``). Raises: ServerStartError (every process is stopped first).
    """
    private_directory(config.root / "var")
    private_directory(config.log_dir)
    os.umask(0o077)  # logs, databases and tokens created from here on (and by the children) are 600
    full_env = server_environment(config)
    env = _without_channel_secrets(full_env)
    action_log = config.log_dir / "action-server.log"
    rasa_log = config.log_dir / "rasa-server.log"
    desk_log = config.log_dir / "agent-desk.log"
    handles: List[IO[Any]] = [action_log.open("ab"), rasa_log.open("ab")]
    desk = None
    if config.desk_port:
        handles.append(desk_log.open("ab"))
        try:
            desk = _start_desk(config, env, desk_log, handles[-1], timeout)
        except BaseException:
            for handle in handles:
                handle.close()
            raise
    action_argv = [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(config.action_port)]
    action = subprocess.Popen(action_argv, cwd=config.root, env=env, stdout=handles[0], stderr=subprocess.STDOUT)
    rasa_spec = rasa_server_spec(config, full_env)
    rasa = subprocess.Popen(rasa_spec.argv, cwd=config.root, env=rasa_spec.env, stdout=handles[1],
                            stderr=subprocess.STDOUT)
    logs = [action_log, rasa_log] + ([desk_log] if desk is not None else [])
    specs = {
        "action_server": ServerSpec("action server", action_argv, env, action_log,
                                    f"http://{LOOPBACK}:{config.action_port}/health", config.root),
        "rasa_server": rasa_spec,
    }
    if desk is not None:
        specs["desk_server"] = ServerSpec("agent desk", _desk_argv(config), env, desk_log,
                                          f"http://{LOOPBACK}:{config.desk_port}/health", config.root)
    servers = RunningServers(config, action, rasa, logs, handles, desk, specs)
    if has_event_broker(config):
        consumer_log = config.log_dir / "compliance-consumer.log"
        handle = consumer_log.open("ab")
        handles.append(handle)
        consumer_env = rasa_server_environment(env)  # it needs no desk token either
        servers.consumer = subprocess.Popen(consumer_argv(config), cwd=config.root, env=consumer_env,
                                            stdout=handle, stderr=subprocess.STDOUT)
        logs.append(consumer_log)
        specs["consumer"] = ServerSpec("compliance consumer", consumer_argv(config), consumer_env, consumer_log, "",
                                       config.root)
    try:
        _wait_healthy(f"{servers.action_url}/health", action, "action server", action_log, timeout)
        _wait_healthy(f"{servers.rasa_url}/", rasa, "Rasa server", rasa_log, timeout)
    except BaseException:
        servers.stop()
        raise
    return servers


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def restart_delay(restarts: int) -> float:
    """Seconds to wait before restart number ``restarts + 1`` of one server (RESTART_DELAYS, last repeated)."""
    return RESTART_DELAYS[min(restarts, len(RESTART_DELAYS) - 1)]


class Supervisor:
    """Restart the servers of ``servers`` that exit, with back-off; one :meth:`check` per poll.

    ``log`` gets one line per event (an exit, a restart); ``clock`` is ``time.monotonic`` unless a test passes
    another. Not thread-safe.
    """

    def __init__(self, servers: RunningServers, log: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.servers = servers
        self.log = log
        self.clock = clock
        self.restarts: Dict[str, int] = {name: 0 for name in servers.specs}
        self.started: Dict[str, float] = {name: clock() for name in servers.specs}
        self.due: Dict[str, float] = {}
        self.restarted: set[str] = set()

    def check(self) -> None:
        """Notice servers that exited (schedule their restart) and restart those whose delay has passed."""
        now = self.clock()
        for attribute, spec in self.servers.specs.items():
            process = getattr(self.servers, attribute)
            if attribute in self.due:
                if now >= self.due[attribute]:
                    del self.due[attribute]
                    new = self.servers.restart(attribute)
                    self.started[attribute] = now
                    self.restarted.add(attribute)
                    self.log(f"{spec.name} restarted (pid {new.pid}, restart {self.restarts[attribute]}).")
                continue
            if process is None or process.poll() is None:
                continue
            if now - self.started[attribute] >= STABLE_SECONDS:
                self.restarts[attribute] = 0
            delay = restart_delay(self.restarts[attribute])
            self.restarts[attribute] += 1
            self.due[attribute] = now + delay
            # Only for a process this supervisor started: the others' start time is unknown here.
            ran = f" after {now - self.started[attribute]:.0f} s" if attribute in self.restarted else ""
            self.log(f"{spec.name} exited with code {process.returncode}{ran}; restarting in {delay:g} s "
                     f"(see {spec.log}).")


def _log_line(stream: TextIO, path: Path) -> Callable[[str], None]:
    def log(line: str) -> None:
        stamped = f"{datetime.now(UTC).isoformat(timespec='seconds')} {line}"
        print(stamped, file=stream, flush=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(stamped + "\n")

    return log


def supervise(servers: RunningServers, poll_seconds: float = 0.5) -> None:
    """Block, restarting any server that exits (``Supervisor``), until Ctrl-C or SIGTERM; then stop all.

    Restarts are logged to stderr and ``supervisor.log`` in the log folder.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    supervisor = Supervisor(servers, _log_line(sys.stderr, servers.config.log_dir / "supervisor.log"))
    try:
        while True:
            supervisor.check()
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        servers.stop()


def wait_for_exit(servers: RunningServers) -> Optional[int]:
    """Block until Ctrl-C / SIGTERM (stops all, returns None), restarting servers that exit meanwhile
    (:func:`supervise`). Kept for callers of the former "stop when one exits" behaviour; returns None."""
    supervise(servers)
    return None
