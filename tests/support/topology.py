"""A production topology on loopback, for the scale-out tests (tests/e2e/test_scale_out.py, docs/scaling.md).

What :func:`production_topology` starts, all on 127.0.0.1 with free ports:

* two Rasa replicas (``a`` and ``b``) on endpoints.production.yml as it is: the tracker store in a throwaway
  PostgreSQL database, the Redis lock store on Redis db :data:`REDIS_DB`, a RabbitMQ queue of its own, and
  socket.io rooms shared through Redis (``SOCKETIO_REDIS_URL``, a channel of its own); both replicas share one
  action server (the action server keeps no conversation state) and the widget session key;
* the agent desk on a throwaway PostgreSQL ticket store; it reaches Rasa's HTTP API on replica ``a``;
* one compliance consumer (the record's hash chain has a single writer), writing ``compliance.db``;
* HAProxy from Debian with the repo's deploy/haproxy/haproxy.cfg, unchanged: its ``${BALANCER_BIND}``,
  ``${RASA_REPLICA_A}`` and ``${RASA_REPLICA_B}`` are the test's addresses.

Redis and RabbitMQ are reached through loopback TCP proxies (tests/support/tcp_proxy.py) that a test can cut
and restore; the machine's services themselves are never stopped. PostgreSQL is reached directly.
:func:`missing_service` says why the topology cannot run here (a test skips with it).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional

from bot import PROJECT_ROOT
from bot.ops.servers import (
    LOOPBACK,
    RunningServers,
    ServerConfig,
    ServerStartError,
    free_port,
    private_directory,
    rasa_server_spec,
    start_servers,
)
from tests.support.handoff import REFERENCE_KEY, always_open_config, issue_agents
from tests.support.servers import TEST_TOKEN
from tests.support.services import (
    PG_HOST,
    PG_PORT,
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    REDIS_HOST,
    REDIS_PORT,
    delete_rabbitmq_queue,
    rabbitmq_env,
    reachable,
    throwaway_postgres,
)
from tests.support.tcp_proxy import TcpProxy

REDIS_DB = 9
"""The Redis database number of the topology's lock store, rate-limit counters and socket.io rooms (keys are
per sender id or under a channel name of each start, so parallel runs do not collide)."""

HAPROXY_CONFIG = PROJECT_ROOT / "deploy" / "haproxy" / "haproxy.cfg"

START_SECONDS = 600.0
"""How long each server may take to answer its health check: two Rasa servers load at once, which takes about
a minute on an idle 2-core machine and several minutes on a loaded one."""


def haproxy_binary() -> Optional[str]:
    """The path of Debian's haproxy (on the PATH or /usr/sbin), or None."""
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None


def missing_service() -> Optional[str]:
    """Why the topology cannot start here (PostgreSQL, Redis or RabbitMQ not reachable, haproxy not installed),
    or None when everything is there."""
    for name, host, port in (("PostgreSQL", PG_HOST, PG_PORT), ("Redis", REDIS_HOST, REDIS_PORT),
                             ("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)):
        if not reachable(host, port):
            return f"{name} is not reachable at {host}:{port}"
    if haproxy_binary() is None:
        return "haproxy is not installed (./scripts/setup-haproxy installs Debian's)"
    return None


@dataclass
class Topology:
    """The running topology. ``servers`` holds replica ``a``, the shared action server, the desk and the
    consumer; ``replica_b`` is the second Rasa server. URLs are ``http://127.0.0.1:<port>``."""

    servers: RunningServers
    replica_b: subprocess.Popen
    haproxy: subprocess.Popen
    balancer_url: str
    replica_urls: Dict[str, str]
    tracker_database: str
    """Name of the PostgreSQL database of the tracker store."""
    redis: TcpProxy
    rabbitmq: TcpProxy
    directory: Path
    socketio_channel: str

    @property
    def desk_url(self) -> str:
        """Base URL of the agent desk."""
        assert self.servers.desk_url is not None
        return self.servers.desk_url

    def replica(self, name: str) -> subprocess.Popen:
        """The Rasa process of replica ``name`` (``"a"`` or ``"b"``)."""
        return {"a": self.servers.rasa_server, "b": self.replica_b}[name]

    def kill_replica(self, name: str) -> None:
        """SIGKILL replica ``name`` (no graceful shutdown: as a crashed host) and wait for it to be gone."""
        process = self.replica(name)
        process.kill()
        process.wait(timeout=30)


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


def _stop(process: Optional[subprocess.Popen], timeout: float = 20.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _start_haproxy(binary: str, bind_port: int, replicas: Dict[str, int], log: Path,
                   handles: List[IO[Any]]) -> subprocess.Popen:
    env = {**os.environ, "BALANCER_BIND": f"{LOOPBACK}:{bind_port}",
           "RASA_REPLICA_A": f"{LOOPBACK}:{replicas['a']}", "RASA_REPLICA_B": f"{LOOPBACK}:{replicas['b']}"}
    checked = subprocess.run([binary, "-c", "-f", str(HAPROXY_CONFIG)], env=env, capture_output=True, text=True,
                             timeout=30)
    if checked.returncode != 0:
        raise ServerStartError(f"haproxy refused {HAPROXY_CONFIG}: {checked.stdout}{checked.stderr}")
    handle = log.open("ab")
    handles.append(handle)
    # -db: stay in the foreground (no daemon), so the test owns the process.
    return subprocess.Popen([binary, "-db", "-f", str(HAPROXY_CONFIG)], env=env, stdout=handle,
                            stderr=subprocess.STDOUT)


@contextmanager
def production_topology(model: Path, directory: Path, rabbitmq_cut_at_start: bool = False,
                        extra_env: Optional[Dict[str, str]] = None) -> Iterator[Topology]:
    """Start the topology of the module docstring in ``directory`` (logs in ``logs/`` and ``logs-b/``) and
    yield it; everything is stopped and the throwaway databases dropped afterwards.

    ``rabbitmq_cut_at_start``: the RabbitMQ proxy is cut before anything starts (restore it with
    ``topology.rabbitmq.restore()``). Raises ServerStartError when a server does not come up (see its log).
    Call :func:`missing_service` first."""
    binary = haproxy_binary()
    assert binary is not None, "call missing_service() first"
    suffix = uuid.uuid4().hex[:8]
    queue = f"rasa_events_scaleout_{suffix}"
    channel = f"scaleout-sio-{suffix}"
    handles: List[IO[Any]] = []
    with ExitStack() as stack:
        tracker_url = stack.enter_context(throwaway_postgres("rasa_scaleout"))
        handoff_url = stack.enter_context(throwaway_postgres("handoff_scaleout"))
        redis = stack.enter_context(TcpProxy((REDIS_HOST, REDIS_PORT)))
        rabbitmq = stack.enter_context(TcpProxy((RABBITMQ_HOST, RABBITMQ_PORT)))
        stack.callback(delete_rabbitmq_queue, queue)
        stack.callback(_delete_redis_keys, channel)
        if rabbitmq_cut_at_start:
            rabbitmq.cut()
        issue_agents(handoff_url)
        database = tracker_url.rsplit("/", 1)[1]
        env = {
            "DB_HOST": PG_HOST, "DB_PORT": str(PG_PORT), "DB_NAME": database, "DB_USER": "postgres",
            "DB_PASSWORD": "",
            "REDIS_HOST": LOOPBACK, "REDIS_PORT": str(redis.port), "REDIS_DB": str(REDIS_DB),
            "SOCKETIO_REDIS_URL": f"redis://{LOOPBACK}:{redis.port}/{REDIS_DB}",
            "SOCKETIO_REDIS_CHANNEL": channel,
            **rabbitmq_env(queue), "RABBITMQ_PORT": str(rabbitmq.port),
            # Every test client is 127.0.0.1 and the tests send many messages for one sender.
            "RATE_LIMITS": "client=1000000/60,conversation=1000000/60",
            "RATE_LIMIT_PREFIX": f"test-scaleout-{suffix}:",
            "HANDOFF_CONFIG": str(always_open_config(directory, claim_timeout_seconds=3600)),
            "HANDOFF_REFERENCE_KEY": REFERENCE_KEY,
            **(extra_env or {}),
        }
        ports = {"a": free_port(), "b": free_port()}
        config_a = ServerConfig(
            model=model, rasa_port=ports["a"], action_port=free_port(), desk_port=free_port(), token=TEST_TOKEN,
            endpoints=str(PROJECT_ROOT / "endpoints.production.yml"), log_dir=directory / "logs",
            extra_env=env, handoff_database_url=handoff_url,
            compliance_database_url=f"sqlite:///{directory / 'compliance.db'}")
        # Replica b: the same configuration (same action server, same session key), its own port and logs.
        config_b = dataclasses.replace(config_a, rasa_port=ports["b"], log_dir=directory / "logs-b")
        private_directory(config_b.log_dir)
        spec_b = rasa_server_spec(config_b)
        log_b = spec_b.log.open("ab")
        handles.append(log_b)
        stack.callback(lambda: [handle.close() for handle in handles])
        # b loads its model while start_servers brings up the desk, the action server and a.
        replica_b = subprocess.Popen(spec_b.argv, cwd=spec_b.cwd, env=spec_b.env, stdout=log_b,
                                     stderr=subprocess.STDOUT)
        stack.callback(_stop, replica_b)
        servers = start_servers(config_a, timeout=START_SECONDS)
        stack.callback(servers.stop)
        _wait_healthy(spec_b.health_url, replica_b, "Rasa replica b", spec_b.log, START_SECONDS)
        balancer_port = free_port()
        haproxy = _start_haproxy(binary, balancer_port, ports, directory / "logs" / "haproxy.log", handles)
        stack.callback(_stop, haproxy)
        balancer_url = f"http://{LOOPBACK}:{balancer_port}"
        _wait_healthy(f"{balancer_url}/", haproxy, "HAProxy", directory / "logs" / "haproxy.log", 30)
        yield Topology(servers=servers, replica_b=replica_b, haproxy=haproxy, balancer_url=balancer_url,
                       replica_urls={name: f"http://{LOOPBACK}:{port}" for name, port in ports.items()},
                       tracker_database=database, redis=redis, rabbitmq=rabbitmq, directory=directory,
                       socketio_channel=channel)


def _delete_redis_keys(channel: str) -> None:
    """Delete the socket.io presence keys the replicas left under ``channel:`` in db REDIS_DB."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=5)
    try:
        for key in client.scan_iter(f"{channel}:*"):
            client.delete(key)
    except redis.RedisError:
        pass
    finally:
        client.close()
