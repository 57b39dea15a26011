"""Helpers for the widget's browser tests: Debian's Chromium (installed through apt when missing), the widget's
npm assets, and Playwright launched against that Chromium (never a downloaded browser)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest

from bot import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium, the browser the tests drive."""

CHROMIUM_ARGS: List[str] = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
"""Flags for a headless run as root in a container, with no background traffic."""

APT_PACKAGES = ["chromium", "fonts-noto-cjk", "fonts-wqy-microhei"]
"""Chromium, and fonts with Chinese glyphs (Debian's Chromium alone renders Chinese as empty boxes): Noto Sans CJK,
which web/widget.css names, and WenQuanYi Micro Hei."""

CJK_FONT_FAMILY = "Noto Sans CJK SC"
"""The CJK font the test set-up installs (package fonts-noto-cjk) and the widget's text is expected in."""

SOCKETIO_CLIENT = PROJECT_ROOT / "web" / "vendor" / "socket.io.min.js"


def chinese_font_families() -> List[str]:
    """The font families fontconfig knows with Chinese coverage (``fc-list :lang=zh family``), [] without fc-list."""
    if not shutil.which("fc-list"):
        return []
    listed = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    return sorted({name.strip() for line in listed.stdout.splitlines() for name in line.split(",") if name.strip()})


def _has_chinese_font() -> bool:
    return CJK_FONT_FAMILY in chinese_font_families()


def ensure_chromium() -> Path:
    """Return /usr/bin/chromium, installing it (and the CJK fonts, fonts-noto-cjk) with apt-get first when missing.

    Skips the calling test, with the reason, when it is missing and apt cannot install it (not root, no
    apt-get, or the install failed).
    """
    if CHROMIUM.exists() and _has_chinese_font():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        if CHROMIUM.exists():
            return CHROMIUM  # screenshots will lack Chinese glyphs, the tests still run
        pytest.skip("Chromium is not installed at /usr/bin/chromium and apt-get cannot install it here "
                    "(needs root and apt-get): run `apt-get install -y chromium fonts-noto-cjk fonts-wqy-microhei`.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]]
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            if CHROMIUM.exists():
                return CHROMIUM
            pytest.skip(f"Could not install Chromium with `{' '.join(step)}` (exit {done.returncode}): "
                        f"{done.stderr.strip()[-400:]}")
    if not CHROMIUM.exists():
        pytest.skip("apt-get installed chromium but /usr/bin/chromium is still missing")
    return CHROMIUM


def ensure_widget_assets() -> None:
    """Make sure the socket.io client the page loads is in web/vendor/ (scripts/setup-web installs it)."""
    if SOCKETIO_CLIENT.exists():
        return
    subprocess.run([str(PROJECT_ROOT / "scripts" / "setup-web")], cwd=PROJECT_ROOT, check=True, timeout=600)
    assert SOCKETIO_CLIENT.exists(), "scripts/setup-web did not install web/vendor/socket.io.min.js"


_DRAW = """(selector) => {
    const font = getComputedStyle(document.querySelector(selector)).font;
    const pixels = (ch) => {
        const canvas = document.createElement('canvas');
        canvas.width = 64; canvas.height = 64;
        const ctx = canvas.getContext('2d');
        ctx.font = font.replace(/\\d+(\\.\\d+)?px/, '48px');
        ctx.fillText(ch, 4, 52);
        return Array.from(ctx.getImageData(0, 0, 64, 64).data).join(',');
    };
    return {debt: pixels('债'), service: pixels('务'), box: pixels('\\ue000')};
}"""


def cjk_rendering_problems(page, selector: str, cjk_families: List[str]) -> List[str]:
    """Why the Chinese text of the first ``selector`` element is NOT drawn in a CJK font ([] when it is).

    Two checks: the fonts Chromium really used for the element (DevTools' ``CSS.getPlatformFontsForNode``)
    must draw its glyphs from one of ``cjk_families``; and, drawn on a canvas in the element's font, two
    different Chinese characters must differ from each other and from a private-use character that no font
    has (the missing-glyph box).
    """
    problems = []
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    used = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    if sum(font["glyphCount"] for font in used if font["familyName"] in set(cjk_families)) < 5:
        problems.append(f"drawn without a Chinese font: {[font['familyName'] for font in used]}")
    drawn = page.evaluate(_DRAW, selector)
    if drawn["debt"] == drawn["service"]:
        problems.append("two different Chinese characters drew the same glyph (boxes)")
    if drawn["box"] in (drawn["debt"], drawn["service"]):
        problems.append("a Chinese character drew as the missing-glyph box")
    return problems

