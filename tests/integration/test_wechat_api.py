"""The WeChat API client against the fake WeChat server: token cache, one refresh for many, 42001 retry."""
from __future__ import annotations

import asyncio
import time

import pytest

from bot.channels.wechat.api import WeChatApiClient, WeChatApiError
from bot.channels.wechat.store import open_store
from tests.support.wechat import APPID, APPSECRET
from tests.support.wechat_fake import FakeWeChatApi

OPENID = "oApi-test-openid"


def _text(content: str = "您好") -> dict:
    return {"touser": OPENID, "msgtype": "text", "text": {"content": content}}


def _with_fake(scenario, tmp_path, token_delay: float = 0.0, secret: str = APPSECRET):
    """Run ``scenario(fake, client, store)`` with a fake server and a client sharing a SQLite store."""
    async def main():
        fake = await FakeWeChatApi(APPID, APPSECRET, token_delay=token_delay).start()
        store = open_store(f"sqlite:///{tmp_path / 'wechat.db'}")
        client = WeChatApiClient(APPID, secret, fake.base_url, store, busy_retry_delay=0.01)
        try:
            return await scenario(fake, client, store)
        finally:
            await client.close()
            await store.close()
            await fake.stop()

    return asyncio.run(main())


def test_token_is_fetched_once_and_cached(tmp_path):
    async def scenario(fake, client, store):
        for _ in range(3):
            await client.send(_text())
        assert fake.token_requests == 1 and len(fake.sent) == 3
        assert (await store.load_token(APPID))[0] == "FAKE-TOKEN-1"

    _with_fake(scenario, tmp_path)


def test_concurrent_senders_share_one_token_refresh(tmp_path):
    async def scenario(fake, client, store):
        await asyncio.gather(*(client.send(_text(f"消息{i}")) for i in range(10)))
        assert fake.token_requests == 1
        assert len(fake.sent) == 10

    _with_fake(scenario, tmp_path, token_delay=0.3)


def test_token_is_refreshed_shortly_before_it_expires(tmp_path):
    async def scenario(fake, client, store):
        fake.expires_in = 200  # less than the 300 s refresh margin: never reused
        await client.send(_text())
        await client.send(_text())
        assert fake.token_requests == 2

    _with_fake(scenario, tmp_path)


def test_expired_token_42001_is_refreshed_once_and_the_send_retried(tmp_path):
    async def scenario(fake, client, store):
        await client.send(_text("第一条"))
        fake.expire_tokens()
        await asyncio.gather(*(client.send(_text(f"过期后{i}")) for i in range(5)))
        assert fake.token_requests == 2, "five senders that hit 42001 share one refresh"
        refused = [a for a in fake.send_attempts if a["token"] == "FAKE-TOKEN-1"]
        assert len(refused) == 6  # the first send, then five refused with 42001
        assert [m["text"]["content"] for m in fake.sent][0] == "第一条"
        assert sorted(m["text"]["content"] for m in fake.sent[1:]) == [f"过期后{i}" for i in range(5)]

    _with_fake(scenario, tmp_path)


def test_invalid_credential_40001_is_also_refreshed(tmp_path):
    async def scenario(fake, client, store):
        await store.save_token(APPID, "REVOKED-TOKEN", time.time() + 7000)  # shared by another server
        await client.send(_text())
        assert [a["token"] for a in fake.send_attempts] == ["REVOKED-TOKEN", "FAKE-TOKEN-1"]
        assert len(fake.sent) == 1

    _with_fake(scenario, tmp_path)


def test_a_token_shared_by_another_server_is_reused(tmp_path):
    async def scenario(fake, client, store):
        other = WeChatApiClient(APPID, APPSECRET, fake.base_url, store)
        await other.send(_text("from server A"))
        await client.send(_text("from server B"))
        await other.close()
        assert fake.token_requests == 1

    _with_fake(scenario, tmp_path)


def test_other_errors_are_raised_with_their_code_and_not_retried(tmp_path):
    async def scenario(fake, client, store):
        fake.fail_next_sends(45015)
        with pytest.raises(WeChatApiError) as failed:
            await client.send(_text())
        assert (failed.value.errcode, failed.value.stage) == (45015, "send")
        assert "45015" in str(failed.value)
        assert len(fake.send_attempts) == 1 and fake.sent == []

    _with_fake(scenario, tmp_path)


def test_system_busy_is_retried_once(tmp_path):
    async def scenario(fake, client, store):
        fake.fail_next_sends(-1)
        await client.send(_text())
        assert len(fake.send_attempts) == 2 and len(fake.sent) == 1
        fake.fail_next_sends(-1, -1)
        with pytest.raises(WeChatApiError) as failed:
            await client.send(_text())
        assert failed.value.errcode == -1

    _with_fake(scenario, tmp_path)


def test_token_errors_surface_with_wechats_code(tmp_path):
    async def scenario(fake, client, store):
        with pytest.raises(WeChatApiError) as failed:
            await client.send(_text())
        assert (failed.value.errcode, failed.value.stage) == (40125, "token")
        assert fake.send_attempts == []

    _with_fake(scenario, tmp_path, secret="wrong-secret")


def test_unreachable_api_is_a_transport_error_without_code(tmp_path):
    async def scenario():
        client = WeChatApiClient(APPID, APPSECRET, "http://127.0.0.1:9")
        try:
            with pytest.raises(WeChatApiError) as failed:
                await client.send(_text())
        finally:
            await client.close()
        assert failed.value.errcode is None and failed.value.stage == "token"

    asyncio.run(scenario())
