"""Every channel screens messages: empty and over-long ones are answered, PII is masked before the dialogue."""
from __future__ import annotations

import asyncio

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from bot.channels.guard import MAX_MESSAGE_CHARS, clean_text, guard_messages
from bot.texts import response_text as notice_text

ANSWER = "对话的回答"


def _screen(text, metadata=None):
    received = []

    async def dialogue(message: UserMessage) -> None:
        received.append(message)
        await message.output_channel.send_response(message.sender_id, {"text": ANSWER})

    output = CollectingOutputChannel()
    message = UserMessage(text, output, "user-1", metadata=metadata)
    asyncio.run(guard_messages(dialogue)(message))
    return received, [m["text"] for m in output.messages]


def test_empty_and_whitespace_messages_get_a_reply_and_never_reach_the_dialogue():
    for text in ("", "   ", "\u200b\x00\n", None):
        received, replies = _screen(text)
        assert received == []
        assert replies == [notice_text("utter_empty_message")]


def test_over_long_message_is_refused_with_a_reply():
    received, replies = _screen("我" * (MAX_MESSAGE_CHARS + 1))
    assert received == []
    assert replies == [notice_text("utter_message_too_long")]


def test_message_at_the_limit_passes():
    received, replies = _screen("欠" * MAX_MESSAGE_CHARS)
    assert len(received) == 1 and replies == [ANSWER]


def test_personal_data_is_masked_before_the_dialogue_and_the_user_is_told():
    received, replies = _screen("我身份证11010519491231002X，电话13812345678", metadata={"a": 1})
    assert received[0].text == "我身份证[身份证号已隐藏]，电话[手机号已隐藏]"
    assert received[0].metadata == {"pii_masked": {"resident_id": 1, "mobile": 1}}
    assert replies == [notice_text("utter_privacy_notice"), ANSWER]


def test_control_characters_are_removed_but_newlines_kept():
    assert clean_text("欠款\x07\n两万\u202e") == "欠款\n两万"
    assert clean_text(12345) == ""


def test_client_metadata_is_dropped_and_the_channels_own_keys_are_kept_masked():
    sent = {"name": "张三", "phone": "13812345678", "profile": {"id": "11010519491231002X"},
            "wechat_msg_type": "text", "wechat_option": "我的手机13812345678" + "很" * 300, "wechat_event": True,
            "pii_masked": {"mobile": 99}}
    received, _ = _screen("信用卡还不上了", metadata=sent)
    kept = received[0].metadata
    assert set(kept) == {"wechat_msg_type", "wechat_option", "wechat_event"}
    assert "13812345678" not in kept["wechat_option"] and "[手机号已隐藏]" in kept["wechat_option"]
    assert len(kept["wechat_option"]) <= 200 and kept["wechat_event"] is True


def test_metadata_that_is_not_an_object_becomes_empty():
    for metadata in (None, [1, 2], "x", 5):
        received, _ = _screen("你好", metadata=metadata)
        assert received[0].metadata == {}
