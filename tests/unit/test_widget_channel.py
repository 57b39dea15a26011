"""The widget channel without a server: which files it serves, the session transcript, the socketio output fix."""
from __future__ import annotations

import json
import re

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

from bot import PROJECT_ROOT
from bot.channels import widget
from bot.channels.widget import STATIC_FILES, WidgetInput, session_transcript


def test_channel_is_named_widget_and_takes_no_settings():
    channel = WidgetInput.from_credentials(None)
    assert channel.name() == "widget" and channel.url_prefix() == "widget"


def test_credentials_register_the_widget_channel():
    assert "bot.channels.widget.WidgetInput:" in (PROJECT_ROOT / "credentials.yml").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [n for n in STATIC_FILES if not n.startswith("vendor/")])
def test_every_listed_file_exists(name):
    assert (PROJECT_ROOT / "web" / name).is_file()


def test_page_is_served_with_a_strict_content_security_policy():
    answer = widget._static("index.html")
    assert answer.status == 200
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_missing_socketio_client_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(widget, "WEB_DIR", tmp_path)
    answer = widget._static("vendor/socket.io.min.js")
    assert answer.status == 503 and b"scripts/setup" in answer.body


def test_page_has_no_inline_script_and_loads_only_local_files():
    page = (PROJECT_ROOT / "web" / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None, "inline scripts break the page's CSP"
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert "://" not in url, f"{url} must be served by the widget channel, not another origin"


def test_web_files_hold_no_phone_number():
    for path in (PROJECT_ROOT / "web").glob("*.*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"(?<![\d.])(?:1\d{10}|9\d{4}|400\d{7}|12\d{3})(?![\d.])", text), path.name


def test_package_lock_pins_socketio_client_v4():
    lock = json.loads((PROJECT_ROOT / "web" / "package-lock.json").read_text(encoding="utf-8"))
    version = lock["packages"]["node_modules/socket.io-client"]["version"]
    assert version.startswith("4.")


def _events():
    return [
        ActionExecuted("action_listen"),
        UserUttered("/greet", input_channel="socketio"),
        BotUttered("您好", {"quick_replies": [{"content_type": "text", "title": "想修复征信",
                                               "payload": "/seek_credit_repair"}]}),
        UserUttered("/seek_credit_repair", input_channel="socketio"),
        BotUttered("⚠️ 征信修复是骗局"),
        UserUttered("我手机13812345678", input_channel="socketio"),
        SlotSet("bank", "招商银行"),
        UserUttered("/request_human", input_channel="socketio"),
        BotUttered("暂未接入人工", {"custom": {"type": "handoff", "status": "unavailable"}}),
    ]


def test_transcript_shows_button_titles_masks_again_and_keeps_custom_payloads():
    messages = session_transcript(_events())
    assert messages[0] == {"from": "user", "payload": "/greet"}
    assert messages[1]["quick_replies"] == [{"title": "想修复征信", "payload": "/seek_credit_repair"}]
    assert messages[2] == {"from": "user", "text": "想修复征信"}
    assert messages[3] == {"from": "bot", "text": "⚠️ 征信修复是骗局"}
    assert "13812345678" not in messages[4]["text"] and messages[4]["from"] == "user"
    assert messages[5] == {"from": "user", "payload": "/request_human"}
    assert messages[6]["custom"] == {"type": "handoff", "status": "unavailable"}
    assert all(set(m) <= {"from", "text", "payload", "quick_replies", "custom"} for m in messages)


def test_transcript_keeps_only_the_latest_messages():
    events = [BotUttered(f"第{i}条") for i in range(10)]
    assert [m["text"] for m in session_transcript(events, limit=3)] == ["第7条", "第8条", "第9条"]


def test_transcript_is_served_only_for_server_generated_ids_of_socketio_conversations():
    for good in ["web-0123456789abcdef0123456789abcdef", "bank-0123456789abcdef0123456789abcdef"]:
        assert widget.SESSION_ID.match(good)
    for bad in ["t1", "../../etc", "0123456789abcdef0123456789abcdef", "web-0123456789ABCDEF0123456789ABCDEF",
                "web-" + "0" * 33, "wx-0123456789abcdef0123456789abcdef"]:
        assert not widget.SESSION_ID.match(bad)
    assert widget._came_over_socketio(_events())
    assert not widget._came_over_socketio([UserUttered("你好", input_channel="rest")])
