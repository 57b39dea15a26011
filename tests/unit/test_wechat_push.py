"""Checking WeChat pushes: settings, signatures, replay protection, AES, parsing, and every bad input."""
from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from bot.channels.wechat.push import MAX_BODY_BYTES, read_push, verify_url
from bot.channels.wechat.security import PushCrypto, PushRejected, check_timestamp, sign
from bot.channels.wechat.settings import WeChatSettings
from tests.support.wechat import APPID, OTHER_AES_KEY, TOKEN, environment, settings
from tests.support.wechat_pushes import (
    SAMPLE_ORIGINAL_ID,
    event_message,
    media_message,
    signed_request,
    signed_verification,
    text_message,
)

OPENID = "oTest-openid-push"


def _crypto(s: WeChatSettings) -> PushCrypto:
    return PushCrypto(s.token, s.encoding_aes_key, s.appid)


def _rejected(s, params, body, status, reason):
    with pytest.raises(PushRejected) as refused:
        read_push(params, body, s, _crypto(s))
    assert refused.value.status == status
    assert reason in refused.value.reason
    return refused.value


# ------------------------------------------------------------------------------------------------ settings

def test_settings_come_from_the_environment():
    s = WeChatSettings.from_env(environment(WECHAT_TRANSFER_TO_KF="true", WECHAT_API_BASE_URL="http://x:1/"))
    assert s.problems() == []
    assert (s.appid, s.mode, s.data_format, s.transfer_to_kf, s.api_base_url) == (APPID, "safe", "json", True,
                                                                                   "http://x:1")
    assert s.store_url.startswith("sqlite:///") and s.store_url.endswith("var/wechat.db")


def test_the_store_url_is_read_from_wechat_store_url(caplog):
    caplog.set_level("WARNING")
    s = WeChatSettings.from_env(environment(WECHAT_STORE_URL="redis://127.0.0.1:6379/3"))
    assert s.store_url == "redis://127.0.0.1:6379/3" and s.problems() == []
    assert not caplog.records


def test_the_deprecated_wechat_dedup_url_is_read_when_wechat_store_url_is_unset(caplog):
    caplog.set_level("WARNING")
    s = WeChatSettings.from_env(environment(WECHAT_DEDUP_URL="postgresql://bot@db/wechat"))
    assert s.store_url == "postgresql://bot@db/wechat" and s.problems() == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "WECHAT_DEDUP_URL is deprecated" in warnings[0] and "WECHAT_STORE_URL" in warnings[0]
    assert "postgresql" not in warnings[0], "the URL (it may hold a password) is not logged"


def test_wechat_store_url_wins_over_the_deprecated_name_and_says_so(caplog):
    caplog.set_level("WARNING")
    s = WeChatSettings.from_env(environment(WECHAT_STORE_URL="sqlite:///new.db", WECHAT_DEDUP_URL="sqlite:///old.db"))
    assert s.store_url == "sqlite:///new.db"
    assert any("WECHAT_DEDUP_URL is deprecated and ignored" in r.getMessage() for r in caplog.records)


def test_a_malformed_store_url_is_named_with_either_variable():
    for name in ("WECHAT_STORE_URL", "WECHAT_DEDUP_URL"):
        problems = WeChatSettings.from_env(environment(**{name: "var/wechat.db"})).problems()
        assert any("WECHAT_STORE_URL" in p and "must be a SQLAlchemy URL" in p for p in problems), problems


def test_no_settings_means_not_configured_with_one_clear_reason():
    problems = WeChatSettings.from_env({}).problems()
    assert len(problems) == 1 and "not configured" in problems[0] and "WECHAT_TOKEN" in problems[0]


@pytest.mark.parametrize("changes, problem", [
    ({"WECHAT_TOKEN": ""}, "WECHAT_TOKEN is not set"),
    ({"WECHAT_ENCODING_AES_KEY": ""}, "WECHAT_ENCODING_AES_KEY is not set"),
    ({"WECHAT_ENCODING_AES_KEY": "short"}, "43 characters"),
    ({"WECHAT_ENCODING_AES_KEY": "!" * 43}, "not base64"),
    ({"WECHAT_MODE": "secret"}, "WECHAT_MODE must be one of"),
    ({"WECHAT_DATA_FORMAT": "yaml"}, "WECHAT_DATA_FORMAT must be json or xml"),
    ({"WECHAT_TRANSFER_TO_KF": "maybe"}, "WECHAT_TRANSFER_TO_KF must be true or false"),
    ({"WECHAT_ID_HASH_KEY": "short"}, "at least 16 characters"),
    ({"WECHAT_API_BASE_URL": "api.weixin.qq.com"}, "must start with http"),
])
def test_incomplete_or_invalid_settings_are_named(changes, problem):
    problems = WeChatSettings.from_env(environment(**changes)).problems()
    assert any(problem in p for p in problems), problems


def test_plaintext_mode_needs_no_aes_key():
    assert WeChatSettings.from_env(environment(WECHAT_MODE="plaintext", WECHAT_ENCODING_AES_KEY="")).problems() == []


# ------------------------------------------------------------------------------------------- signatures

def test_signature_matches_the_example_in_wechats_documentation():
    # developers.weixin.qq.com, 消息推送 "发起验证": Token AAAAA, timestamp 1714036504, nonce 1514711492
    assert sign("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    # 消息加解密说明, 明文模式 example push
    assert sign("AAAAA", "1714037059", "486452656") == "899cf89e464efb63f54ddac96b0a0a235f53aa78"


def test_url_verification_echoes_echostr_only_with_the_right_signature():
    s = settings()
    params = signed_verification(s, echostr="4375120948345356249")
    assert verify_url(params, s) == "4375120948345356249"
    with pytest.raises(PushRejected) as refused:
        verify_url({**params, "signature": "0" * 40}, s)
    assert refused.value.status == 403
    with pytest.raises(PushRejected) as refused:
        verify_url({k: v for k, v in params.items() if k != "echostr"}, s)
    assert refused.value.status == 400
    with pytest.raises(PushRejected) as refused:
        verify_url(signed_verification(s, timestamp=int(time.time()) - 301), s)
    assert refused.value.status == 403 and "stale" in refused.value.reason


def test_timestamp_window_is_five_minutes_either_way():
    now = 1_700_000_000
    assert check_timestamp(str(now - 300), now) == now - 300
    assert check_timestamp(str(now + 300), now) == now + 300
    for stale in (now - 301, now + 301):
        with pytest.raises(PushRejected) as refused:
            check_timestamp(str(stale), now)
        assert refused.value.status == 403
    with pytest.raises(PushRejected) as refused:
        check_timestamp("12a", now)
    assert refused.value.status == 400


# ---------------------------------------------------------------------------------------------- crypto

def test_decrypts_the_known_answer_from_wechats_sample_code():
    # The test vector of WeChat's official WXBizMsgCrypt samples (also used by wechatpy's own tests).
    crypto = PushCrypto("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
    encrypted = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
    plain = crypto.decrypt(encrypted, "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425")
    assert plain == "5927782489442352469"


def test_encryption_round_trip_keeps_chinese_text_and_is_randomised():
    s = settings()
    crypto = _crypto(s)
    document = json.dumps({"Content": "有人说交钱能帮我征信修复 <&>"}, ensure_ascii=False)
    first, second = crypto.encrypt(document), crypto.encrypt(document)
    assert first != second  # random 16-byte prefix
    for ciphertext in (first, second):
        assert crypto.decrypt(ciphertext, sign(TOKEN, "1", "n", ciphertext), "1", "n") == document


def test_encrypted_reply_in_json_and_xml_decrypts_to_the_reply():
    s = settings()
    crypto = _crypto(s)
    reply = json.loads(crypto.encrypted_reply('{"MsgType": "transfer_customer_service"}', "json", "nonce1", "123"))
    assert reply["MsgSignature"] == sign(TOKEN, "123", "nonce1", reply["Encrypt"])
    assert crypto.decrypt(reply["Encrypt"], reply["MsgSignature"], "123", "nonce1") == \
        '{"MsgType": "transfer_customer_service"}'
    xml = crypto.encrypted_reply("<xml><MsgType>transfer_customer_service</MsgType></xml>", "xml", "n2", "124")
    assert "<Encrypt><![CDATA[" in xml and "<MsgSignature><![CDATA[" in xml


# ------------------------------------------------------------------------------------------- good pushes

@pytest.mark.parametrize("mode", ["plaintext", "compatible", "safe"])
@pytest.mark.parametrize("data_format", ["json", "xml"])
def test_text_push_is_read_in_every_mode_and_format(mode, data_format):
    s = settings(mode=mode, data_format=data_format)
    params, body = signed_request(s, text_message(OPENID, "有人说交钱能帮我征信修复", msg_id=8_000_000_000_000_000_001))
    push = read_push(params, body, s, _crypto(s))
    assert (push.openid, push.msg_type, push.content) == (OPENID, "text", "有人说交钱能帮我征信修复")
    assert push.msg_id == "8000000000000000001" and push.dedup_key == "msg:8000000000000000001"
    assert push.encrypted is (mode != "plaintext")
    if mode == "safe":
        assert "有人说".encode() not in body and OPENID.encode() not in body


def test_compatible_mode_refuses_a_push_whose_encryption_was_stripped():
    s = settings(mode="compatible")
    params, body = signed_request(s, text_message(OPENID, "你好"), encrypt=False)
    _rejected(s, params, body, 403, "stripped encryption")


@pytest.mark.parametrize("mode", ["plaintext", "compatible", "safe"])
def test_a_push_to_another_mini_program_is_refused(mode):
    s = replace(settings(mode=mode), original_id=SAMPLE_ORIGINAL_ID)
    params, body = signed_request(s, text_message(OPENID, "你好"))
    assert read_push(params, body, s, _crypto(s)).content == "你好"
    params, body = signed_request(s, {**text_message(OPENID, "你好"), "ToUserName": "gh_someone_else"})
    _rejected(s, params, body, 403, "'ToUserName' is not")


@pytest.mark.parametrize("data_format", ["json", "xml"])
def test_events_and_media_are_read_and_events_dedup_by_sender_and_time(data_format):
    s = settings(data_format=data_format)
    params, body = signed_request(s, event_message(OPENID, create_time=1_700_000_123))
    push = read_push(params, body, s, _crypto(s))
    assert push.event == "user_enter_tempsession" and push.msg_id is None
    assert push.dedup_key == f"event:{OPENID}:1700000123"
    for kind in ("image", "miniprogrampage"):
        params, body = signed_request(s, media_message(OPENID, kind))
        assert read_push(params, body, s, _crypto(s)).msg_type == kind


# -------------------------------------------------------------------------------------------- bad input

def test_wrong_signature_is_403():
    s = settings(mode="plaintext")
    params, body = signed_request(s, text_message(OPENID, "hi"))
    _rejected(s, {**params, "signature": "f" * 40}, body, 403, "'signature' does not match")


def test_wrong_msg_signature_is_403():
    s = settings()
    params, body = signed_request(s, text_message(OPENID, "hi"))
    _rejected(s, {**params, "msg_signature": "f" * 40}, body, 403, "'msg_signature' does not match")


def test_body_swapped_under_a_valid_signature_is_403():
    s = settings()
    params, _ = signed_request(s, text_message(OPENID, "hi"))
    _, other_body = signed_request(s, text_message(OPENID, "another message"))
    _rejected(s, params, other_body, 403, "'msg_signature' does not match")


def test_stale_timestamp_is_403_even_with_a_valid_signature():
    s = settings()
    params, body = signed_request(s, text_message(OPENID, "hi"), timestamp=int(time.time()) - 301)
    _rejected(s, params, body, 403, "stale or replayed")


def test_missing_query_parameters_are_400():
    s = settings()
    params, body = signed_request(s, text_message(OPENID, "hi"))
    for name in ("signature", "timestamp", "nonce", "msg_signature"):
        _rejected(s, {k: v for k, v in params.items() if k != name}, body, 400, f"'{name}' is required")


def test_undecryptable_body_is_400():
    s = settings()
    other = settings(encoding_aes_key=OTHER_AES_KEY)
    params, body = signed_request(other, text_message(OPENID, "hi"))  # signed with our token, wrong key
    _rejected(s, params, body, 400, "cannot be decrypted")
    for garbage in ("not base64 !!", "QUJD", "A" * 44):
        timestamp, nonce = params["timestamp"], params["nonce"]
        forged = {**params, "msg_signature": sign(TOKEN, timestamp, nonce, garbage)}
        _rejected(s, forged, json.dumps({"ToUserName": "gh", "Encrypt": garbage}).encode(), 400, "cannot be decrypted")


def test_message_encrypted_for_another_appid_is_403():
    s = settings()
    foreign = settings(appid="wx-someone-else")
    params, body = signed_request(foreign, text_message(OPENID, "hi"))
    _rejected(s, params, body, 403, "different AppID")


@pytest.mark.parametrize("data_format, body, reason", [
    ("json", b"{not json", "not valid JSON"),
    ("json", b"[1, 2]", "must be a JSON object"),
    ("json", b"\xff\xfe", "not UTF-8"),
    ("xml", b"<xml><Content>unclosed</xml>", "not well-formed XML"),
    ("xml", b"<notxml/>", "must be an <xml> document"),
    ("xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml><A>&a;</A></xml>', "not well-formed XML"),
    ("xml", b"<xml><A><B>1</B></A></xml>", "nested or repeated"),
])
def test_malformed_bodies_are_400(data_format, body, reason):
    s = settings(mode="plaintext", data_format=data_format)
    params, _ = signed_request(s, text_message(OPENID, "hi"))
    _rejected(s, params, body, 400, reason)


@pytest.mark.parametrize("document, reason", [
    ({"MsgType": "text", "CreateTime": 1}, "'FromUserName' is required"),
    ({"FromUserName": OPENID, "CreateTime": 1}, "'MsgType' is required"),
    ({"FromUserName": OPENID, "MsgType": "text"}, "'CreateTime' is required"),
    ({"FromUserName": OPENID, "MsgType": "text", "CreateTime": 1, "Content": ["x"]}, "'Content' must be"),
    ({"FromUserName": OPENID, "MsgType": "text", "CreateTime": 1, "MsgId": "1; drop"}, "'MsgId' must be"),
])
def test_pushes_without_the_required_fields_are_400(document, reason):
    s = settings()
    params, body = signed_request(s, document)
    _rejected(s, params, body, 400, reason)


def test_encrypted_push_without_encrypt_field_is_400():
    s = settings()
    params, _ = signed_request(s, text_message(OPENID, "hi"))
    _rejected(s, params, b'{"ToUserName": "gh"}', 400, "'Encrypt' field")


def test_plaintext_push_in_safe_mode_is_400():
    s = settings(mode="safe")
    params, body = signed_request(s, text_message(OPENID, "hi"), encrypt=False)
    _rejected(s, params, body, 400, "unencrypted pushes are refused")


def test_oversized_body_is_413_before_anything_else():
    s = settings()
    _rejected(s, {}, b" " * (MAX_BODY_BYTES + 1), 413, "larger than")
