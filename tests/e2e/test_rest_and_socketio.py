"""End to end: the real action and Rasa servers on loopback, talked to over REST and socketio.

The server pair is shared by the session (tests/conftest.py; start-up takes about a minute); it stores
conversations in a SQLite file of its own, which the privacy test reads directly, together with the logs.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.request

import pytest

from tests.support.servers import (
    TEST_TOKEN,
    joined_text,
    post,
    rest_say,
    socketio_conversation,
)

pytestmark = pytest.mark.e2e

RESIDENT_ID = "11010519491231002X"
MOBILE = "13812345678"
CARD = "6222021234567890123"  # completed below to pass Luhn


def _luhn_card() -> str:
    from bot.privacy import passes_luhn

    return next(CARD[:-1] + d for d in "0123456789" if passes_luhn(CARD[:-1] + d))


def test_readme_example_warns_and_names_the_free_lawful_route(servers):
    reply = rest_say(servers, "readme-1", "有个公司说交三千块服务费就能帮我停息挂账，靠谱吗")
    text = joined_text(reply)
    assert "⚠️" in text and "不要把钱或个人信息交给" in text
    assert "直接联系发卡银行" in text and "免费" in text and "不需要任何中介" in text
    assert "12378" in text and "金融消费者保护服务平台" in text
    assert any(m.get("buttons") for m in reply), "the reply offers next steps as quick replies"


def test_distress_is_met_with_care_the_sourced_hotline_and_a_human_at_once(servers):
    reply = rest_say(servers, "distress-1", "我真的不想活了")
    text = joined_text(reply)
    assert "12356" in text and "110" in text and "120" in text
    assert "马上为您转接" not in text  # no transfer is promised before a person is known to be free
    # These servers run without an agent desk, so the hand-over that follows says so honestly
    # (tests/e2e/test_handoff.py runs the desk).
    payloads = [m["custom"] for m in reply if "custom" in m]
    assert {"type": "handoff", "status": "unavailable"} in payloads
    assert "银行卡背面" in text


@pytest.mark.parametrize(
    "message, expected",
    [
        ("我被催收骚扰，他们天天给我家里人打电话还骂人", "保留证据"),
        ("征信上的逾期多久才能消掉", "保存"),
        ("信用卡欠了八万还不起会坐牢吗", "民事纠纷"),
        ("我想自己跟招行协商分期还款", "个性化分期还款"),  # the hardship form's introduction
        ("去哪里投诉银行乱收费", "12378"),
        ("交了两千块给协商公司，现在人找不到了", "止损"),
    ],
)
def test_core_intents_get_the_answer_to_what_was_asked(servers, message, expected):
    assert expected in joined_text(rest_say(servers, f"core-{hash(message) % 10**6}", message))


def test_named_bank_gets_its_number_with_the_unconfirmed_caveat(servers):
    text = joined_text(rest_say(servers, "t-named-bank-1", "招行信用卡乱收费，去哪里投诉"))
    assert "95555" in text and "尚未经银行官网核实" in text and "银行卡背面" in text


def test_greeting_warns_not_to_send_personal_data_and_offers_topics(servers):
    reply = rest_say(servers, "greet-1", "你好")
    assert "请不要在对话中发送身份证号" in joined_text(reply)
    assert len(reply[-1]["buttons"]) >= 3


@pytest.mark.parametrize("message", ["😭😭😭", "Hello, can you help me with my loan?", "？？？！！！", "asdfgh",
                                     "信用卡\x07逾期\u202e了 help 我 ﾃｽﾄ", "停息掛帳靠譜嗎"])
def test_unusual_input_always_gets_a_reply(servers, message):
    reply = rest_say(servers, f"odd-{abs(hash(message)) % 10**6}", message)
    assert reply and joined_text(reply).strip()


@pytest.mark.parametrize("message", ["😀😀😀", "？？？！！！", "。。。"])
def test_a_message_with_nothing_to_read_gets_the_clarifying_question(servers, message):
    # RiskAwareFallbackClassifier: no letter, digit or CJK character, so no guessed intent (not a crisis reply).
    text = joined_text(rest_say(servers, f"blank-{abs(hash(message)) % 10**6}", message))
    assert "没有完全理解" in text


def test_empty_and_over_long_messages_get_a_clear_reply(servers):
    assert "还没有输入内容" in joined_text(rest_say(servers, "empty-1", "   "))
    assert "消息太长" in joined_text(rest_say(servers, "long-1", "欠" * 10_000))


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"{not json", "not valid JSON"),
        (b'"just a string"', "must be a JSON object"),
        (b'{"message": "\xe4\xbd\xa0\xe5\xa5\xbd"}', "'sender' is required"),
        (b'{"sender": "", "message": "hi"}', "'sender' is required"),
        (b'{"sender": "u1"}', "'message' is required"),
        (b'{"sender": "u1", "message": 42}', "'message' is required"),
        (b'{"sender": "u1", "message": "hi", "metadata": [1]}', "'metadata' must be a JSON object"),
    ],
)
def test_malformed_requests_get_400_with_a_reason(servers, raw, reason):
    status, body = post(f"{servers.rasa_url}/webhooks/rest/webhook", None, raw=raw)
    assert status == 400
    assert reason in body["error"]
    assert "Traceback" not in str(body)


def test_oversized_body_gets_413(servers):
    raw = ('{"sender": "u1", "message": "' + "欠" * 40_000 + '"}').encode()
    status, body = post(f"{servers.rasa_url}/webhooks/rest/webhook", None, raw=raw)
    assert status == 413 and "larger than" in body["error"]


def test_server_still_answers_after_bad_input(servers):
    assert rest_say(servers, "after-bad-1", "你好")


def test_http_api_requires_the_token(servers):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{servers.rasa_url}/status", timeout=10)
    assert refused.value.code == 401
    with urllib.request.urlopen(f"{servers.rasa_url}/status?token={TEST_TOKEN}", timeout=10) as answer:
        assert answer.status == 200


def test_socketio_channel_answers_in_a_persistent_session(servers):
    replies = asyncio.run(socketio_conversation(
        servers.rasa_url, "socket-session-1", ["你好", "有人说交钱能帮我征信修复"]))
    greeting, warning = replies
    assert any("quick_replies" in m or "buttons" in m for m in greeting), greeting
    assert "征信修复" in joined_text(warning) and "骗局" in joined_text(warning)


def test_personal_data_never_reaches_the_tracker_store_or_the_logs(servers, e2e_dir):
    card = _luhn_card()
    reply = rest_say(servers, "privacy-1", f"我身份证{RESIDENT_ID}，手机{MOBILE}，卡号{card}，催收天天骚扰我")
    assert "已被自动隐藏" in joined_text(reply)
    asyncio.run(socketio_conversation(servers.rasa_url, "privacy-socket-1", [f"我的手机号是{MOBILE}"]))

    secrets = [RESIDENT_ID, MOBILE, card]
    stored = []
    for path in e2e_dir.glob("tracker.db*"):
        stored.append(path.read_bytes().decode("utf-8", "replace"))
    with sqlite3.connect(e2e_dir / "tracker.db") as db:
        rows = db.execute("SELECT data FROM events").fetchall()
    texts = [json.loads(row[0]).get("text") or "" for row in rows]
    assert any("[身份证号已隐藏]" in text and "[手机号已隐藏]" in text for text in texts), \
        "the masked message was stored"
    logs = [path.read_text(encoding="utf-8", errors="replace") for path in servers.log_files]
    for secret in secrets:
        for content in stored + logs + [row[0] for row in rows]:
            assert secret not in content


def test_personal_data_typed_in_everyday_ways_reaches_neither_store_nor_logs(servers, e2e_dir):
    typed = {
        "13987654321": "手机139-8765-4321，催收天天打",
        "13712345678": "电话一三七一二三四五六七八",
        "13698765432": "我手机１３６９８７６５４３２",
        "13511112222": "号码135\u00ad1111\u20602222",
        "884215": "中介让我发验证码是：884215",
        "wang.xiaoer_77@example.com": "邮箱 wang.xiaoer_77@example.com",
        "Li_Si_2024": "加我微信号：Li_Si_2024",
        "2468013579": "QQ 2468013579",
        "02187654321": "座机021-87654321",
    }
    for number, text in enumerate(typed.values()):
        assert rest_say(servers, f"privacy-typed-{number}", text)
    with sqlite3.connect(e2e_dir / "tracker.db") as db:
        rows = [row[0] for row in db.execute("SELECT data FROM events").fetchall()]
    logs = [path.read_text(encoding="utf-8", errors="replace") for path in servers.log_files]
    for secret in typed:
        leaked = [content[:200] for content in rows + logs if secret in content]
        assert leaked == [], (secret, leaked)
