"""Only a conversation's owner can reach it: takeover attempts over socket.io, the widget's history and REST are
refused and leak nothing; with the bank's key, REST takes only signed requests and the widget a customer token.

Real servers on loopback: the shared development pair (REST open, anonymous widget sessions), and a pair of its
own with ``BANK_SIGNING_KEY`` set (signed REST, customer tokens), driven with docs/examples/bank_backend.py.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import urllib.request
from typing import Any, Dict, List, Optional

import pytest

from bot import PROJECT_ROOT
from tests.support.servers import TEST_TOKEN, request_json, start_test_servers, write_sqlite_endpoints
from tests.support.widget import Widget

pytestmark = pytest.mark.e2e

BANK_KEY = "bank-signing-key-for-the-e2e-tests-0123456789"


def _bank_backend():
    """docs/examples/bank_backend.py, the recipe the bank's engineers are given, as a module."""
    spec = importlib.util.spec_from_file_location("bank_backend", PROJECT_ROOT / "docs/examples/bank_backend.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tracker_texts(servers, sender: str) -> List[str]:
    url = f"{servers.rasa_url}/conversations/{sender}/tracker?token={TEST_TOKEN}"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return [e.get("text") or "" for e in json.loads(answer.read())["events"] if e["event"] in ("user", "bot")]


def _history(servers, session_id: str, token: Optional[str]):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return request_json("GET", f"{servers.rasa_url}/webhooks/widget/history/{session_id}", headers=headers)


def test_nobody_but_the_owner_can_join_post_to_or_read_a_widget_conversation(servers):
    secret_text = "我欠了招行八万块还不上了"

    async def scenario() -> Dict[str, Any]:
        victim, attacker = Widget(servers.rasa_url), Widget(servers.rasa_url)
        await victim.connect()
        await attacker.connect()
        try:
            early = await attacker.say({"message": "还没有会话就发消息"})
            assert [r["event"] for r in early] == ["user_uttered"] and "session" in early[0]["reason"]
            mine = await victim.request_session({})
            assert mine and mine["session_id"].startswith("web-") and mine["session_token"]
            assert await victim.say({"message": secret_text})
            # Naming the victim's id (and a forged token) gives the attacker a conversation of their own.
            theirs = await attacker.request_session({"session_id": mine["session_id"],
                                                     "session_token": mine["session_token"][:-4] + "AAAA"})
            assert theirs and theirs["session_id"] != mine["session_id"]
            refused = await attacker.say({"message": "我是本人，请把记录发给我", "session_id": mine["session_id"]})
            assert [r.get("event") for r in refused] == ["user_uttered"], refused
            # The victim's next answer reaches the victim only.
            seen = len(attacker.bot)
            assert await victim.say({"message": "征信上的逾期记录要保存多久"})
            assert attacker.bot[seen:] == []
            return {"victim": mine, "attacker": theirs}
        finally:
            await victim.client.disconnect()
            await attacker.client.disconnect()

    sessions = asyncio.run(scenario())
    victim, attacker = sessions["victim"], sessions["attacker"]
    texts = _tracker_texts(servers, victim["session_id"])
    assert secret_text in texts and "我是本人，请把记录发给我" not in texts

    status, body = _history(servers, victim["session_id"], None)
    assert status == 401 and secret_text not in json.dumps(body, ensure_ascii=False)
    status, body = _history(servers, victim["session_id"], attacker["session_token"])
    assert status == 403 and secret_text not in json.dumps(body, ensure_ascii=False)
    status, body = _history(servers, victim["session_id"], victim["session_token"])
    assert status == 200 and secret_text in json.dumps(body, ensure_ascii=False)

    status, body = request_json("POST", f"{servers.rasa_url}/webhooks/rest/webhook",
                                {"sender": victim["session_id"], "message": "我是本人"})
    assert status == 403, (status, body)
    assert "我是本人" not in _tracker_texts(servers, victim["session_id"])


def test_the_session_token_reopens_the_same_conversation(servers):
    async def scenario() -> None:
        first = Widget(servers.rasa_url)
        await first.connect()
        mine = await first.request_session({})
        await first.client.disconnect()
        again = Widget(servers.rasa_url)
        await again.connect()
        try:
            assert mine is not None
            reopened = await again.request_session({"session_token": mine["session_token"]})
            assert reopened and reopened["session_id"] == mine["session_id"]
        finally:
            await again.client.disconnect()

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def signed_servers(trained_model, tmp_path_factory):
    """A server pair whose REST channel takes only the bank's signed requests (``BANK_SIGNING_KEY`` set)."""
    directory = tmp_path_factory.mktemp("signed")
    running = start_test_servers(trained_model, directory, write_sqlite_endpoints(directory),
                                 {"BANK_SIGNING_KEY": BANK_KEY})
    yield running
    running.stop()


def test_signed_rest_accepts_the_bank_once_and_refuses_everyone_else(signed_servers):
    bank = _bank_backend()
    url = f"{signed_servers.rasa_url}/webhooks/rest/webhook"
    answer = bank.send_rest_message(signed_servers.rasa_url, BANK_KEY, "crm-C123", "信用卡还不上了怎么办")
    assert answer and any(m.get("text") for m in answer)

    body = json.dumps({"sender": "crm-C123", "message": "再问一下"}, ensure_ascii=False).encode()
    headers = bank.signed_rest_headers(BANK_KEY, "crm-C123", body)
    assert request_json("POST", url, raw=body)[0] == 401                             # unsigned
    assert request_json("POST", url, raw=body, headers=headers)[0] == 200            # signed
    assert request_json("POST", url, raw=body, headers=headers)[0] == 401            # replayed
    tampered = body.replace("再问一下".encode(), "改过的".encode())
    fresh = bank.signed_rest_headers(BANK_KEY, "crm-C123", body)
    assert request_json("POST", url, raw=tampered, headers=fresh)[0] == 401          # body changed
    forged = bank.signed_rest_headers("not-the-bank-key-0123456789abcdef", "crm-C123", body)
    assert request_json("POST", url, raw=body, headers=forged)[0] == 401             # another key
    assert "改过的" not in _tracker_texts(signed_servers, "crm-C123")


def test_a_customer_token_opens_the_customers_conversation_on_every_device(signed_servers):
    bank = _bank_backend()

    async def session_for(data: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        widget = Widget(signed_servers.rasa_url)
        await widget.connect()
        try:
            return await widget.request_session(data)
        finally:
            await widget.client.disconnect()

    phone = asyncio.run(session_for({"customer_token": bank.customer_token(BANK_KEY, "C123")}))
    laptop = asyncio.run(session_for({"customer_token": bank.customer_token(BANK_KEY, "C123")}))
    assert phone and laptop and phone["session_id"] == laptop["session_id"]
    assert phone["session_id"].startswith("bank-") and "C123" not in phone["session_id"]
    forged = asyncio.run(session_for({"customer_token": bank.customer_token("not-the-bank-key-0123456789ab",
                                                                           "C123")}))
    assert forged is None
