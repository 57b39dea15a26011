"""Socket.io rooms shared by several Rasa replicas: the client manager, and which session has a socket where.

One replica keeps its rooms in its own process. Behind a load balancer, a widget's socket lives on one replica
while the agent desk's message (Rasa's HTTP API) may land on another, so two things must be shared:

- **the rooms**: with ``SOCKETIO_REDIS_URL`` set (e.g. ``redis://127.0.0.1:6379/2``), the socket.io server uses
  python-socketio's ``AsyncRedisManager``: an emit to a session's room on any replica is published on the
  Redis channel ``SOCKETIO_REDIS_CHANNEL`` (default ``debt-help-socketio``; the same on every replica) and the
  replica holding the socket delivers it;
- **who is connected** (:class:`RedisPresence`): each replica records in Redis the sessions with a socket on it
  and refreshes a heartbeat key of its own every ``HEARTBEAT_SECONDS``; a session counts as connected while a
  socket of it is on a replica whose heartbeat is younger than ``HOST_TTL_SECONDS``. The out-of-turn output
  (bot/channels/socketio.py) asks it before telling the desk "sent".

Unset: :class:`LocalPresence` and python-socketio's in-process manager, as before. When Redis is unreachable,
replies within a turn still reach sockets on the replica that answers (python-socketio delivers locally before
publishing), and presence falls back to this replica's own sockets, so the desk hears "not delivered" rather
than a false "sent".
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Dict, Mapping, Optional, Protocol, Set

logger = logging.getLogger(__name__)

URL_VARIABLE = "SOCKETIO_REDIS_URL"
CHANNEL_VARIABLE = "SOCKETIO_REDIS_CHANNEL"
DEFAULT_CHANNEL = "debt-help-socketio"

HEARTBEAT_SECONDS = 3.0
"""How often a replica refreshes its heartbeat key."""
HOST_TTL_SECONDS = 10
"""Seconds a replica's heartbeat key lives: a replica that died counts as gone at most this long after."""
SESSION_TTL_SECONDS = 24 * 3600
"""Seconds a session's presence record lives after its last join (drops what a killed replica left behind)."""
REDIS_TIMEOUT_SECONDS = 2.0
"""Seconds a Redis call (connect or command) may take before presence falls back to this replica's sockets."""


class Presence(Protocol):
    """Which sessions have a connected socket: ``joined``/``left`` as sockets come and go, ``connected`` to ask."""

    async def joined(self, session_id: str, sid: str) -> None:
        """Socket ``sid`` entered the room of ``session_id``."""

    async def left(self, sid: str) -> None:
        """Socket ``sid`` disconnected."""

    async def connected(self, session_id: str) -> bool:
        """True if a socket of ``session_id`` is connected (anywhere this presence can see)."""


class LocalPresence:
    """Presence in this process only: the socket.io manager's own rooms of ``namespace``."""

    def __init__(self, sio: Any, namespace: Optional[str] = None) -> None:
        self.sio = sio
        self.namespace = namespace or "/"

    async def joined(self, session_id: str, sid: str) -> None:
        """Nothing to record: the manager's room already holds ``sid``."""

    async def left(self, sid: str) -> None:
        """Nothing to record: the manager drops ``sid`` from its rooms."""

    async def connected(self, session_id: str) -> bool:
        """True if the room ``session_id`` has a socket on this replica."""
        try:
            return any(True for _ in self.sio.manager.get_participants(self.namespace, session_id))
        except (AttributeError, KeyError):
            return False


class RedisPresence(LocalPresence):
    """Presence shared by every replica through Redis (keys under ``<channel>:``); see the module docstring.

    ``host_id`` names this replica (the Redis manager's own id). Redis errors are logged, never raised.
    """

    def __init__(self, sio: Any, namespace: Optional[str], redis: Any, channel: str, host_id: str) -> None:
        super().__init__(sio, namespace)
        self.redis = redis
        self.prefix = channel
        self.host_id = host_id
        self._sessions: Dict[str, Set[str]] = {}
        self._heartbeat: Optional[asyncio.Task[None]] = None

    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    def _host_key(self, host_id: str) -> str:
        return f"{self.prefix}:host:{host_id}"

    async def _beat(self) -> None:
        await self.redis.set(self._host_key(self.host_id), str(time.time()), ex=HOST_TTL_SECONDS)

    async def _heartbeat_forever(self) -> None:
        while True:
            try:
                await self._beat()
            except Exception as err:  # noqa: BLE001  (Redis down: try again at the next beat)
                logger.warning("socket.io presence heartbeat failed: %s", err)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.ensure_future(self._heartbeat_forever())

    async def joined(self, session_id: str, sid: str) -> None:
        """Record ``sid`` of this replica in the session's set; starts the heartbeat on first use."""
        self._ensure_heartbeat()
        self._sessions.setdefault(sid, set()).add(session_id)
        try:
            await self._beat()
            key = self._session_key(session_id)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, f"{self.host_id}:{sid}", str(time.time()))
                pipe.expire(key, SESSION_TTL_SECONDS)
                await pipe.execute()
        except Exception as err:  # noqa: BLE001
            logger.warning("socket.io presence not recorded for a session: %s", err)

    async def left(self, sid: str) -> None:
        """Remove ``sid`` from every session it joined."""
        for session_id in self._sessions.pop(sid, set()):
            try:
                await self.redis.hdel(self._session_key(session_id), f"{self.host_id}:{sid}")
            except Exception as err:  # noqa: BLE001
                logger.warning("socket.io presence not removed for a session: %s", err)

    async def connected(self, session_id: str) -> bool:
        """True if a socket of ``session_id`` is on this replica, or on one whose heartbeat is alive."""
        if await super().connected(session_id):
            return True
        try:
            fields = await self.redis.hkeys(self._session_key(session_id))
            hosts = {(f.decode() if isinstance(f, bytes) else f).split(":", 1)[0] for f in fields}
            hosts.discard(self.host_id)  # this replica's own sockets were checked above
            if not hosts:
                return False
            alive = await self.redis.exists(*(self._host_key(host) for host in hosts))
            return bool(alive)
        except Exception as err:  # noqa: BLE001
            logger.warning("socket.io presence unavailable, judging by this replica's sockets only: %s", err)
            return False


def shared_rooms_url(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """``$SOCKETIO_REDIS_URL`` (stripped), or None when unset or empty."""
    value = (os.environ if env is None else env).get(URL_VARIABLE, "").strip()
    return value or None


def install_shared_rooms(sio: Any, namespace: Optional[str] = None,
                         env: Optional[Mapping[str, str]] = None) -> Presence:
    """Give the freshly created ``sio`` (a python-socketio ``AsyncServer`` nobody has connected to yet) the
    Redis client manager when ``SOCKETIO_REDIS_URL`` is set, and return the matching presence.

    Rasa's ``SocketIOInput.blueprint`` creates the server itself without a ``client_manager`` argument; the
    manager is swapped here before the first connection, the point where python-socketio initialises it.
    Raises ValueError for a URL scheme python-socketio cannot use (not redis://, rediss://, unix://...).
    """
    url = shared_rooms_url(env)
    if url is None:
        return LocalPresence(sio, namespace)
    import socketio
    from redis import asyncio as aioredis

    channel = (os.environ if env is None else env).get(CHANNEL_VARIABLE, "").strip() or DEFAULT_CHANNEL
    options = {"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
    # Publishing uses the timeouts; the subscriber must wait for messages indefinitely (it reconnects itself).
    manager = socketio.AsyncRedisManager(url, channel=channel,
                                         redis_options={"socket_connect_timeout": REDIS_TIMEOUT_SECONDS})
    manager._get_redis_module()  # raises ValueError on an unsupported scheme, now rather than at first use
    if getattr(sio, "manager_initialized", False):
        raise RuntimeError("the socket.io server's manager is already in use")
    sio.manager = manager
    manager.set_server(sio)
    redis = aioredis.Redis.from_url(url, **options)
    logger.info("socket.io rooms are shared through Redis channel %s", channel)
    return RedisPresence(sio, namespace, redis, channel, manager.host_id)
