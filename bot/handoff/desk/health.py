"""``GET /health``: ``{"status": "ok"}`` when the ticket store answers, else 503 (no credentials needed).

bot.ops.servers waits on it at start-up.
"""
from __future__ import annotations

from sanic import Blueprint, response
from sanic.request import Request

from bot.handoff.desk.common import blocking, error

bp = Blueprint("desk_health")


@bp.get("/health")
async def health(request: Request) -> response.HTTPResponse:
    """200 if a count of the ticket tables succeeds; 503 naming only the error's type otherwise."""
    try:
        await blocking(request.app.ctx.store.counts)
    except Exception as err:  # noqa: BLE001
        return error(f"ticket store unavailable: {type(err).__name__}", 503)
    return response.json({"status": "ok"})
