"""The agents' page: ``GET /`` and its script and style under ``/static`` (plain files, nothing from a CDN)."""
from __future__ import annotations

from pathlib import Path

from sanic import Blueprint, response
from sanic.request import Request

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The page's HTML, JavaScript and CSS."""

bp = Blueprint("desk_page")
bp.static("/static", str(STATIC_DIR))


@bp.get("/")
async def page(request: Request) -> response.HTTPResponse:
    """The desk page (no credentials needed to load it; every API call it makes needs them)."""
    return await response.file(STATIC_DIR / "desk.html", mime_type="text/html; charset=utf-8")
