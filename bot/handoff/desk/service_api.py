"""The service API: ``POST /api/intake/tickets``, where the action server hands over a conversation, and
``POST /api/intake/paused-message``, where the Rasa side's gate reports a message to a paused conversation.

The body is a :class:`bot.handoff.contract.NewTicket` as JSON (already PII-masked by the action side); the
answer is a :class:`bot.handoff.contract.IntakeAnswer`: 201 for a new ticket, 200 when the sender's open ticket
was refreshed. The desk owns the opening hours and knows which agents are at the desk
(bot.handoff.presence), so the answer says whether a person can answer now (``agents_on_duty``), the ticket's
status (``queued``: the action pauses; ``follow_up``: the bot keeps talking, bot.handoff.decision) and
describes the hours in Chinese for the user.

The paused-message route takes a :class:`bot.handoff.contract.PausedMessage` and answers a
:class:`bot.handoff.contract.PausedAnswer`: a danger message moves the sender's ticket to the top with the
sentence for the agents, a wish to leave closes it (``user_left``); the gate authenticates with the service
token or Rasa's API token (bot.handoff.auth.GateAuth).

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
from bot.handoff.contract import ContractError, IntakeAnswer, NewTicket, PausedAnswer, PausedMessage, parse_body
from bot.handoff.decision import intake_status
from bot.handoff.desk.common import blocking, error, parsed_json
from bot.handoff.hours import OpeningHours
from bot.handoff.store import TicketStore
from bot.handoff.summary import mask_values
from bot.privacy import mask_pii

logger = logging.getLogger(__name__)

INTAKE_MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest ticket body, in bytes: 200 transcript lines of long messages, with room to spare. The agents' routes
keep the desk's 16 KiB limit."""

STORE_FAILED = "the ticket store failed"
"""The 503 answer's error: the action logs it as the reason the handoff is unavailable."""

bp = Blueprint("desk_service_api", url_prefix="/api/intake")


def receive_ticket(body: Any, store: TicketStore, hours: OpeningHours,
                   now: Optional[dt.datetime] = None, agents_present: bool = True) -> Tuple[int, Dict[str, Any]]:
    """Store the ticket in ``body`` (the raw request body, or JSON already parsed) and answer as the route does:
    ``(status, JSON answer)``.

    201 with the IntakeAnswer for a new ticket, 200 for a refreshed one, 400 for an invalid body, 503 if the
    store fails. The summary and transcript arrive masked by the action side and are masked again here before
    they are stored (bot.privacy): the desk does not take a sender's word for it. ``now`` (aware; default the
    current time) decides ``open_now``; ``agents_on_duty`` is ``open_now`` and ``agents_present`` (at least
    one agent seen at the desk lately); the ticket is ``queued`` only when agents are on duty and the channel can
    receive them, else ``follow_up``. Blocking (the store); never raises.
    """
    try:
        new = NewTicket.from_json(parse_body(bytes(body)) if isinstance(body, (bytes, bytearray)) else body)
    except ContractError as err:
        return 400, {"error": str(err)}
    new = replace(new, summary=mask_values(new.summary), transcript=mask_values(new.transcript))
    moment = now or dt.datetime.now(dt.UTC)
    open_now = hours.is_open(moment)
    on_duty = open_now and agents_present
    try:
        ticket, created = store.create_ticket(new, intake_status(on_duty, new.channel))
    except Exception as err:  # noqa: BLE001 - the action must get an answer; the type is enough to log
        logger.error("Could not store a handoff ticket: %s", type(err).__name__)
        return 503, {"error": STORE_FAILED}
    answer = IntakeAnswer(ticket_id=ticket.id, created=created, open_now=open_now,
                          opening_hours=hours.describe(), agents_on_duty=on_duty, status=ticket.status)
    return (201 if created else 200), answer.to_json()


def receive_paused_message(body: Any, store: TicketStore) -> Tuple[int, Dict[str, Any]]:
    """Act on a message to a paused conversation (``body``: a PausedMessage, parsed JSON) and answer as the
    route does: ``(status, PausedAnswer JSON)``.

    ``danger``: the sender's open ticket moves to the top with the sentence (masked again here) for the agents;
    ``leave``: the open ticket is closed (``user_left``); ``message``: nothing changes. 200 with the answer
    (``ticket_id`` null: the sender has no open ticket), 400 for an invalid body, 503 if the store fails.
    Blocking (the store); never raises.
    """
    try:
        message = PausedMessage.from_json(body)
    except ContractError as err:
        return 400, {"error": str(err)}
    try:
        if message.kind == "leave":
            closed = store.leave(message.sender_id)
            answer = (PausedAnswer(ticket_id=closed.id, status=closed.status, hold=False, closed=True)
                      if closed else PausedAnswer(ticket_id=None, status=None, hold=False))
        elif message.kind == "danger":
            alerted = store.raise_alert(message.sender_id, mask_pii(message.text or ""))
            answer = (PausedAnswer(ticket_id=alerted.id, status=alerted.status, hold=alerted.holds,
                                   prioritised=True)
                      if alerted else PausedAnswer(ticket_id=None, status=None, hold=False))
        else:
            found = store.open_ticket_of(message.sender_id)
            answer = (PausedAnswer(ticket_id=found.id, status=found.status, hold=found.holds)
                      if found else PausedAnswer(ticket_id=None, status=None, hold=False))
    except Exception as err:  # noqa: BLE001 - the gate must get an answer; the type is enough to log
        logger.error("Could not handle a paused conversation's message: %s", type(err).__name__)
        return 503, {"error": STORE_FAILED}
    return 200, answer.to_json()


async def _refuse(request: Request, err: AuthError) -> response.HTTPResponse:
    """401 for a request without the service token; the refusal is audited (``refused``, agent ``unknown``)."""
    logger.info("Refused a request to %s: %s", request.path, err)
    try:
        await blocking(request.app.ctx.store.record_refusal, None, {
            "method": request.method, "path": request.path[:200], "status": 401, "reason": str(err)[:200],
            "ip": request.ip})
    except Exception as failure:  # noqa: BLE001 - the refusal stands even if the audit row cannot be written
        logger.error("Could not audit a refused request: %s", type(failure).__name__)
    return error(str(err), 401)


@bp.post("/tickets", stream=True)
async def take_ticket(request: Request) -> response.HTTPResponse:
    """Authenticate the action server, then read the body (a streamed route, so that the size limit is this
    route's own; a declared length over it is refused before any of the body is read) and store the ticket."""
    try:
        request.app.ctx.intake_auth.check(request.headers.get("authorization"))
    except AuthError as err:
        return await _refuse(request, err)
    declared = request.headers.get("content-length") or ""
    if declared.isdigit() and int(declared) > INTAKE_MAX_BODY_BYTES:
        return error(f"the ticket is larger than {INTAKE_MAX_BODY_BYTES} bytes", 413)
    request.stream.request_max_size = INTAKE_MAX_BODY_BYTES  # a chunked body over it: Sanic's 413 while reading
    await request.receive_body()
    status, answer = await blocking(receive_ticket, request.body or b"", request.app.ctx.store,
                                    request.app.ctx.settings.opening_hours, None,
                                    request.app.ctx.presence.any_present())
    return response.json(answer, status=status)


@bp.post("/paused-message")
async def paused_message(request: Request) -> response.HTTPResponse:
    """The gate's report of a message to a paused conversation (bot.handoff.paused); see
    :func:`receive_paused_message`. 401 without the gate's token."""
    try:
        request.app.ctx.gate_auth.check(request.headers.get("authorization"))
    except AuthError as err:
        return await _refuse(request, err)
    status, answer = await blocking(receive_paused_message, parsed_json(request), request.app.ctx.store)
    return response.json(answer, status=status)
