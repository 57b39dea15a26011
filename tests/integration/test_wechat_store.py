"""The WeChat channel's shared store, against every backend it supports: SQLite, PostgreSQL and Redis.

PostgreSQL (127.0.0.1:5432, user postgres) gets a throwaway database; Redis (127.0.0.1:6379) a unique key
prefix in database 14 that is deleted afterwards. Each is skipped, with the reason, if not reachable.
Two store objects on the same backend stand for two servers sharing it.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from bot.channels.wechat.store import (
    MAX_FAILURE_RECORDS,
    RedisWeChatStore,
    SqlWeChatStore,
    hashed_key,
    open_store,
)
from tests.support.services import (
    PG_HOST,
    PG_PORT,
    REDIS_HOST,
    REDIS_PORT,
    postgres_reachable,
    redis_reachable,
    throwaway_postgres,
)


@pytest.fixture(scope="module")
def postgres_url():
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    with throwaway_postgres("wechat_test") as url:
        yield url


@pytest.fixture(scope="module")
def redis_url():
    if not redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/14"


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def make_store(request, tmp_path):
    """A factory of store objects sharing one backend (call it twice for two "servers")."""
    created = []
    prefix = f"wechat_test_{uuid.uuid4().hex[:8]}:"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wechat.db'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = request.getfixturevalue("redis_url")

    def make():
        store = RedisWeChatStore(url, prefix=prefix) if request.param == "redis" else open_store(url)
        created.append(store)
        return store

    make.backend = request.param
    yield make
    if request.param == "redis":
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def _run(coroutine):
    return asyncio.run(coroutine)


def test_open_store_picks_the_backend_from_the_url(tmp_path):
    assert isinstance(open_store(f"sqlite:///{tmp_path / 'a' / 'w.db'}"), SqlWeChatStore)
    assert (tmp_path / "a" / "w.db").exists()
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisWeChatStore)  # connects lazily


def test_a_push_is_claimed_once_across_servers_even_concurrently(make_store):
    async def scenario():
        first, second = make_store(), make_store()
        key = f"wx:msg:{uuid.uuid4().int}"
        results = await asyncio.gather(*(store.claim(key) for store in [first, second] * 5))
        assert sorted(results) == [False] * 9 + [True]
        assert await first.claim(key + "-other") is True
        await first.close()
        await second.close()

    _run(scenario())


def test_an_expired_claim_can_be_claimed_again(make_store):
    async def scenario():
        store = make_store()
        key = f"wx:event:{uuid.uuid4().hex}"
        assert await store.claim(key, ttl=1) is True
        assert await store.claim(key, ttl=1) is False
        await asyncio.sleep(2.1)
        assert await store.claim(key, ttl=1) is True
        await store.close()

    _run(scenario())


def test_openid_mapping_options_and_transfer_window_are_shared(make_store):
    async def scenario():
        first, second = make_store(), make_store()
        user = f"wx-{uuid.uuid4().hex}"
        assert await second.openid_for(user) is None
        await first.remember_openid(user, "oOpenid-1")
        await first.remember_openid(user, "oOpenid-1")  # refresh, no duplicate
        assert await second.openid_for(user) == "oOpenid-1"

        assert await second.load_options(user) == []
        await first.save_options(user, ["/ask_hardship_plan", "/seek_debt_agency"])
        assert await second.load_options(user) == ["/ask_hardship_plan", "/seek_debt_agency"]
        await first.save_options(user, ["/greet"])
        assert await second.load_options(user) == ["/greet"]
        await first.save_options(user, [])
        assert await second.load_options(user) == []

        assert await second.transfer_active(user) is False
        await first.start_transfer(user, time.time() + 1.5)
        assert await second.transfer_active(user) is True
        await asyncio.sleep(2)
        assert await second.transfer_active(user) is False
        await first.close()
        await second.close()

    _run(scenario())


def test_access_token_is_shared_and_replaced(make_store):
    async def scenario():
        first, second = make_store(), make_store()
        appid = f"wx{uuid.uuid4().hex[:16]}"
        assert await second.load_token(appid) is None
        expires = time.time() + 7200
        await first.save_token(appid, "TOKEN-A", expires)
        token, expires_at = await second.load_token(appid)
        assert token == "TOKEN-A" and abs(expires_at - expires) < 1
        await second.save_token(appid, "TOKEN-B", expires + 10)
        assert (await first.load_token(appid))[0] == "TOKEN-B"
        await first.close()
        await second.close()

    _run(scenario())


def test_failure_records_are_kept_newest_first(make_store):
    async def scenario():
        store = make_store()
        user = f"wx-{uuid.uuid4().hex}"
        await store.record_failure("send", user, 45015, "response out of time limit")
        await store.record_failure("token", None, 40013, "invalid appid")
        newest, older = (await store.recent_failures(limit=2))
        assert (newest.kind, newest.user_id, newest.errcode) == ("token", None, 40013)
        assert (older.kind, older.user_id, older.errcode, older.detail) == ("send", user, 45015,
                                                                            "response out of time limit")
        assert newest.created_at >= older.created_at > time.time() - 60
        await store.close()

    _run(scenario())


def test_dedup_keys_are_stored_hashed_not_in_clear(tmp_path):
    import sqlite3

    async def scenario():
        store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
        await store.claim("wx:event:oSecretOpenid:1700000000")
        await store.close()

    _run(scenario())
    with sqlite3.connect(tmp_path / "w.db") as db:
        keys = [row[0] for row in db.execute("SELECT key FROM wechat_dedup")]
    assert keys == [hashed_key("wx:event:oSecretOpenid:1700000000")]
    assert "oSecretOpenid" not in (tmp_path / "w.db").read_bytes().decode("latin-1")


def test_sql_failure_records_are_trimmed(tmp_path, monkeypatch):
    import bot.channels.wechat.store as module

    monkeypatch.setattr(module, "MAX_FAILURE_RECORDS", 3)

    async def scenario():
        store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
        for number in range(6):
            await store.record_failure("send", None, 45047, f"failure {number}")
        store._last_cleanup = 0.0
        await store.claim("trigger cleanup")
        details = [record.detail for record in await store.recent_failures(limit=10)]
        await store.close()
        return details

    assert _run(scenario()) == ["failure 5", "failure 4", "failure 3"]
    assert MAX_FAILURE_RECORDS == 1000
