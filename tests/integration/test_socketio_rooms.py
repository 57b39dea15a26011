"""Shared socket.io rooms (bot/channels/socketio_rooms.py) against the machine's Redis: two replicas' presence,
a replica that died, Redis unreachable, and the client manager swapped into a real python-socketio server.

Each test uses its own channel name (key prefix and pub/sub channel), so nothing collides with other users of
the shared Redis. Skipped, with the reason, when Redis is not reachable.
"""
from __future__ import annotations

import asyncio
import uuid

import pytest
import socketio

from bot.channels.socketio_rooms import (
    LocalPresence,
    RedisPresence,
    install_shared_rooms,
)
from tests.support.servers import free_port
from tests.support.services import REDIS_HOST, REDIS_PORT, redis_reachable

URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/13"


@pytest.fixture
def channel():
    if not redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}")
    name = f"test-sio-{uuid.uuid4().hex[:10]}"
    yield name
    import redis

    client = redis.Redis.from_url(URL)
    for key in client.scan_iter(f"{name}:*"):
        client.delete(key)
    client.close()


def _replica(channel: str, url: str = URL):
    sio = socketio.AsyncServer(async_mode="asgi")
    presence = install_shared_rooms(sio, "/", env={"SOCKETIO_REDIS_URL": url, "SOCKETIO_REDIS_CHANNEL": channel})
    return sio, presence


def test_without_the_variable_rooms_stay_in_the_process():
    sio = socketio.AsyncServer(async_mode="asgi")
    before = sio.manager
    presence = install_shared_rooms(sio, "/", env={})
    assert isinstance(presence, LocalPresence) and not isinstance(presence, RedisPresence)
    assert sio.manager is before


def test_the_redis_manager_is_installed_with_the_configured_channel(channel):
    sio, presence = _replica(channel)
    assert isinstance(sio.manager, socketio.AsyncRedisManager)
    assert sio.manager.channel == channel and sio.manager.server is sio
    assert isinstance(presence, RedisPresence) and presence.host_id == sio.manager.host_id


def test_an_unusable_url_is_refused_at_start():
    sio = socketio.AsyncServer(async_mode="asgi")
    with pytest.raises(ValueError, match="scheme"):
        install_shared_rooms(sio, "/", env={"SOCKETIO_REDIS_URL": "http://127.0.0.1:1/0"})


def test_a_session_on_one_replica_is_seen_from_the_other_until_it_leaves(channel):
    _, on_a = _replica(channel)
    _, on_b = _replica(channel)

    async def scenario():
        assert not await on_b.connected("session-1")
        await on_a.joined("session-1", "sid-a")
        seen_from_b = await on_b.connected("session-1")
        other_session = await on_b.connected("session-2")
        await on_a.left("sid-a")
        after_leaving = await on_b.connected("session-1")
        return seen_from_b, other_session, after_leaving

    assert asyncio.run(scenario()) == (True, False, False)


def test_the_sessions_of_a_replica_whose_heartbeat_stopped_count_as_gone(channel):
    _, on_a = _replica(channel)
    _, on_b = _replica(channel)

    async def scenario():
        await on_a.joined("session-1", "sid-a")
        before = await on_b.connected("session-1")
        # What a killed replica leaves: its session record, and a heartbeat key that expires.
        on_a._heartbeat.cancel()
        await on_b.redis.delete(on_a._host_key(on_a.host_id))
        return before, await on_b.connected("session-1")

    assert asyncio.run(scenario()) == (True, False)


def test_redis_unreachable_means_not_connected_rather_than_an_error():
    port = free_port()  # nothing listens there
    _, presence = _replica(f"test-sio-{uuid.uuid4().hex[:10]}", url=f"redis://127.0.0.1:{port}/0")

    async def scenario():
        await presence.joined("session-1", "sid-a")  # logged, not raised
        return await presence.connected("session-2")

    assert asyncio.run(scenario()) is False
