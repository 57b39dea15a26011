"""The bank-app widget in a real browser: Debian's headless Chromium driven by Playwright, against the real Rasa
and action servers (started as in tests/e2e/test_rest_and_socketio.py), on a 375 x 812 phone viewport unless said
otherwise.

Each test opens the page in a fresh browser context, so it starts a conversation of its own. The server
restart test runs last: it stops the pair and starts it again on the same ports.
"""
from __future__ import annotations

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict

import pytest

from bot import PROJECT_ROOT
from bot.ops.servers import RunningServers, start_servers
from tests.support.browser import (
    CHROMIUM_ARGS,
    CJK_FONT_FAMILY,
    chinese_font_families,
    cjk_rendering_problems,
    ensure_chromium,
    ensure_widget_assets,
)
from tests.support.servers import free_port, start_test_servers, write_sqlite_endpoints

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by scripts/setup")
expect = playwright_api.expect

pytestmark = pytest.mark.e2e

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}
SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "widget-mobile.png"
REPLY_TIMEOUT = 60_000  # ms; the first message of a conversation also creates the tracker
WIDGET = "section.dhw"

WARNING_QUESTION = "有人说交钱能帮我征信修复"
AGENCY_QUESTION = "有个公司说交三千块服务费就能帮我停息挂账，靠谱吗"
BANK_QUESTION = "招行信用卡还不上了想跟银行协商"


@pytest.fixture(scope="module")
def bank_port() -> int:
    """The port of the stand-in bank site (``bank_site``), chosen first so that the servers can allow its origin."""
    return free_port()


@pytest.fixture(scope="module")
def live(trained_model, tmp_path_factory, bank_port) -> Dict[str, RunningServers]:
    """The server pair, in a dict so that the restart test can replace it (teardown stops the current one). CORS
    is granted to the bank site's origin only (RASA_CORS_ORIGINS), as a bank embedding the widget configures it."""
    ensure_widget_assets()
    directory = tmp_path_factory.mktemp("widget")
    holder = {"servers": start_test_servers(trained_model, directory, write_sqlite_endpoints(directory),
                                            {"RASA_CORS_ORIGINS": f"http://127.0.0.1:{bank_port}"})}
    yield holder
    holder["servers"].stop()


class _HostPages(BaseHTTPRequestHandler):
    pages: Dict[str, str] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.pages.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write((body or "not found").encode("utf-8"))

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def bank_site(bank_port):
    """A stand-in for a bank's own site: another origin (loopback, ``bank_port``) whose pages embed the widget.

    Returns a function ``(path, html) -> url`` that publishes a page.
    """
    server = ThreadingHTTPServer(("127.0.0.1", bank_port), _HostPages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def publish(path: str, html: str) -> str:
        _HostPages.pages[path] = html
        return f"http://127.0.0.1:{server.server_address[1]}{path}"

    yield publish
    server.shutdown()
    server.server_close()


def host_page(embed_script: str, mount_call: str) -> str:
    """A minimal bank page that embeds the widget: the script tag and the mount call."""
    return ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>示例银行</title></head>'
            f'<body><h1>示例银行</h1><div id="c"></div><script src="{embed_script}"></script>'
            f"<script>window.debtHelpChat = DebtHelpWidget.mount({mount_call});</script></body></html>")


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium (installed through apt when missing), shared by the module's tests."""
    executable = ensure_chromium()
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _new_page(browser, viewport=PHONE):
    context = browser.new_context(viewport=viewport, locale="zh-CN", device_scale_factor=1,
                                  is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
    page = context.new_page()
    page.set_default_timeout(REPLY_TIMEOUT)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors
    return page


@pytest.fixture()
def page(browser):
    """A phone-sized page in a fresh context (its own localStorage, so its own conversation)."""
    page = _new_page(browser)
    yield page
    assert not page.js_errors, page.js_errors
    page.context.close()


def widget_url(servers: RunningServers, name: str = "") -> str:
    """URL of a widget file (default: the standalone page) on the running Rasa server."""
    return f"{servers.rasa_url}/webhooks/widget/{name}"


def open_chat(page, servers: RunningServers) -> None:
    """Open the standalone page and wait for the greeting (the initial /greet payload) and its quick replies."""
    page.goto(widget_url(servers))
    expect(page.locator(WIDGET)).to_have_attribute("data-connection", "online")
    expect(page.locator(".dhw-bot").first).to_contain_text("债务咨询助手")
    expect(page.locator(".dhw-reply").first).to_be_visible()


def say(page, text: str, expected: str) -> None:
    """Type ``text`` into the labelled input, press Enter, and wait for a bot message containing ``expected``."""
    before = page.locator(".dhw-bot").count()
    box = page.get_by_label("输入您的问题")
    box.fill(text)
    box.press("Enter")
    expect(page.locator(".dhw-user").last).to_have_text(text)
    expect(page.locator(".dhw-bot").nth(before)).to_be_visible()
    expect(page.locator(".dhw-log")).to_contain_text(expected)
    wait_until_quiet(page)


def wait_until_quiet(page, quiet_ms: int = 1500) -> None:
    """Wait until the bot has sent nothing for ``quiet_ms`` (a reply is several bot_uttered events)."""
    last = -1
    while True:
        count = page.locator(".dhw-log > *").count()
        if count == last:
            return
        last = count
        page.wait_for_timeout(quiet_ms)


def test_page_is_chinese_labelled_warns_about_personal_data_and_answers_with_a_warning(page, live):
    open_chat(page, live["servers"])
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    expect(page.locator(".dhw-privacy")).to_contain_text("不要发送身份证号、银行卡号")
    expect(page.get_by_role("button", name="发送")).to_be_visible()
    expect(page.get_by_role("button", name="转人工")).to_be_visible()
    page.evaluate("""() => {
        const root = document.querySelector('section.dhw');
        window.typingSeen = false;
        new MutationObserver(() => {
            if (root.getAttribute('data-typing') === 'true') window.typingSeen = true;
        }).observe(root, {attributes: true});
    }""")
    say(page, WARNING_QUESTION, "骗局")
    assert page.evaluate("window.typingSeen"), "the typing indicator was shown while the bot answered"
    expect(page.locator(".dhw-typing")).to_be_hidden()
    warning = page.locator(".dhw-bot", has_text="骗局").first
    expect(warning).to_contain_text("征信修复")


def test_quick_reply_sends_its_payload_and_gets_the_next_reply(page, live):
    open_chat(page, live["servers"])
    before = page.locator(".dhw-bot").count()
    page.get_by_role("button", name="想修复征信").click()
    expect(page.locator(".dhw-user").last).to_have_text("想修复征信")
    expect(page.locator(".dhw-bot").nth(before)).to_be_visible()
    expect(page.locator(".dhw-log")).to_contain_text("骗局")
    assert page.locator(".dhw-user", has_text="/seek_credit_repair").count() == 0


def test_reload_keeps_the_conversation(page, live):
    open_chat(page, live["servers"])
    say(page, WARNING_QUESTION, "骗局")
    session_id = page.evaluate("window.debtHelpChat.sessionId()")
    assert re.fullmatch(r"web-[0-9a-f]{32}", session_id), "a server-made id, not one the page chose"
    bot_messages = page.locator(".dhw-bot").count()

    page.reload()
    root = page.locator(WIDGET)
    expect(root).to_have_attribute("data-history", "restored")
    assert page.evaluate("window.debtHelpChat.sessionId()") == session_id
    expect(page.locator(".dhw-user")).to_have_text([WARNING_QUESTION])
    expect(page.locator(".dhw-log")).to_contain_text("骗局")
    assert page.locator(".dhw-bot").count() == bot_messages, "the greeting is not sent again"
    say(page, "谢谢", "")  # the same session goes on
    assert page.evaluate("window.debtHelpChat.sessionId()") == session_id


def test_human_button_shows_the_handoff_state(page, live):
    open_chat(page, live["servers"])
    page.get_by_role("button", name="转人工").click()
    root = page.locator(WIDGET)
    expect(root).to_have_attribute("data-handoff-status", "unavailable")
    expect(page.locator(".dhw-user").last).to_have_text("转人工")
    expect(page.locator(".dhw-log")).to_contain_text("暂时无法为您转接在线人工客服")
    expect(page.locator(".dhw-system").last).to_contain_text("暂时无法转接在线人工客服")
    expect(page.locator(".dhw-handoff")).to_be_hidden()

    page.reload()  # the state is rebuilt from the server's transcript
    expect(root).to_have_attribute("data-history", "restored")
    expect(root).to_have_attribute("data-handoff-status", "unavailable")
    expect(page.locator(".dhw-user").last).to_have_text("转人工")


def test_agent_desk_states_are_shown_until_closed(page, live):
    """The agent desk (another issue) will send these payloads; the widget must already show them."""
    open_chat(page, live["servers"])
    root = page.locator(WIDGET)
    banner = page.locator(".dhw-handoff")

    page.evaluate("window.debtHelpChat.receive({type: 'handoff', status: 'queued', ticket_id: 't-1'})")
    expect(root).to_have_attribute("data-handoff-status", "queued")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("人工客服服务中")

    page.evaluate("window.debtHelpChat.receive({type: 'handoff', status: 'agent_joined'})")
    expect(root).to_have_attribute("data-handoff-status", "agent_joined")
    expect(banner).to_have_text("人工客服服务中")

    page.evaluate("""window.debtHelpChat.receive({type: 'handoff', status: 'agent_message',
                                                  agent_name: '李<b>客服</b>', text: '您好，我来帮您<img src=x>'})""")
    agent = page.locator(".dhw-agent").last
    expect(agent).to_contain_text("李<b>客服</b>")
    expect(agent).to_contain_text("您好，我来帮您<img src=x>")
    expect(page.locator(".dhw-bot", has_text="我来帮您")).to_have_count(1)
    expect(root).to_have_attribute("data-handoff-status", "agent_message")
    assert page.locator(".dhw-log img, .dhw-log b").count() == 0
    expect(banner).to_be_visible()

    page.evaluate("window.debtHelpChat.receive({type: 'handoff', status: 'closed'})")
    expect(root).to_have_attribute("data-handoff-status", "closed")
    expect(banner).to_be_hidden()
    expect(page.locator(".dhw-system").last).to_contain_text("智能助手继续为您服务")


def test_follow_up_released_and_returned_states_never_claim_a_human_who_is_not_there(page, live):
    """follow_up and returned_to_bot: the bot is talking, so no "with a human" banner; released: still waiting."""
    open_chat(page, live["servers"])
    root = page.locator(WIDGET)
    banner = page.locator(".dhw-handoff")

    page.evaluate("window.debtHelpChat.receive({type: 'handoff', status: 'follow_up', ticket_id: 't-2'})")
    expect(root).to_have_attribute("data-handoff-status", "follow_up")
    expect(banner).to_be_hidden()
    expect(page.locator(".dhw-system").last).to_contain_text("智能助手继续为您服务")
    expect(page.locator(".dhw-log")).not_to_contain_text("正在为您排队")

    page.evaluate("window.debtHelpChat.receive({type: 'handoff', status: 'queued', ticket_id: 't-2'})")
    page.evaluate("window.debtHelpChat.receive({type: 'handoff', status: 'released', agent_name: '王敏'})")
    expect(root).to_have_attribute("data-handoff-status", "released")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("重新排队")

    page.evaluate("window.debtHelpChat.receive({type: 'handoff', status: 'returned_to_bot', ticket_id: 't-2'})")
    expect(root).to_have_attribute("data-handoff-status", "returned_to_bot")
    expect(banner).to_be_hidden()
    expect(page.locator(".dhw-system").last).to_contain_text("暂时没有人工客服接入")


def test_channel_cards_get_a_call_button_and_unsafe_links_are_not_links(page, live):
    """The channel_card payload of docs/channels/payloads.md, as the hardship plan sends it."""
    open_chat(page, live["servers"])
    page.evaluate("""window.debtHelpChat.receive({type: 'channel_card', title: '招商银行', reason: 'hardship_plan',
        channels: [{label: '客服电话', number: '95555', tel: 'tel:95555', status: 'unconfirmed'},
                   {label: '伪造', number: 'x', tel: 'javascript:alert(1)', status: 'confirmed'}],
        note: '号码来自公开资料，请以银行卡背面或官方App为准'})""")
    card = page.locator(".dhw-card").last
    expect(card).to_contain_text("招商银行")
    expect(card.get_by_role("link", name=re.compile("拨打"))).to_have_count(1)
    assert card.locator("a").get_attribute("href") == "tel:95555"
    expect(card.locator(".dhw-card-note")).to_contain_text("官方App为准")

    links = page.evaluate("""() => {
        const box = document.createElement('div');
        DebtHelpWidget.renderText(box, '详见 https://www.pbccrc.org.cn/zxzx/ 。不要点 javascript:alert(1) <a href=x>');
        return {html: box.innerHTML, hrefs: [...box.querySelectorAll('a')].map(a => a.href)};
    }""")
    assert links["hrefs"] == ["https://www.pbccrc.org.cn/zxzx/"]
    assert "&lt;a href=x&gt;" in links["html"]


def test_html_in_a_message_is_shown_as_text_and_never_runs(page, live):
    open_chat(page, live["servers"])
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    attacks = ['<img src=x onerror="window.xssRan=1;alert(1)">', "<script>window.xssRan=2</script>你好"]
    for attack in attacks:
        say(page, attack, "")
    for reload in (False, True):
        if reload:  # the history is rendered by another code path
            page.reload()
            expect(page.locator(WIDGET)).to_have_attribute("data-history", "restored")
        expect(page.locator(".dhw-user")).to_have_text(attacks)
        assert page.locator(".dhw-log img, .dhw-log script").count() == 0
        assert page.evaluate("window.xssRan") is None
        assert dialogs == []


def test_a_ten_thousand_character_message_is_cut_with_a_note(page, live):
    open_chat(page, live["servers"])
    box = page.get_by_label("输入您的问题")
    box.fill("欠" * 10_000)
    expect(page.locator(".dhw-note")).to_be_visible()
    expect(page.locator(".dhw-note")).to_contain_text("消息太长")
    assert len(box.input_value()) == 2000
    assert page.evaluate("window.debtHelpChat.send('欠'.repeat(10000))") is False, "send() refuses it too"
    before = page.locator(".dhw-bot").count()
    box.press("Enter")
    assert len(page.locator(".dhw-user").last.text_content()) == 2000
    expect(page.locator(".dhw-bot").nth(before)).to_be_visible()
    wait_until_quiet(page)
    assert "消息太长" not in page.locator(".dhw-bot").nth(before).text_content(), "the server accepted it"


def test_desktop_page_and_embedding_in_another_site(browser, live, bank_site):
    servers = live["servers"]
    page = _new_page(browser, DESKTOP)
    try:
        open_chat(page, servers)
        log = page.locator(".dhw-log").bounding_box()
        assert log["width"] == DESKTOP["width"]
        text = page.locator(".dhw-bot").first.bounding_box()
        assert text["width"] < 760, "messages keep a readable width on a wide screen"

        # A bank's own site (another origin) embeds the widget with one script tag and a config object.
        host = bank_site("/app.html", host_page(
            widget_url(servers, "embed.js"),
            f'{{serverUrl: "{servers.rasa_url}", title: "信用卡还款咨询", initialPayload: "/greet"}}'))
        page.goto(host)
        root = page.locator(WIDGET)
        expect(root).to_have_class(re.compile("dhw-floating"))
        expect(page.locator(".dhw-title")).to_have_text("信用卡还款咨询")
        expect(root).to_have_attribute("data-connection", "online")
        expect(page.locator(".dhw-bot").first).to_contain_text("债务咨询助手")
        say(page, WARNING_QUESTION, "骗局")
        page.reload()  # the transcript is fetched across origins
        expect(root).to_have_attribute("data-history", "restored")
        expect(page.locator(".dhw-user")).to_have_text([WARNING_QUESTION])
        page.get_by_role("button", name="收起").click()
        expect(root).to_be_hidden()
        page.get_by_role("button", name="在线咨询").click()
        expect(root).to_be_visible()

        page.goto(widget_url(servers, "demo.html"))
        expect(page.locator(WIDGET)).to_have_attribute("data-connection", "online")
        expect(page.locator("#snippet")).to_contain_text("DebtHelpWidget.mount(")
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_a_dead_server_shows_the_reconnecting_state(page, live, bank_site):
    dead = f"http://127.0.0.1:{free_port()}"
    page.goto(bank_site("/dead.html", host_page(widget_url(live["servers"], "embed.js"),
                                                f'{{serverUrl: "{dead}", container: "#c"}}')))
    root = page.locator(WIDGET)
    expect(root).to_have_attribute("data-connection", "offline")
    expect(page.get_by_role("alert").filter(has_text="连接中断，正在重连")).to_be_visible()
    box = page.get_by_label("输入您的问题")
    box.fill("还在吗")
    box.press("Enter")
    expect(page.locator(".dhw-note")).to_contain_text("连接中断")
    assert box.input_value() == "还在吗", "the message is kept for when the connection is back"


def test_the_widget_text_renders_in_a_cjk_font_not_as_boxes(page, live):
    """Debian's Chromium alone draws Chinese as empty boxes (.notdef). The set-up installs fonts-noto-cjk; this
    fails when the bot's text is drawn without a CJK font: by the fonts Chromium really used for a bot bubble
    (DevTools' CSS.getPlatformFontsForNode), and by pixels: two different Chinese characters drawn in the
    widget's font must differ from each other and from a private-use character, which no font has (a box)."""
    assert CJK_FONT_FAMILY in chinese_font_families(), "the set-up did not install fonts-noto-cjk"
    open_chat(page, live["servers"])
    assert cjk_rendering_problems(page, ".dhw-bot", chinese_font_families()) == []


def test_the_cjk_check_fails_when_chromium_has_no_chinese_font(browser, tmp_path):
    """The check above is not vacuous: Chromium with a fontconfig that knows only DejaVu draws boxes, and the
    check says so."""
    executable = ensure_chromium()
    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                    f"<dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{tmp_path}/cache</cachedir>"
                    "</fontconfig>", encoding="utf-8")
    chromium = browser.browser_type.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS,
                                           env={**os.environ, "FONTCONFIG_FILE": str(conf)})
    try:
        page = chromium.new_page()
        css = (PROJECT_ROOT / "web" / "widget.css").read_text(encoding="utf-8")
        page.set_content(f'<html lang="zh-CN"><head><style>{css}</style></head><body><section class="dhw">'
                         '<div class="dhw-bot">您好，我是债务咨询助手</div></section></body></html>')
        problems = cjk_rendering_problems(page, ".dhw-bot", chinese_font_families())
    finally:
        chromium.close()
    assert len(problems) == 3, problems


def test_mobile_screenshot_of_a_short_answer_and_its_detail(page, live, tmp_path):
    """A 375 x 812 screenshot of a real conversation, nothing injected: a short answer to "靠谱吗" with the
    official route and its quick-reply buttons; then the detail behind "为什么有风险" (bot.details). Saved over the
    README's docs/screenshots/widget-mobile.png only with UPDATE_SCREENSHOTS=1, so that a test run leaves the
    work tree clean."""
    open_chat(page, live["servers"])
    say(page, AGENCY_QUESTION, "正规渠道")
    answer = page.locator(".dhw-bot", has_text="⚠️").last
    expect(answer).to_contain_text("免费")
    question = page.locator(".dhw-user").last
    question.evaluate("""target => {  // scroll the log so that the question is at its top, the answer below
        const log = target.closest('.dhw-log');
        log.scrollTop += target.getBoundingClientRect().top - log.getBoundingClientRect().top - 8;
    }""")
    page.get_by_label("输入您的问题").blur()
    expect(answer).to_be_in_viewport()
    expect(page.get_by_role("button", name="为什么有风险").last).to_be_in_viewport()
    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / SCREENSHOT.name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    before = page.locator(".dhw-bot").count()
    page.get_by_role("button", name="为什么有风险").last.click()
    expect(page.locator(".dhw-user").last).to_have_text("为什么有风险")
    expect(page.locator(".dhw-bot").nth(before)).to_be_visible()
    expect(page.locator(".dhw-log")).to_contain_text("真实案例")
    assert page.locator(".dhw-user", has_text="/ask_detail").count() == 0


def test_the_widget_survives_a_server_restart(page, live):
    servers = live["servers"]
    open_chat(page, servers)
    say(page, WARNING_QUESTION, "骗局")
    session_id = page.evaluate("window.debtHelpChat.sessionId()")

    servers.stop()
    root = page.locator(WIDGET)
    expect(root).to_have_attribute("data-connection", "offline", timeout=20_000)
    expect(page.get_by_role("alert").filter(has_text="连接中断，正在重连")).to_be_visible()
    expect(page.get_by_role("button", name="发送")).to_be_disabled()

    live["servers"] = start_servers(servers.config)  # same ports
    expect(root).to_have_attribute("data-connection", "online", timeout=60_000)
    expect(page.get_by_role("alert").filter(has_text="连接中断")).to_be_hidden()
    say(page, "我想自己跟招行协商分期还款", "个性化分期还款")
    assert page.evaluate("window.debtHelpChat.sessionId()") == session_id
