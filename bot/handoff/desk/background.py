"""The desk's background loop: the hand-over timers (unclaimed tickets back to the bot, silent agents
released; bot.handoff.timeouts) and the webhook outbox.

Started by the ``after_server_start`` listener as a task on the server's loop (kept on
``app.ctx.background``) and cancelled before the server stops. One round every ``check_interval_seconds``;
a failing round is logged and the next one retries.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from sanic import Blueprint, Sanic

from bot.handoff.desk.common import blocking
from bot.handoff.timeouts import run_timers

logger = logging.getLogger(__name__)

bp = Blueprint("desk_background")


async def one_round(app: Sanic) -> None:
    """The timers, then due webhook deliveries (if the webhook is on). Raises what they raise."""
    ctx = app.ctx
    await blocking(run_timers, ctx.store, ctx.rasa, ctx.settings.claim_timeout_seconds,
                   ctx.settings.agent_silence_seconds)
    if ctx.notifier is not None:
        await blocking(ctx.notifier.deliver_due)


async def periodic(app: Sanic) -> None:
    """:func:`one_round` forever, ``check_interval_seconds`` apart; runs until cancelled."""
    while True:
        try:
            await one_round(app)
        except Exception:  # noqa: BLE001 - keep the loop alive; the next round retries
            logger.exception("Desk background task failed")
        await asyncio.sleep(app.ctx.settings.check_interval_seconds)


@bp.listener("after_server_start")
async def start_background(app: Sanic, _loop: Any) -> None:
    """Start :func:`periodic` once the server listens."""
    app.ctx.background = asyncio.ensure_future(periodic(app))


@bp.listener("before_server_stop")
async def stop_background(app: Sanic, _loop: Any) -> None:
    """Cancel the loop and wait for the task to end (a store call already in a worker thread finishes there, in
    its own transaction)."""
    task = getattr(app.ctx, "background", None)
    app.ctx.background = None
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
