"""The desk's compliance page in a real browser: Debian's headless Chromium driven by Playwright against a real
desk process (``python -m bot.handoff.desk``, Rasa replaced by the stand-in of tests/support/handoff.py, which
this page never calls) reading a compliance record filled from the generated sample.

A compliance officer signs in with their own credential, picks a range and a grouping, sees both charts load
(rendered by the desk from the report code) and downloads the CSV, which is byte for byte what
``python -m bot report --format csv`` prints for the same range. An agent's credential sees nothing.
"""
from __future__ import annotations

import os

import pytest

from bot import PROJECT_ROOT
from tests.support.browser import CHROMIUM_ARGS, ensure_chromium
from tests.support.compliance import SAMPLE_END, cli_report, fill_compliance_record
from tests.support.handoff import (
    AGENT_TOKENS,
    COMPLIANCE_TOKEN,
    RASA_TOKEN,
    DeskProcess,
    FakeRasa,
    always_open_config,
)

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by scripts/setup")
expect = playwright_api.expect

START, END = "2026-11-17", SAMPLE_END.isoformat()
SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "compliance-page.png"
TIMEOUT = 60_000  # ms; the desk imports matplotlib on the first report


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('compliance') / 'compliance.db'}"
    expected, _ = fill_compliance_record(url)
    return url, expected


@pytest.fixture(scope="module")
def desk(tmp_path_factory, record):
    tmp = tmp_path_factory.mktemp("compliance-desk")
    rasa = FakeRasa()
    process = DeskProcess({"HANDOFF_CONFIG": str(always_open_config(tmp)),
                           "HANDOFF_DATABASE_URL": f"sqlite:///{tmp / 'handoff.db'}",
                           "RASA_URL": rasa.url, "RASA_AUTH_TOKEN": RASA_TOKEN,
                           "COMPLIANCE_DATABASE_URL": record[0]}, tmp / "desk.log")
    yield process
    process.stop()
    rasa.stop()


@pytest.fixture(scope="module")
def browser():
    executable = ensure_chromium()
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors
    yield page
    context.close()


def _sign_in(page, desk, token):
    page.goto(desk.url + "/compliance")
    page.get_by_test_id("token").fill(token)
    page.get_by_test_id("login-button").click()


def _chart_width(page, test_id):
    return page.get_by_test_id(test_id).evaluate("img => img.complete ? img.naturalWidth : 0")


def test_an_agent_credential_sees_no_report_on_the_compliance_page(page, desk):
    _sign_in(page, desk, AGENT_TOKENS["王敏"])
    expect(page.get_by_test_id("login-error")).to_contain_text("无权查看")
    expect(page.get_by_test_id("login-error")).to_contain_text("'agent' may not do this")
    expect(page.get_by_test_id("report-panel")).to_be_hidden()
    assert _chart_width(page, "chart-conversations") == 0
    assert page.js_errors == []


def test_a_compliance_officer_sees_the_charts_and_downloads_the_commands_csv(page, desk, record, tmp_path):
    url, expected = record
    _sign_in(page, desk, COMPLIANCE_TOKEN)
    expect(page.get_by_test_id("report-panel")).to_be_visible()
    expect(page.get_by_test_id("who")).to_have_text("合规：赵丽")
    page.get_by_test_id("from").fill(START)
    page.get_by_test_id("to").fill(END)
    page.get_by_test_id("by").select_option("week")
    page.get_by_test_id("show").click()
    period = f"{START} 至 {END}（中国时间），共 {expected.conversations} 个会话"
    expect(page.get_by_test_id("period")).to_have_text(period)
    rows = page.get_by_test_id("figures").locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first.locator("td").first).to_have_text("2026-W47")
    for chart in ("chart-conversations", "chart-referrals"):
        page.wait_for_function("id => { const img = document.querySelector(`[data-testid=${id}]`);"
                               " return img.complete && img.naturalWidth > 0; }", arg=chart)
        assert _chart_width(page, chart) >= 600  # the report code's figures are at least 6 in at 100 dpi

    with page.expect_download() as info:
        page.get_by_test_id("download").click()
    download = info.value
    assert download.suggested_filename == f"compliance-report_{START}_{END}_by-week.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes() == cli_report(url, START, END, "week", "csv")

    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / SCREENSHOT.name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    assert page.js_errors == []


def test_a_range_that_ends_before_it_starts_is_explained_on_the_page(page, desk):
    _sign_in(page, desk, COMPLIANCE_TOKEN)
    expect(page.get_by_test_id("report-panel")).to_be_visible()
    page.get_by_test_id("from").fill(END)
    page.get_by_test_id("to").fill(START)
    page.get_by_test_id("show").click()
    expect(page.get_by_test_id("report-error")).to_have_text(f"查询条件有误：'to' ({START}) is before 'from' ({END})")
    page.get_by_test_id("report-error").evaluate("node => { node.textContent = ''; }")
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    page.get_by_test_id("download").click()  # refused the same way: the reason, and no file
    expect(page.get_by_test_id("report-error")).to_contain_text("is before 'from'")
    assert downloads == [] and page.js_errors == []


def test_the_agents_desk_sends_a_compliance_credential_to_the_compliance_page(page, desk):
    page.goto(desk.url + "/")
    page.get_by_test_id("token").fill(COMPLIANCE_TOKEN)
    page.get_by_test_id("login-button").click()
    page.get_by_role("link", name="合规报表页面").click()
    expect(page).to_have_url(desk.url + "/compliance")
