"""The service API: ``POST /api/intake/tickets``, where the action server hands over a conversation.

The body is a :class:`bot.handoff.contract.NewTicket` as JSON (already PII-masked by the action side); the
answer is a :class:`bot.handoff.contract.IntakeAnswer`: 201 for a new ticket, 200 when the sender's open ticket
was refreshed. The desk owns the opening hours, so the answer says whether agents are there now and describes
the hours in Chinese for the user.

Only the service token (``HANDOFF_INTAKE_TOKEN``, bot.handoff.auth.ServiceAuth on ``app.ctx.intake_auth``)
is accepted: agent credentials get 401, as does a wrong or missing token. Other refusals are
``{"error": reason}``: 400 for a body that is not a valid ticket, 413 for a body over
:data:`INTAKE_MAX_BODY_BYTES`, 503 if the ticket store fails (nothing is stored, the action answers
``unavailable``). Errors never quote the ticket.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import Any, Dict, Optional, Tuple

from sanic import Blueprint, response
from sanic.request import Request

from bot.handoff.auth import AuthError
from bot.handoff.contract import ContractError, IntakeAnswer, NewTicket, parse_body
from bot.handoff.desk.common import blocking, error
from bot.handoff.hours import OpeningHours
from bot.handoff.store import TicketStore
from bot.handoff.summary import mask_values

logger = logging.getLogger(__name__)

INTAKE_MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest ticket body, in bytes: 200 transcript lines of long messages, with room to spare. The agents' routes
keep the desk's 16 KiB limit."""

STORE_FAILED = "the ticket store failed"
"""The 503 answer's error: the action logs it as the reason the handoff is unavailable."""

bp = Blueprint("desk_service_api", url_prefix="/api/intake")


def receive_ticket(body: Any, store: TicketStore, hours: OpeningHours,
                   now: Optional[dt.datetime] = None) -> Tuple[int, Dict[str, Any]]:
    """Store the ticket in ``body`` (the raw request body, or JSON already parsed) and answer as the route does:
    ``(status, JSON answer)``.

    201 with the IntakeAnswer for a new ticket, 200 for a refreshed one, 400 for an invalid body, 503 if the
    store fails. The summary and transcript arrive masked by the action side and are masked again here before
    they are stored (bot.privacy): the desk does not take a sender's word for it. ``now`` (aware; default the
    current time) decides ``open_now``. Blocking (the store); never raises.
    """
    try:
        new = NewTicket.from_json(parse_body(bytes(body)) if isinstance(body, (bytes, bytearray)) else body)
    except ContractError as err:
        return 400, {"error": str(err)}
    new = replace(new, summary=mask_values(new.summary), transcript=mask_values(new.transcript))
    try:
        ticket, created = store.create_ticket(new)
    except Exception as err:  # noqa: BLE001 - the action must get an answer; the type is enough to log
        logger.error("Could not store a handoff ticket: %s", type(err).__name__)
        return 503, {"error": STORE_FAILED}
    moment = now or dt.datetime.now(dt.UTC)
    answer = IntakeAnswer(ticket_id=ticket.id, created=created, open_now=hours.is_open(moment),
                          opening_hours=hours.describe())
    return (201 if created else 200), answer.to_json()


@bp.post("/tickets", stream=True)
async def take_ticket(request: Request) -> response.HTTPResponse:
    """Authenticate the action server, then read the body (a streamed route, so that the size limit is this
    route's own; a declared length over it is refused before any of the body is read) and store the ticket."""
    try:
        request.app.ctx.intake_auth.check(request.headers.get("authorization"))
    except AuthError as err:
        logger.info("Refused an intake request: %s", err)
        return error(str(err), 401)
    declared = request.headers.get("content-length") or ""
    if declared.isdigit() and int(declared) > INTAKE_MAX_BODY_BYTES:
        return error(f"the ticket is larger than {INTAKE_MAX_BODY_BYTES} bytes", 413)
    request.stream.request_max_size = INTAKE_MAX_BODY_BYTES  # a chunked body over it: Sanic's 413 while reading
    await request.receive_body()
    status, answer = await blocking(receive_ticket, request.body or b"", request.app.ctx.store,
                                    request.app.ctx.settings.opening_hours)
    return response.json(answer, status=status)
