"""Held seller-lead candidates in the machine's Redis (bot.leads.consent.RedisPendingLeads): what one replica
holds another takes, once; Redis's expiry forgets an unanswered one; the key does not name the sender."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from bot.leads.consent import PendingLeads, RedisPendingLeads, pending_store_from_env
from bot.leads.extract import LeadCandidate
from tests.support.services import REDIS_HOST, REDIS_PORT, redis_reachable

pytestmark = pytest.mark.skipif(not redis_reachable(), reason=f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}")

URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def test_a_candidate_held_by_one_replica_is_taken_once_by_another():
    async def scenario():
        prefix = f"test-leads-{uuid.uuid4().hex}:"
        one, other = RedisPendingLeads(URL, ttl=30, prefix=prefix), RedisPendingLeads(URL, ttl=30, prefix=prefix)
        sender = f"s-{uuid.uuid4().hex}"
        await one.hold(sender, LeadCandidate(phones=("13812345678",)), "rest", ["upfront_fee"])
        await one.hold(sender, LeadCandidate(groups=("上岸互助",)), "rest", ["upfront_fee"])
        keys = [key.decode() async for key in one._redis.scan_iter(f"{prefix}*")]
        assert await other.holds(sender), "another replica sees the question waiting"
        taken = await other.take(sender)
        again = await other.take(sender)
        assert not await other.holds(sender)
        return sender, keys, taken, again

    sender, keys, taken, again = asyncio.run(scenario())
    assert taken is not None and taken.details.phones == ("13812345678",) and taken.details.groups == ("上岸互助",)
    assert taken.channel == "rest" and taken.red_flags == ("upfront_fee",)
    assert again is None
    assert len(keys) == 1 and sender not in keys[0]


def test_an_unanswered_candidate_expires_in_redis():
    async def scenario():
        pending = RedisPendingLeads(URL, ttl=0.5, prefix=f"test-leads-{uuid.uuid4().hex}:")
        await pending.hold("s1", LeadCandidate(phones=("13812345678",)), "rest", [])
        await asyncio.sleep(0.8)
        return await pending.take("s1")

    assert asyncio.run(scenario()) is None


def test_redis_is_used_where_the_production_lock_store_is_configured():
    assert isinstance(pending_store_from_env({"REDIS_HOST": REDIS_HOST}), RedisPendingLeads)
    assert isinstance(pending_store_from_env({"LEADS_PENDING_REDIS_URL": URL}), RedisPendingLeads)
    assert isinstance(pending_store_from_env({}), PendingLeads)
