"""The WeChat channel's shared store, against every backend it supports: SQLite, PostgreSQL and Redis.

PostgreSQL (127.0.0.1:5432, user postgres) gets a throwaway database; Redis (127.0.0.1:6379) a unique key
prefix in database 14 that is deleted afterwards. Each is skipped, with the reason, if not reachable.
Two store objects on the same backend stand for two servers sharing it. The first tests check the channel's
jobs (bot/channels/wechat/store/base.py), the later ones the key-value primitives under them and the SQL schema's
migrations.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from bot.channels.wechat.store import (
    MAX_FAILURE_RECORDS,
    RedisKeyValueStore,
    SqlKeyValueStore,
    WeChatStore,
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
        store = WeChatStore(RedisKeyValueStore(url, prefix=prefix)) if request.param == "redis" else open_store(url)
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
    assert isinstance(open_store(f"sqlite:///{tmp_path / 'a' / 'w.db'}").kv, SqlKeyValueStore)
    assert (tmp_path / "a" / "w.db").exists()
    assert isinstance(open_store("redis://127.0.0.1:1/0").kv, RedisKeyValueStore)  # connects lazily


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
        keys = [row[0] for row in db.execute("SELECT key FROM wechat_kv")]
    assert keys == [f"dedup:{hashed_key('wx:event:oSecretOpenid:1700000000')}"]
    assert "oSecretOpenid" not in (tmp_path / "w.db").read_bytes().decode("latin-1")


def test_sql_failure_records_are_trimmed(tmp_path, monkeypatch):
    import bot.channels.wechat.store.base as module

    monkeypatch.setattr(module, "MAX_FAILURE_RECORDS", 3)

    async def scenario():
        store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
        for number in range(6):
            await store.record_failure("send", None, 45047, f"failure {number}")
        store.kv._last_cleanup = 0.0
        await store.claim("trigger cleanup")
        details = [record.detail for record in await store.recent_failures(limit=10)]
        await store.close()
        return details

    assert _run(scenario()) == ["failure 5", "failure 4", "failure 3"]
    assert MAX_FAILURE_RECORDS == 1000


# ------------------------------------------------------------------------------- key-value primitives

@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def make_kv(request, tmp_path):
    """A factory of key-value stores sharing one backend, and the backend's name as ``make_kv.backend``."""
    prefix = f"wechat_test_{uuid.uuid4().hex[:8]}:"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kv.db'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = request.getfixturevalue("redis_url")

    def make():
        return RedisKeyValueStore(url, prefix=prefix) if request.param == "redis" else SqlKeyValueStore(url)

    make.backend = request.param
    make.url = url
    make.prefix = prefix
    yield make
    if request.param == "redis":
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def _key() -> str:
    return f"test:{uuid.uuid4().hex}"


def test_kv_set_get_overwrite_and_delete(make_kv):
    async def scenario():
        kv = make_kv()
        key = _key()
        assert await kv.get(key) is None
        await kv.set(key, "第一", 60)
        assert await kv.get(key) == "第一"
        await kv.set(key, "第二", 60)
        assert await kv.get(key) == "第二"
        await kv.delete(key)
        assert await kv.get(key) is None
        await kv.delete(key)  # deleting a missing key is no error
        await kv.delete(_key())
        await kv.close()

    _run(scenario())


def test_kv_values_expire_after_their_ttl_and_a_set_renews_it(make_kv):
    async def scenario():
        kv = make_kv()
        short, renewed, added = _key(), _key(), _key()
        await kv.set(short, "v", 1)
        await kv.set(renewed, "v", 1)
        assert await kv.add(added, "v", 1) is True
        await asyncio.sleep(0.6)
        await kv.set(renewed, "w", 3)
        assert await kv.get(short) == "v"
        await asyncio.sleep(0.8)
        assert await kv.get(short) is None and await kv.get(added) is None
        assert await kv.get(renewed) == "w"
        await kv.close()

    _run(scenario())


def test_kv_add_is_atomic_across_stores_under_concurrency(make_kv):
    async def scenario():
        stores = [make_kv(), make_kv(), make_kv()]
        key = _key()
        results = await asyncio.gather(*(stores[n % 3].add(key, f"value-{n}", 60) for n in range(30)))
        assert results.count(True) == 1
        winner = f"value-{results.index(True)}"
        assert await stores[1].get(key) == winner
        assert await stores[2].add(key, "late", 60) is False
        assert await stores[0].get(key) == winner, "a failed add leaves the value alone"
        for store in stores:
            await store.close()

    _run(scenario())


def test_kv_add_leaves_a_live_key_alone_and_takes_over_an_expired_one(make_kv):
    async def scenario():
        kv = make_kv()
        key = _key()
        assert await kv.add(key, "first", 1) is True
        assert await kv.add(key, "second", 60) is False
        await asyncio.sleep(1.3)
        assert await kv.get(key) is None, "the failed add did not renew the TTL"
        assert await kv.add(key, "third", 60) is True
        assert await kv.get(key) == "third"
        await kv.close()

    _run(scenario())


def test_kv_refuses_a_ttl_that_is_not_positive(make_kv):
    async def scenario():
        kv = make_kv()
        for ttl in (0, -1):
            with pytest.raises(ValueError, match="TTL"):
                await kv.set(_key(), "v", ttl)
            with pytest.raises(ValueError, match="TTL"):
                await kv.add(_key(), "v", ttl)
        await kv.close()

    _run(scenario())


def test_kv_capped_log_keeps_the_newest_entries_newest_first(make_kv):
    async def scenario():
        kv = make_kv()
        log, other = _key(), _key()
        for number in range(5):
            await kv.append(log, f"entry {number}", 3)
        await kv.append(other, "elsewhere", 3)
        assert await kv.recent(log, 10) == ["entry 4", "entry 3", "entry 2"]
        assert await kv.recent(log, 2) == ["entry 4", "entry 3"]
        assert await kv.recent(log, 0) == []
        assert await kv.recent(other, 10) == ["elsewhere"]
        assert await kv.recent(_key(), 10) == []
        await kv.close()

    _run(scenario())


@pytest.mark.parametrize("make_kv", ["sqlite", "postgresql"], indirect=True)
def test_sql_expired_rows_are_deleted_by_the_periodic_cleanup(make_kv):
    from sqlalchemy import select

    from bot.channels.wechat.store.sql import kv_table

    async def scenario():
        kv = make_kv()
        expired, live = _key(), _key()
        await kv.set(expired, "v", 0.5)
        await kv.set(live, "v", 60)
        await asyncio.sleep(0.7)

        def stored_keys():
            with kv._engine.connect() as connection:
                return set(connection.execute(select(kv_table.c.key)).scalars())

        await kv.set(_key(), "v", 60)  # the last cleanup ran at the first write: not due yet
        assert expired in stored_keys()
        kv._last_cleanup = 0.0
        await kv.set(_key(), "v", 60)
        assert expired not in stored_keys() and live in stored_keys()
        await kv.close()

    _run(scenario())


@pytest.mark.parametrize("make_kv", ["redis"], indirect=True)
def test_redis_keys_have_native_ttls_and_the_earlier_layout(make_kv):
    import redis

    async def scenario():
        store = WeChatStore(make_kv())
        user = f"wx-{uuid.uuid4().hex}"
        await store.claim("wx:event:oLayoutOpenid:1700000000")
        await store.remember_openid(user, "oLayoutOpenid")
        await store.save_options(user, ["/greet"])
        await store.start_transfer(user, time.time() + 60)
        await store.save_token("wxlayout", "TOKEN", time.time() + 7200)
        await store.record_failure("send", user, 45015, "late")
        await store.close()

    _run(scenario())
    client = redis.Redis.from_url(make_kv.url, decode_responses=True)
    p = make_kv.prefix
    keys = set(client.scan_iter(f"{p}*"))
    assert keys == {f"{p}dedup:{hashed_key('wx:event:oLayoutOpenid:1700000000')}", f"{p}user:{user_of(keys, p)}",
                    f"{p}options:{user_of(keys, p)}", f"{p}transfer:{user_of(keys, p)}", f"{p}token:wxlayout",
                    f"{p}failures"}
    assert not any("oLayoutOpenid" in key for key in keys)
    assert client.get(f"{p}user:{user_of(keys, p)}") == "oLayoutOpenid"
    for key in keys - {f"{p}failures"}:
        assert client.pttl(key) > 0, key
    assert 6 * 24 * 3600 * 1000 < client.pttl(f"{p}user:{user_of(keys, p)}") <= 7 * 24 * 3600 * 1000
    assert client.lrange(f"{p}failures", 0, -1) and client.pttl(f"{p}failures") == -1  # capped, not expiring
    client.close()


def user_of(keys, prefix):
    return next(key for key in keys if key.startswith(f"{prefix}user:"))[len(f"{prefix}user:"):]


# ----------------------------------------------------------------------------------------- migrations

@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    with throwaway_postgres("wechat_migration") as url:
        yield url


def _versions_and_tables(url):
    from sqlalchemy import inspect, text

    from bot.db import VERSION_TABLE, make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            versions = set(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
        return versions, set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_wechat_migration_is_idempotent_and_shares_one_history_with_handoff(fresh_database_url):
    from bot.db import upgrade_database

    url = fresh_database_url
    upgrade_database(url, "wechat")
    versions, tables = _versions_and_tables(url)
    assert versions == {"0001_wechat_store"}
    assert {"wechat_kv", "wechat_log"} <= tables and not any(t.startswith("handoff_") for t in tables)

    async def write():
        store = open_store(url)  # migrates again
        await store.remember_openid("wx-kept", "oKept")
        await store.close()

    _run(write())
    upgrade_database(url, "wechat")
    upgrade_database(url, "handoff")
    upgrade_database(url, "wechat")
    versions, tables = _versions_and_tables(url)
    assert versions == {"0001_wechat_store", "0003_agent_credentials"}
    assert {"wechat_kv", "wechat_log", "handoff_tickets"} <= tables

    async def read():
        store = open_store(url)
        try:
            return await store.openid_for("wx-kept")
        finally:
            await store.close()

    assert _run(read()) == "oKept", "re-running the migrations keeps the data"


def test_servers_opening_a_new_database_at_once_migrate_it_once(fresh_database_url):
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from bot import PROJECT_ROOT

    opening = "import sys; from bot.channels.wechat.store import open_store; open_store(sys.argv[1])"
    servers = [subprocess.Popen([sys.executable, "-c", opening, fresh_database_url], cwd=PROJECT_ROOT,
                                stderr=subprocess.PIPE, text=True) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:  # and threads of this process, at the same moment
        stores = list(pool.map(lambda _: open_store(fresh_database_url), range(3)))
    for server in servers:
        _, err = server.communicate(timeout=120)
        assert server.returncode == 0, err
    assert _versions_and_tables(fresh_database_url)[0] == {"0001_wechat_store"}

    async def close_all():
        assert await stores[0].claim("once") is True
        assert await stores[2].claim("once") is False
        for store in stores:
            await store.close()

    _run(close_all())


def test_the_earlier_releases_tables_are_adopted_then_dropped(fresh_database_url):
    import sqlalchemy as sa

    from bot.db import make_engine

    # the six tables the earlier release created with create_all (bot/channels/wechat_store.py at ae086d0)
    legacy = sa.MetaData()
    dedup = sa.Table("wechat_dedup", legacy, sa.Column("key", sa.String(64), primary_key=True),
                     sa.Column("expires_at", sa.Float, nullable=False, index=True))
    users = sa.Table("wechat_users", legacy, sa.Column("user_id", sa.String(80), primary_key=True),
                     sa.Column("openid", sa.String(128), nullable=False),
                     sa.Column("expires_at", sa.Float, nullable=False, index=True))
    options = sa.Table("wechat_options", legacy, sa.Column("user_id", sa.String(80), primary_key=True),
                       sa.Column("payloads", sa.Text, nullable=False),
                       sa.Column("expires_at", sa.Float, nullable=False))
    transfers = sa.Table("wechat_transfers", legacy, sa.Column("user_id", sa.String(80), primary_key=True),
                         sa.Column("expires_at", sa.Float, nullable=False))
    tokens = sa.Table("wechat_tokens", legacy, sa.Column("appid", sa.String(64), primary_key=True),
                      sa.Column("token", sa.Text, nullable=False), sa.Column("expires_at", sa.Float, nullable=False))
    failures = sa.Table("wechat_failures", legacy, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                        sa.Column("created_at", sa.Float, nullable=False, index=True),
                        sa.Column("kind", sa.String(32), nullable=False), sa.Column("user_id", sa.String(80)),
                        sa.Column("errcode", sa.Integer), sa.Column("detail", sa.Text, nullable=False))
    now = time.time()
    engine = make_engine(fresh_database_url)
    legacy.create_all(engine)
    with engine.begin() as connection:
        connection.execute(dedup.insert(), [{"key": hashed_key("live push"), "expires_at": now + 3600},
                                            {"key": hashed_key("old push"), "expires_at": now - 1}])
        connection.execute(users.insert(), [{"user_id": "wx-a", "openid": "oA", "expires_at": now + 3600},
                                            {"user_id": "wx-gone", "openid": "oGone", "expires_at": now - 1}])
        connection.execute(options.insert(), [{"user_id": "wx-a", "payloads": '["/greet", "/分期"]',
                                               "expires_at": now + 3600}])
        connection.execute(transfers.insert(), [{"user_id": "wx-a", "expires_at": now + 3600},
                                                {"user_id": "wx-b", "expires_at": now - 1}])
        connection.execute(tokens.insert(), [{"appid": "wxapp", "token": "TOKEN-OLD", "expires_at": now + 3000}])
        connection.execute(failures.insert(), [{"created_at": now - 10 + n, "kind": "send", "user_id": "wx-a",
                                                "errcode": 45015, "detail": f"failure {n}"} for n in range(3)])
    engine.dispose()

    async def scenario():
        store = open_store(fresh_database_url)
        try:
            assert await store.claim("live push") is False and await store.claim("old push") is True
            assert await store.openid_for("wx-a") == "oA" and await store.openid_for("wx-gone") is None
            assert await store.load_options("wx-a") == ["/greet", "/分期"]
            assert await store.transfer_active("wx-a") and not await store.transfer_active("wx-b")
            token, expires_at = await store.load_token("wxapp")
            assert token == "TOKEN-OLD" and abs(expires_at - (now + 3000)) < 1
            records = await store.recent_failures()
            assert [r.detail for r in records] == ["failure 2", "failure 1", "failure 0"]
            assert (records[0].kind, records[0].user_id, records[0].errcode) == ("send", "wx-a", 45015)
            await store.record_failure("token", None, 40013, "newer")
            assert (await store.recent_failures(1))[0].detail == "newer"
        finally:
            await store.close()

    _run(scenario())
    tables = _versions_and_tables(fresh_database_url)[1]
    assert not tables & {"wechat_dedup", "wechat_users", "wechat_options", "wechat_transfers", "wechat_tokens",
                         "wechat_failures"}
