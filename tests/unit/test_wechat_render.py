"""Rendering bot messages for WeChat: numbered options, links, custom payloads, quotas and long texts."""
from __future__ import annotations

import re

import pytest

from bot.channels.wechat.render import (
    MAX_TEXT_BYTES,
    QUOTA_AFTER_ENTER_SESSION,
    QUOTA_AFTER_MESSAGE,
    TEXTS_FILE,
    ChannelTexts,
    RenderOptions,
    channel_texts,
    render_turn,
    selected_payload,
)

PLAIN = RenderOptions(appid="wx0123456789abcdef")


def _texts(turn):
    return [m["text"]["content"] for m in turn.messages if m["msgtype"] == "text"]


def test_channel_texts_exist_hold_no_digits_and_are_not_a_training_input():
    texts = channel_texts()
    for value in (texts.text_only, texts.options_intro, texts.transfer_started):
        assert value and not re.search(r"\d", value)
    from bot.ops.model_store import TRAINING_INPUTS

    assert not any(str(TEXTS_FILE.relative_to(TEXTS_FILE.parents[2])).startswith(entry) for entry in TRAINING_INPUTS)


def test_missing_channel_text_is_a_clear_error(tmp_path, monkeypatch):
    import bot.texts

    broken = tmp_path / "wechat.yml"
    monkeypatch.setattr(bot.texts, "CHANNEL_TEXTS_DIR", tmp_path)  # read through bot.texts, as the channel does
    bot.texts.channel_texts.cache_clear()
    try:
        broken.write_text("text_only: 请输入文字\ntransfer_started: 正在转接\n", encoding="utf-8")
        with pytest.raises(ValueError, match="wechat.yml: options_intro"):
            ChannelTexts.load()
        bot.texts.channel_texts.cache_clear()
        broken.write_text("text_only: 请输入文字\noptions_intro: ''\n", encoding="utf-8")
        with pytest.raises(ValueError, match="wechat.yml: options_intro"):  # bot.texts refuses it itself
            ChannelTexts.load()
    finally:
        bot.texts.channel_texts.cache_clear()
    with pytest.raises(ValueError, match="wechat.yml: options_intro"):
        ChannelTexts.from_texts({"text_only": "请输入文字", "options_intro": " ", "transfer_started": "正在转接"})


def test_buttons_become_numbered_options_under_the_text(domain):
    greet = dict(domain["responses"]["utter_greet"][0])
    turn = render_turn([greet], QUOTA_AFTER_ENTER_SESSION, PLAIN)
    assert len(turn.messages) == 1, "the greeting fits the one message allowed after entering the session"
    text = _texts(turn)[0]
    assert text.startswith(greet["text"].strip())
    assert channel_texts().options_intro in text
    for number, button in enumerate(greet["buttons"], start=1):
        assert f"\n{number}. {button['title']}" in text
    assert turn.options == [button["payload"] for button in greet["buttons"]]


def test_a_number_maps_back_to_the_option_payload():
    options = ["/ask_hardship_plan", "/seek_debt_agency", "/seek_credit_repair"]
    assert selected_payload("2", options) == "/seek_debt_agency"
    assert selected_payload(" ３ ", options) == "/seek_credit_repair"  # full-width digit
    assert selected_payload("1.", options) == "/ask_hardship_plan"
    assert selected_payload("（1）", options) == "/ask_hardship_plan"
    for not_an_option in ("0", "4", "12345", "我欠了2万", "", "一"):
        assert selected_payload(not_an_option, options) is None
    assert selected_payload("1", []) is None


def test_options_are_numbered_across_the_messages_of_a_turn():
    turn = render_turn([
        {"text": "第一段", "buttons": [{"title": "甲", "payload": "/a"}]},
        {"text": "第二段", "buttons": [{"title": "乙", "payload": "/b"}, {"title": "丙", "payload": "/c"}]},
    ], QUOTA_AFTER_MESSAGE, PLAIN)
    text = "\n".join(_texts(turn))
    assert "1. 甲" in text and "2. 乙" in text and "3. 丙" in text
    assert turn.options == ["/a", "/b", "/c"]
    assert len(turn.messages) == 1, "texts of one turn are joined into one message"


def test_url_buttons_become_link_cards_when_a_picture_is_configured():
    message = {"text": "官方说明", "buttons": [{"title": "查看官方说明", "url": "https://www.example.gov.cn/a",
                                              "type": "web_url"}, {"title": "继续", "payload": "/affirm"}]}
    turn = render_turn([message], QUOTA_AFTER_MESSAGE,
                       RenderOptions(link_thumb_url="https://www.example.gov.cn/logo.png"))
    assert [m["msgtype"] for m in turn.messages] == ["text", "link"]
    assert turn.messages[1]["link"] == {"title": "查看官方说明", "description": "官方说明",
                                        "url": "https://www.example.gov.cn/a",
                                        "thumb_url": "https://www.example.gov.cn/logo.png"}
    assert turn.options == ["/affirm"]
    without_picture = render_turn([message], QUOTA_AFTER_MESSAGE, PLAIN)
    assert [m["msgtype"] for m in without_picture.messages] == ["text"]
    assert "查看官方说明：https://www.example.gov.cn/a" in _texts(without_picture)[0]


def test_page_paths_become_miniprogram_cards_or_text_page_links():
    message = {"text": "填写申请", "buttons": [{"title": "打开申请页", "payload": "pages/apply/index?from=bot"}]}
    card = render_turn([message], QUOTA_AFTER_MESSAGE, RenderOptions(appid="wxA", page_thumb_media_id="MEDIA"))
    assert card.messages[1] == {"msgtype": "miniprogrampage", "miniprogrampage": {
        "title": "打开申请页", "pagepath": "pages/apply/index?from=bot", "thumb_media_id": "MEDIA"}}
    text_link = render_turn([message], QUOTA_AFTER_MESSAGE, RenderOptions(appid="wxA"))
    assert 'data-miniprogram-appid="wxA"' in _texts(text_link)[0]
    assert 'data-miniprogram-path="pages/apply/index?from=bot"' in _texts(text_link)[0]


def test_custom_payloads_are_skipped_or_use_their_fallback_text():
    card = {"type": "channel_card", "title": "招商银行", "fallback_text": "招商银行客服电话：（略）"}
    with_text = render_turn([{"text": "请联系银行", "custom": card}], QUOTA_AFTER_MESSAGE, PLAIN)
    assert _texts(with_text) == ["请联系银行"]
    alone = render_turn([{"custom": card}], QUOTA_AFTER_MESSAGE, PLAIN)
    assert _texts(alone) == ["招商银行客服电话：（略）"]
    nothing = render_turn([{"custom": {"type": "handoff", "status": "unavailable"}}], QUOTA_AFTER_MESSAGE, PLAIN)
    assert nothing.messages == [] and not nothing.transfer


def test_handoff_queued_requests_a_transfer_only_when_enabled():
    messages = [{"text": "正在为您排队", "custom": {"type": "handoff", "status": "queued", "ticket_id": "t1"}}]
    disabled = render_turn(messages, QUOTA_AFTER_MESSAGE, PLAIN)
    assert not disabled.transfer and _texts(disabled) == ["正在为您排队"]
    enabled = render_turn(messages, QUOTA_AFTER_MESSAGE, RenderOptions(transfer_to_kf=True))
    assert enabled.transfer
    assert _texts(enabled) == [f"正在为您排队\n\n{channel_texts().transfer_started}"]


def test_long_texts_are_split_below_the_byte_limit_at_line_breaks():
    paragraph = "\n".join(f"第{i}行：" + "欠" * 60 for i in range(40))
    turn = render_turn([{"text": paragraph}], QUOTA_AFTER_MESSAGE, PLAIN)
    texts = _texts(turn)
    assert len(texts) > 1 and all(len(t.encode("utf-8")) <= MAX_TEXT_BYTES for t in texts)
    assert "\n".join(texts) == paragraph
    single_line = "债" * 1500
    pieces = _texts(render_turn([{"text": single_line}], QUOTA_AFTER_MESSAGE, PLAIN))
    assert "".join(pieces) == single_line and all(len(p.encode()) <= MAX_TEXT_BYTES for p in pieces)


def test_quota_turns_cards_into_text_then_drops_and_counts_the_rest():
    link_options = RenderOptions(link_thumb_url="https://x.example/p.png")
    messages = [{"text": "说明", "buttons": [{"title": f"链接{i}", "url": f"https://x.example/{i}"}
                                            for i in range(3)]}]
    turn = render_turn(messages, QUOTA_AFTER_ENTER_SESSION, link_options)
    assert len(turn.messages) == 1 and turn.dropped == 0
    assert all(f"链接{i}：https://x.example/{i}" in _texts(turn)[0] for i in range(3))
    huge = [{"text": "欠" * 600} for _ in range(10)]  # 1,800 bytes each: one message each
    overflow = render_turn(huge, QUOTA_AFTER_MESSAGE, PLAIN)
    assert len(overflow.messages) == QUOTA_AFTER_MESSAGE and overflow.dropped == 5
