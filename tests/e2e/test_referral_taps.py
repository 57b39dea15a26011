"""A tapped call button on a referral card, over the real socket.io channel: recorded in the tapping socket's own
conversation (tracker and compliance record) when it names a channel the bot gives; anything else refused.

The shared development servers on loopback (tests/conftest.py), their compliance consumer writing
``compliance.db`` beside their tracker store.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any, Dict, List

import pytest
import sqlalchemy as sa

from bot.compliance.schema import conversations
from bot.db import make_engine
from bot.knowledge import default_knowledge
from tests.support.servers import TEST_TOKEN
from tests.support.widget import Widget

pytestmark = pytest.mark.e2e


def _slot_values(servers, sender: str, slot: str) -> List[Any]:
    url = f"{servers.rasa_url}/conversations/{sender}/tracker?token={TEST_TOKEN}"
    with urllib.request.urlopen(url, timeout=30) as answer:
        events = json.loads(answer.read())["events"]
    return [e["value"] for e in events if e["event"] == "slot" and e["name"] == slot]


def _recorded_taps(directory, sender: str, expected: int, seconds: float = 60.0) -> List[str]:
    engine = make_engine(f"sqlite:///{directory / 'compliance.db'}")
    deadline = time.monotonic() + seconds
    try:
        while True:
            with engine.connect() as db:
                value = db.execute(sa.select(conversations.c.taps)
                                   .where(conversations.c.sender_id == sender)).scalar()
            taps = json.loads(value) if value else []
            if len(taps) >= expected or time.monotonic() > deadline:
                return taps
            time.sleep(0.5)
    finally:
        engine.dispose()


def test_a_tap_is_recorded_in_the_own_conversation_and_a_forged_one_refused(servers, e2e_dir):
    hotline = default_knowledge().fact("nfra_hotline").value

    async def scenario() -> Dict[str, Any]:
        widget = Widget(servers.rasa_url)
        await widget.connect()
        try:
            session = await widget.request_session({})
            assert session
            assert await widget.say({"message": "信用卡逾期了想跟银行协商分期"})
            refused_before = len(widget.refused)
            await widget.client.emit("referral_tapped", {"reason": "hardship_plan", "number": hotline})
            await widget.client.emit("referral_tapped", {"reason": "hardship_plan", "number": "13800138000"})
            await widget.client.emit("referral_tapped", {"reason": "<script>", "number": hotline})
            for _ in range(50):
                if len(widget.refused) >= refused_before + 2:
                    break
                await asyncio.sleep(0.1)
            return {"sender": session["session_id"], "refused": widget.refused[refused_before:]}
        finally:
            await widget.client.disconnect()

    outcome = asyncio.run(scenario())
    assert [r["event"] for r in outcome["refused"]] == ["referral_tapped", "referral_tapped"]
    deadline = time.monotonic() + 15
    while not _slot_values(servers, outcome["sender"], "referral_tapped") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _slot_values(servers, outcome["sender"], "referral_tapped") == ["nfra_hotline:hardship_plan"]
    assert _recorded_taps(e2e_dir, outcome["sender"], 1) == ["nfra_hotline:hardship_plan"]


def test_a_tap_before_any_session_is_refused(servers):
    async def scenario() -> List[Dict[str, Any]]:
        widget = Widget(servers.rasa_url)
        await widget.connect()
        try:
            hotline = default_knowledge().fact("nfra_hotline").value
            await widget.client.emit("referral_tapped", {"reason": "hardship_plan", "number": hotline})
            for _ in range(50):
                if widget.refused:
                    break
                await asyncio.sleep(0.1)
            return widget.refused
        finally:
            await widget.client.disconnect()

    refused = asyncio.run(scenario())
    assert refused and refused[0]["event"] == "referral_tapped" and "session" in refused[0]["reason"]
