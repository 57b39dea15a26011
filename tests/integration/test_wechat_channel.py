"""The WeChat channel over real HTTP, without a Rasa server: its Sanic blueprint on a loopback port, a stub
dialogue in place of Rasa's agent, and the fake WeChat API.

Checks the acknowledgement, background replies to the right openid, identity hashing and PII masking,
deduplication, numbered options, non-text messages, every bad input (right 4xx, nothing reaches the
dialogue), the hand-over transfer, failure records, and the 503 when the channel is not configured.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from bot.channels.wechat.channel import WeChatMiniProgramInput
from bot.channels.wechat.push import MAX_BODY_BYTES
from bot.channels.wechat.render import channel_texts
from bot.channels.wechat.security import PushCrypto, sign, user_id
from bot.channels.wechat.settings import WeChatSettings
from bot.ops.servers import LOOPBACK, free_port
from tests.support.wechat import APPID, APPSECRET, ID_HASH_KEY, OTHER_AES_KEY, TOKEN, settings
from tests.support.wechat_fake import FakeWeChatApi
from tests.support.wechat_pushes import (
    SAMPLE_ORIGINAL_ID,
    event_message,
    media_message,
    signed_request,
    signed_verification,
    text_message,
)

WEBHOOK = "/webhooks/wechat_miniprogram/webhook"

# Several Sanic apps start in this process, one per test. Sanic 21.12 rewrites its HTTP methods at the first
# start ("touchup") and fails when it rewrites them again, unless test mode keeps the originals, as
# sanic-testing does. It also lets apps reuse names.
Sanic.test_mode = True


@dataclass
class Harness:
    """A running channel: its base URL, the fake API, what the stub dialogue received."""

    url: str
    fake: FakeWeChatApi
    settings: WeChatSettings
    channel: WeChatMiniProgramInput
    received: List[UserMessage] = field(default_factory=list)
    session: Optional[aiohttp.ClientSession] = None

    async def post(self, params: Dict[str, str], body: bytes) -> Tuple[int, str, float]:
        """POST a push; returns status, body text and the seconds it took to answer."""
        started = time.perf_counter()
        async with self.session.post(self.url + WEBHOOK, params=params, data=body) as answer:
            text = await answer.text()
        return answer.status, text, time.perf_counter() - started

    async def push(self, document: Dict[str, Any], **kwargs: Any) -> Tuple[int, str, float]:
        """Sign (and encrypt, per the settings) ``document`` and POST it."""
        params, body = signed_request(self.settings, document, **kwargs)
        return await self.post(params, body)

    async def get(self, path: str, params: Optional[Dict[str, str]] = None) -> Tuple[int, str]:
        async with self.session.get(self.url + path, params=params or {}) as answer:
            return answer.status, await answer.text()

    async def replies(self, openid: str, count: int, timeout: float = 10.0) -> List[Dict[str, Any]]:
        """Wait until the fake received ``count`` messages for ``openid``; return them."""
        await self.fake.wait_for_async(lambda: len(self.fake.sent_to(openid)) >= count, timeout)
        return self.fake.sent_to(openid)


def _stub_dialogue(received: List[UserMessage], domain: dict):
    """Stands in for Rasa: the greeting for /greet, a hand-over for /request_human, an echo otherwise."""
    async def dialogue(message: UserMessage) -> None:
        received.append(message)
        if message.text == "/greet":
            await message.output_channel.send_response(message.sender_id, dict(domain["responses"]["utter_greet"][0]))
        elif message.text == "/request_human":
            await message.output_channel.send_response(message.sender_id, {
                "text": "好的，正在为您安排人工客服。", "custom": {"type": "handoff", "status": "queued"}})
        elif message.text.startswith("慢"):
            await asyncio.sleep(0.5)
            await message.output_channel.send_response(message.sender_id, {"text": f"回答：{message.text}"})
        else:
            await message.output_channel.send_response(message.sender_id, {"text": f"回答：{message.text}"})

    return dialogue


@contextlib.asynccontextmanager
async def running_channel(tmp_path, domain, **changes: Any):
    fake = await FakeWeChatApi(APPID, APPSECRET).start()
    wechat_settings = settings(**{"api_base_url": fake.base_url,
                                  "store_url": f"sqlite:///{tmp_path / 'wechat.db'}", **changes})
    received: List[UserMessage] = []
    channel = WeChatMiniProgramInput(wechat_settings)
    app = Sanic(f"wechat_test_{uuid.uuid4().hex[:8]}")
    app.blueprint(channel.blueprint(_stub_dialogue(received, domain)), url_prefix="/webhooks/wechat_miniprogram")
    port = free_port()
    server = await app.create_server(host=LOOPBACK, port=port, return_asyncio_server=True, access_log=False)
    await server.startup()  # create_server already listens; this finalises the routes
    await server.before_start()
    await server.after_start()
    harness = Harness(f"http://{LOOPBACK}:{port}", fake, wechat_settings, channel, received,
                      aiohttp.ClientSession())
    try:
        yield harness
    finally:
        await harness.session.close()
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()
        await fake.stop()


def _run(tmp_path, domain, scenario, **changes):
    async def main():
        async with running_channel(tmp_path, domain, **changes) as harness:
            await scenario(harness)

    asyncio.run(main())


def _openid() -> str:
    return f"oChannel-{uuid.uuid4().hex[:16]}"


# ---------------------------------------------------------------------------------------- happy paths

def test_url_verification_answers_echostr(tmp_path, domain):
    async def scenario(h: Harness):
        assert await h.get(WEBHOOK, signed_verification(h.settings, "1234567890")) == (200, "1234567890")
        status, body = await h.get(WEBHOOK, {**signed_verification(h.settings), "signature": "0" * 40})
        assert status == 403 and "signature" in json.loads(body)["error"]
        status, body = await h.get("/webhooks/wechat_miniprogram/")
        assert status == 200 and json.loads(body)["status"] == "ok"

    _run(tmp_path, domain, scenario)


@pytest.mark.parametrize("mode, data_format", [("safe", "json"), ("safe", "xml"), ("compatible", "json"),
                                               ("plaintext", "xml")])
def test_text_push_is_acknowledged_at_once_and_answered_through_the_send_api(tmp_path, domain, mode, data_format):
    async def scenario(h: Harness):
        openid = _openid()
        status, body, seconds = await h.push(text_message(openid, "有人说交钱能帮我征信修复", msg_id=42))
        assert (status, body) == (200, "success") and seconds < 1.0
        replies = await h.replies(openid, 1)
        assert replies == [{"touser": openid, "msgtype": "text", "text": {"content": "回答：有人说交钱能帮我征信修复"}}]
        message = h.received[0]
        assert message.sender_id == user_id(openid, ID_HASH_KEY) and openid not in message.sender_id
        assert (message.input_channel, message.message_id) == ("wechat_miniprogram", "42")
        assert message.metadata == {"wechat_msg_type": "text"}

    _run(tmp_path, domain, scenario, mode=mode, data_format=data_format)


def test_personal_data_is_masked_before_the_dialogue(tmp_path, domain):
    async def scenario(h: Harness):
        openid = _openid()
        await h.push(text_message(openid, "我手机13812345678，催收天天打"))
        replies = await h.replies(openid, 1)
        assert h.received[0].text == "我手机[手机号已隐藏]，催收天天打"
        content = replies[0]["text"]["content"]
        assert "已被自动隐藏" in content and "13812345678" not in content

    _run(tmp_path, domain, scenario)


def test_a_retry_with_the_same_msgid_gets_success_and_no_second_reply(tmp_path, domain):
    async def scenario(h: Harness):
        openid = _openid()
        document = text_message(openid, "你好", msg_id=777)
        for _ in range(4):  # the push and WeChat's three retries
            status, body, _ = await h.push(document)
            assert (status, body) == (200, "success")
        await h.replies(openid, 1)
        await asyncio.sleep(0.5)
        assert len(h.received) == 1 and len(h.fake.sent_to(openid)) == 1

    _run(tmp_path, domain, scenario)


def test_entering_the_session_greets_with_numbered_topics_and_a_number_picks_one(tmp_path, domain):
    async def scenario(h: Harness):
        openid = _openid()
        enter = event_message(openid)
        assert (await h.push(enter))[:2] == (200, "success")
        assert (await h.push(enter))[:2] == (200, "success")  # a retry of the event (same sender + time)
        greeting = await h.replies(openid, 1)
        assert len(greeting) == 1, "one message is all WeChat allows after the user enters the session"
        content = greeting[0]["text"]["content"]
        buttons = domain["responses"]["utter_greet"][0]["buttons"]
        assert "您遇到了什么情况" in content and f"2. {buttons[1]['title']}" in content
        assert h.received[0].text == "/greet" and h.received[0].metadata["wechat_event"] == "user_enter_tempsession"

        await h.push(text_message(openid, "2"))
        await h.replies(openid, 2)
        assert h.received[1].text == buttons[1]["payload"]
        assert h.received[1].metadata["wechat_option"] == "2"
        await h.push(text_message(openid, "2"))  # options are gone once a reply without buttons came
        await h.replies(openid, 3)
        assert h.received[2].text == "2"

    _run(tmp_path, domain, scenario)


@pytest.mark.parametrize("kind", ["image", "miniprogrampage"])
def test_non_text_messages_get_please_type_and_never_reach_the_dialogue(tmp_path, domain, kind):
    async def scenario(h: Harness):
        openid = _openid()
        assert (await h.push(media_message(openid, kind)))[:2] == (200, "success")
        replies = await h.replies(openid, 1)
        assert replies[0]["text"]["content"] == channel_texts().text_only
        assert h.received == []

    _run(tmp_path, domain, scenario)


def test_other_events_are_acknowledged_and_ignored(tmp_path, domain):
    async def scenario(h: Harness):
        openid = _openid()
        assert (await h.push(event_message(openid, event="kf_close_session")))[:2] == (200, "success")
        await asyncio.sleep(0.5)
        assert h.received == [] and h.fake.sent_to(openid) == []

    _run(tmp_path, domain, scenario)


def test_messages_of_one_user_are_answered_in_order(tmp_path, domain):
    async def scenario(h: Harness):
        openid = _openid()
        await h.push(text_message(openid, "慢的第一条"))
        await h.push(text_message(openid, "第二条"))
        replies = await h.replies(openid, 2)
        assert [r["text"]["content"] for r in replies] == ["回答：慢的第一条", "回答：第二条"]

    _run(tmp_path, domain, scenario)


def test_send_errors_are_logged_and_recorded_never_lost(tmp_path, domain, caplog):
    async def scenario(h: Harness):
        openid = _openid()
        h.fake.fail_next_sends(45015)
        await h.push(text_message(openid, "你好"))
        store = h.channel.service.store
        for _ in range(100):
            failures = await store.recent_failures()
            if failures:
                break
            await asyncio.sleep(0.05)
        assert (failures[0].kind, failures[0].errcode) == ("send", 45015)
        assert failures[0].user_id == user_id(openid, ID_HASH_KEY)
        assert "回答：你好" in failures[0].detail and openid not in failures[0].detail

    caplog.set_level("WARNING")
    _run(tmp_path, domain, scenario)
    assert any("errcode 45015" in record.getMessage() for record in caplog.records)


def test_output_channel_sends_api_triggered_messages_to_the_user(tmp_path, domain):
    async def scenario(h: Harness):
        openid = _openid()
        await h.push(text_message(openid, "你好"))
        await h.replies(openid, 1)
        output = h.channel.get_output_channel()
        await output.send_response(user_id(openid, ID_HASH_KEY), {"text": "人工客服：您好，我来帮您看看。"})
        replies = await h.replies(openid, 2)
        assert replies[1]["text"]["content"] == "人工客服：您好，我来帮您看看。"

    _run(tmp_path, domain, scenario)


# ------------------------------------------------------------------------------------------ hand-over

@pytest.mark.parametrize("mode, data_format", [("safe", "json"), ("safe", "xml"), ("plaintext", "json")])
def test_hand_over_transfers_the_next_messages_to_wechats_customer_service_tool(tmp_path, domain, mode,
                                                                              data_format):
    async def scenario(h: Harness):
        openid = _openid()
        await h.push(text_message(openid, "/request_human"))
        replies = await h.replies(openid, 1)
        assert replies[0]["text"]["content"].endswith(channel_texts().transfer_started)

        status, body, _ = await h.push(text_message(openid, "我想问一下分期的事"))
        assert status == 200 and body != "success"
        reply = _decoded_reply(h.settings, body)
        assert reply["MsgType"] == "transfer_customer_service"
        assert (reply["ToUserName"], reply["FromUserName"]) == (openid, SAMPLE_ORIGINAL_ID)
        assert abs(int(reply["CreateTime"]) - time.time()) < 60
        assert [m.text for m in h.received] == ["/request_human"], "transferred messages skip the dialogue"

        status, body, _ = await h.push(event_message(openid))  # events are never transferred
        assert (status, body) == (200, "success")
        await h.replies(openid, 2)

    _run(tmp_path, domain, scenario, mode=mode, data_format=data_format, transfer_to_kf=True)


def _decoded_reply(s: WeChatSettings, body: str) -> Dict[str, Any]:
    import xmltodict

    if s.mode == "plaintext":
        return json.loads(body) if s.data_format == "json" else xmltodict.parse(body)["xml"]
    crypto = PushCrypto(s.token, s.encoding_aes_key, s.appid)
    if s.data_format == "json":
        outer = json.loads(body)
        timestamp, nonce = str(outer["TimeStamp"]), outer["Nonce"]
    else:
        outer = xmltodict.parse(body)["xml"]
        timestamp, nonce = outer["TimeStamp"], outer["Nonce"]
    plain = crypto.decrypt(outer["Encrypt"], outer["MsgSignature"], timestamp, nonce)
    return json.loads(plain) if s.data_format == "json" else xmltodict.parse(plain)["xml"]


def test_without_transfer_enabled_a_hand_over_is_only_text(tmp_path, domain):
    async def scenario(h: Harness):
        openid = _openid()
        await h.push(text_message(openid, "/request_human"))
        replies = await h.replies(openid, 1)
        assert replies[0]["text"]["content"] == "好的，正在为您安排人工客服。"
        assert (await h.push(text_message(openid, "还在吗")))[:2] == (200, "success")
        await h.replies(openid, 2)
        assert [m.text for m in h.received] == ["/request_human", "还在吗"]

    _run(tmp_path, domain, scenario)


# ------------------------------------------------------------------------------------------- bad input

def test_every_bad_input_gets_its_4xx_and_reaches_no_dialogue(tmp_path, domain):
    async def scenario(h: Harness):
        openid = _openid()
        good_params, good_body = signed_request(h.settings, text_message(openid, "你好"))
        stale_params, stale_body = signed_request(h.settings, text_message(openid, "你好"),
                                                  timestamp=int(time.time()) - 600)
        wrong_key = WeChatSettings(**{**h.settings.__dict__, "encoding_aes_key": OTHER_AES_KEY})
        undecryptable = signed_request(wrong_key, text_message(openid, "你好"))
        other_app = WeChatSettings(**{**h.settings.__dict__, "appid": "wxsomeoneelse000"})
        foreign = signed_request(other_app, text_message(openid, "你好"))
        plaintext = signed_request(h.settings, text_message(openid, "你好"), encrypt=False)
        t, n = good_params["timestamp"], good_params["nonce"]
        cases = [
            ("bad signature", {**good_params, "signature": "0" * 40}, good_body, 403),
            ("bad msg_signature", {**good_params, "msg_signature": "0" * 40}, good_body, 403),
            ("stale timestamp", stale_params, stale_body, 403),
            ("undecryptable", *undecryptable, 400),
            ("appid mismatch", *foreign, 403),
            ("malformed JSON", good_params, b'{"Encrypt": ', 400),
            ("malformed encrypted JSON", {**good_params, "msg_signature": sign(TOKEN, t, n, "QUJD")},
             b'{"Encrypt": "QUJD"}', 400),
            ("plaintext in safe mode", *plaintext, 400),
            ("missing parameters", {}, good_body, 400),
            ("oversized", good_params, b"{" + b" " * MAX_BODY_BYTES + b"}", 413),
        ]
        for name, params, body, expected in cases:
            status, text, _ = await h.post(params, body)
            assert status == expected, (name, status, text)
            assert "error" in json.loads(text) and "Traceback" not in text, name
        await asyncio.sleep(0.3)
        assert h.received == [] and h.fake.sent == [] and h.fake.token_requests == 0
        assert (await h.post(good_params, good_body))[:2] == (200, "success"), "still works after bad input"

    _run(tmp_path, domain, scenario)


def test_malformed_xml_is_400_in_xml_mode(tmp_path, domain):
    async def scenario(h: Harness):
        params, _ = signed_request(h.settings, text_message(_openid(), "你好"))
        status, text, _ = await h.post(params, b"<xml><Encrypt>abc</Encrypt>")
        assert status == 400 and "XML" in json.loads(text)["error"]
        assert h.received == []

    _run(tmp_path, domain, scenario, data_format="xml")


def test_unconfigured_channel_answers_503_with_the_reason(tmp_path, domain):
    async def scenario(h: Harness):
        params, body = signed_request(settings(), text_message(_openid(), "你好"))
        status, text, _ = await h.post(params, body)
        assert status == 503 and "not configured" in json.loads(text)["error"]
        assert (await h.get(WEBHOOK, signed_verification(settings())))[0] == 503
        status, text = await h.get("/webhooks/wechat_miniprogram/")
        assert status == 503 and json.loads(text)["status"] == "not_configured"
        assert h.received == []
        assert h.channel.get_output_channel() is None

    _run(tmp_path, domain, scenario, appid="", appsecret="", token="", encoding_aes_key="", id_hash_key="")


def test_unreachable_store_answers_503_so_that_wechat_retries(tmp_path, domain):
    async def scenario(h: Harness):
        status, text, _ = await h.push(text_message(_openid(), "你好"))
        assert status == 503 and "WECHAT_STORE_URL" in json.loads(text)["error"]
        assert "127.0.0.1:1" not in text and h.received == []

    _run(tmp_path, domain, scenario, store_url="postgresql://postgres@127.0.0.1:1/nowhere")


def test_access_log_lines_of_the_webhook_lose_their_query_string():
    import logging

    from bot.channels.wechat.channel import RedactWebhookQuery

    record = logging.LogRecord("sanic.access", logging.INFO, __file__, 1, "", None, None)
    record.request = "POST http://127.0.0.1:5005/webhooks/wechat_miniprogram/webhook?signature=x&openid=oSecret"
    assert RedactWebhookQuery().filter(record)
    assert record.request == "POST http://127.0.0.1:5005/webhooks/wechat_miniprogram/webhook?[redacted]"
    other = logging.LogRecord("sanic.access", logging.INFO, __file__, 1, "", None, None)
    other.request = "GET http://127.0.0.1:5005/status?token=t"
    RedactWebhookQuery().filter(other)
    assert other.request == "GET http://127.0.0.1:5005/status?token=t"


# ------------------------------------------------------------------------- docs/channels/wechat.md's samples

def _doc_curl_block() -> str:
    from bot import PROJECT_ROOT

    doc = (PROJECT_ROOT / "docs" / "channels" / "wechat.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", doc, flags=re.S)
    return next(block for block in blocks if "SIG=$(printf" in block)


def test_the_docs_curl_lines_are_accepted_in_plaintext_mode(tmp_path, domain):
    async def scenario(h: Harness):
        script = _doc_curl_block().replace("http://127.0.0.1:5005", h.url)
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", script, env={"PATH": os.environ["PATH"], "WECHAT_TOKEN": TOKEN},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        assert out.decode() == "success", err.decode()
        replies = await h.replies("oLocalTest", 1)
        assert replies[0]["text"]["content"] == "回答：你好"

    _run(tmp_path, domain, scenario, mode="plaintext")


@pytest.mark.parametrize("mode", ["plaintext", "safe"])
def test_the_sample_command_sends_a_push_the_channel_accepts(tmp_path, domain, monkeypatch, capsys, mode):
    from tests.support import wechat_pushes

    for name, value in {"WECHAT_APPID": APPID, "WECHAT_TOKEN": TOKEN, "WECHAT_MODE": mode,
                        "WECHAT_ENCODING_AES_KEY": settings().encoding_aes_key, "WECHAT_DATA_FORMAT": "json",
                        "WECHAT_ID_HASH_KEY": ID_HASH_KEY}.items():
        monkeypatch.setenv(name, value)

    async def scenario(h: Harness):
        url = h.url + WEBHOOK
        code = await asyncio.to_thread(wechat_pushes.main, ["--url", url, "--text", "你好", "--openid", "oSample",
                                                            "--send"])
        assert code == 0
        await h.replies("oSample", 1)
        assert h.received[0].sender_id == user_id("oSample", ID_HASH_KEY)
        assert await asyncio.to_thread(wechat_pushes.main, ["--url", url]) == 0  # prints a curl command

    _run(tmp_path, domain, scenario, mode=mode)
    printed = capsys.readouterr()
    assert "200 success" in printed.out and "curl -s -XPOST" in printed.out
    assert user_id("oSample", ID_HASH_KEY) in printed.err


def test_options_stay_answerable_after_the_channels_own_please_type_notice(tmp_path, domain):
    async def scenario(h: Harness):
        openid = _openid()
        await h.push(event_message(openid))
        await h.replies(openid, 1)
        await h.push(media_message(openid, "image"))
        await h.replies(openid, 2)
        await h.push(text_message(openid, "3"))
        await h.replies(openid, 3)
        assert h.received[-1].text == domain["responses"]["utter_greet"][0]["buttons"][2]["payload"]

    _run(tmp_path, domain, scenario)


@pytest.mark.parametrize("mode", ["plaintext", "safe"])
def test_a_nonce_replayed_with_another_body_is_refused_and_a_retry_is_not(tmp_path, domain, mode):
    async def scenario(h: Harness):
        openid = _openid()
        params, body = signed_request(h.settings, text_message(openid, "你好", msg_id=4242), nonce="424242")
        assert (await h.post(params, body))[:2] == (200, "success")
        assert (await h.post(params, body))[:2] == (200, "success")  # WeChat's retry: the same request
        _, other = signed_request(h.settings, text_message(openid, "我要转账", msg_id=4343),
                                  timestamp=int(params["timestamp"]), nonce="424242")
        status, text, _ = await h.post(params, other)  # the signed query replayed with a new body
        assert status == 403  # safe mode: the msg_signature no longer matches; plaintext: the remembered nonce
        if mode == "plaintext":
            assert "replayed" in json.loads(text)["error"]
        await h.replies(openid, 1)
        await asyncio.sleep(0.3)
        assert len(h.received) == 1

    _run(tmp_path, domain, scenario, mode=mode)
