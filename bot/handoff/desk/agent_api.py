"""The agents' HTTP API under ``/api``: the queue, a ticket, the live transcript, claim, reply, release,
notes, close, presence, the audit log.

Every route is wrapped once by :func:`desk_route` (``agent_route`` for the agent role): it authenticates the
caller's own credential (bot.handoff.auth.AgentAuth on ``app.ctx.auth``: 401 without a valid one, 403 for a role
that may not use the route or an ``X-Agent-Name`` naming someone else; every refusal is audited as
``refused``) and maps the store's refusals (404, 409, 400) and a Rasa failure (502) to
``{"error": reason}``. A change that reaches the user (claim, reply, close) sends its message inside the
store's transaction, so when Rasa does not take it nothing is changed. Each handler gets the agent's name
after the request; the store writes the audit rows, reads included (``queue``, ``view``, ``transcript``,
``audit_read``). Tickets are shown with an opaque ``reference``, never the sender id. Every authenticated call
also marks the agent present (bot.handoff.presence): the conversation is paused for a person only while some agent is.

A reply the user's channel could not deliver (bot.handoff.delivery) is answered 502 with ``"delivered":
false`` and audited as ``reply_undelivered``; a ticket whose channel cannot receive agent messages (plain REST)
is answered 409 with ``"delivered": false`` and nothing is sent.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any, Awaitable, Callable, Dict, Tuple

from sanic import Blueprint, response
from sanic.request import Request

from bot.handoff.auth import AuthError
from bot.handoff.decision import channel_can_receive_agent
from bot.handoff.desk.common import BadBody, TooLarge, blocking, error, json_body, text_field
from bot.handoff.messages import agent_message_event, bot_event, released_event, render, resume_events
from bot.handoff.priority import PRIORITY_LABELS, REASON_LABELS
from bot.handoff.rasa_client import RasaUnavailable, RasaUndelivered
from bot.handoff.store import OUTCOMES, HandoffStoreError, Ticket, utcnow
from bot.handoff.summary import SLOT_LABELS, transcript
from bot.privacy import mask_pii

logger = logging.getLogger(__name__)

bp = Blueprint("desk_agent_api", url_prefix="/api")

AgentHandler = Callable[..., Awaitable[response.HTTPResponse]]


def desk_route(*roles: str) -> Callable[[AgentHandler], Callable[..., Awaitable[response.HTTPResponse]]]:
    """A decorator for routes open to credentials of ``roles`` (bot.handoff.credentials.ROLES)."""

    def decorate(handler: AgentHandler) -> Callable[..., Awaitable[response.HTTPResponse]]:
        return _wrap(handler, roles)

    return decorate


def agent_route(handler: AgentHandler) -> Callable[..., Awaitable[response.HTTPResponse]]:
    """Wrap ``handler(request, agent_name, **route_args)`` for the ``agent`` role; see :func:`_wrap`."""
    return _wrap(handler, ("agent",))


async def _refuse(request: Request, err: AuthError) -> response.HTTPResponse:
    logger.info("Refused a desk request to %s: %s", request.path, err)
    detail = {"method": request.method, "path": request.path[:200], "status": err.status, "reason": str(err)[:200],
              "credential": err.credential_id, "ip": request.ip}
    try:
        await blocking(request.app.ctx.store.record_refusal, err.agent, detail)
    except Exception as failure:  # noqa: BLE001 - the refusal stands even if the audit row cannot be written
        logger.error("Could not audit a refused desk request: %s", type(failure).__name__)
    return error(str(err), err.status)


def _wrap(handler: AgentHandler, roles: Tuple[str, ...]) -> Callable[..., Awaitable[response.HTTPResponse]]:
    """Authenticate (audit a refusal), run, map store and Rasa errors to JSON."""

    @functools.wraps(handler)
    async def wrapped(request: Request, *args: Any, **kwargs: Any) -> response.HTTPResponse:
        try:
            caller = await blocking(request.app.ctx.auth.authenticate, request.headers.get("authorization"),
                                    request.headers.get("x-agent-name"), roles)
        except AuthError as err:
            return await _refuse(request, err)
        request.ctx.agent = caller
        agent = caller.name
        if caller.role == "agent":
            request.app.ctx.presence.seen(agent)
        try:
            return await handler(request, agent, *args, **kwargs)
        except HandoffStoreError as err:
            return error(str(err), err.status)
        except RasaUndelivered as err:
            logger.warning("A desk message was not delivered: %s", err)
            return response.json({"error": f"not delivered: {err}; nothing was sent or changed",
                                  "delivered": False}, status=502)
        except RasaUnavailable as err:
            logger.warning("Rasa did not take a desk message: %s", err)
            return error(f"the conversation server did not accept the message ({err}); nothing was changed", 502)

    return wrapped


@bp.exception(BadBody)
async def bad_body(request: Request, err: Exception) -> response.HTTPResponse:
    """A body the handler cannot use: 400."""
    return error(str(err), 400)


@bp.exception(TooLarge)
async def too_large(request: Request, err: Exception) -> response.HTTPResponse:
    """A reply or note over ``max_reply_chars``: 413."""
    return error(str(err), 413)


def ticket_view(ticket: Ticket, include_transcript: bool = False, *, store: Any) -> Dict[str, Any]:
    """A ticket as the page shows it: the stored fields except the sender id, its opaque ``reference`` (from
    ``store``, bot.handoff.store.TicketStore.reference), Chinese labels and its age in seconds."""
    data = store.view(ticket, include_transcript)
    data["priority_label"] = PRIORITY_LABELS.get(ticket.priority, str(ticket.priority))
    data["reason_label"] = REASON_LABELS.get(ticket.reason, ticket.reason)
    data["age_seconds"] = int((utcnow() - ticket.created_at).total_seconds())
    if ticket.outcome:
        data["outcome_label"] = OUTCOMES.get(ticket.outcome, ticket.outcome)
    data["can_receive_agent"] = channel_can_receive_agent(ticket.channel)
    return data


def presence_view(app: Any) -> Dict[str, Any]:
    """``{"agents_present": [names], "open_now": bool, "agents_on_duty": bool}`` for the page."""
    present = app.ctx.presence.present()
    open_now = app.ctx.settings.opening_hours.is_open(dt.datetime.now(dt.UTC))
    return {"agents_present": present, "open_now": open_now, "agents_on_duty": open_now and bool(present)}


QUEUE_PAGE = 100
"""Tickets per page of the queue route; the desk page fetches every page."""


@bp.get("/me")
@desk_route("agent", "compliance")
async def me(request: Request, agent: str) -> response.HTTPResponse:
    """``{"agent": name, "role": role, ...}`` plus what the page needs: outcome and slot labels, the longest
    reply."""
    return response.json({"agent": agent, "role": request.ctx.agent.role, "outcomes": OUTCOMES,
                          "slot_labels": SLOT_LABELS, "max_reply_chars": request.app.ctx.settings.max_reply_chars})


@bp.get("/tickets")
@agent_route
async def queue(request: Request, agent: str) -> response.HTTPResponse:
    """Open tickets, danger alerts first, then by priority, then age (``?include_closed=1``: closed ones last),
    QUEUE_PAGE at a time from ``?offset=`` (default 0); ``next_offset`` is the next page's offset, or null after
    the last page. 400 for an offset that is not a number."""
    include_closed = request.args.get("include_closed") in ("1", "true")
    raw_offset = request.args.get("offset") or "0"
    if not raw_offset.isdigit():
        return response.json({"error": "'offset' must be a whole number"}, status=400)
    offset = int(raw_offset)
    store = request.app.ctx.store
    tickets = await blocking(store.queue, include_closed, QUEUE_PAGE + 1, offset)
    next_offset = offset + QUEUE_PAGE if len(tickets) > QUEUE_PAGE else None
    page = tickets[:QUEUE_PAGE]
    await blocking(store.record_read, agent, "queue", None, {"tickets": len(page), "offset": offset,
                                                             "include_closed": include_closed})
    return response.json({"tickets": [ticket_view(t, store=store) for t in page], "next_offset": next_offset,
                          **presence_view(request.app)})


@bp.get("/presence")
@agent_route
async def presence(request: Request, agent: str) -> response.HTTPResponse:
    """Who is at the desk now, and whether agents are on duty (inside the hours with someone present)."""
    return response.json(presence_view(request.app))


@bp.get("/tickets/<ticket_id:str>")
@agent_route
async def ticket(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
    """The ticket with its summary, stored transcript and notes; the view is audited."""
    store = request.app.ctx.store
    found = await blocking(store.record_view, ticket_id, agent)
    notes = await blocking(store.notes, ticket_id)
    return response.json({"ticket": ticket_view(found, include_transcript=True, store=store),
                          "notes": [n.to_dict() for n in notes]})


@bp.get("/tickets/<ticket_id:str>/transcript")
@agent_route
async def live_transcript(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
    """The live transcript from Rasa (with what the user wrote while paused), PII-masked; the stored one
    with ``live: false`` when Rasa does not answer."""
    found = await blocking(request.app.ctx.store.get, ticket_id)
    await blocking(request.app.ctx.store.record_read, agent, "transcript", ticket_id)
    try:
        tracker = await blocking(request.app.ctx.rasa.tracker, found.sender_id)
    except RasaUnavailable as err:
        return response.json({"live": False, "error": str(err), "messages": found.transcript})
    return response.json({"live": True, "paused": bool(tracker.get("paused")),
                          "messages": transcript(tracker.get("events") or [])})


@bp.post("/tickets/<ticket_id:str>/claim")
@agent_route
async def claim(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
    """Take the ticket (one agent only) and tell the user who joined. A follow-up ticket on a channel that can
    receive agent messages pauses the conversation again (the bot waits for the agent); on one that cannot
    (plain REST) the user is not written to: the agent works the record."""
    rasa = request.app.ctx.rasa

    def joined(t: Ticket) -> None:
        if not channel_can_receive_agent(t.channel):
            return
        message = render("utter_handoff_agent_joined", ticket_id=t.id, agent_name=agent)
        rasa.append_state_events(t.sender_id, [{"event": "pause"},
                                               bot_event(message, t.id, "agent_joined", agent)])

    claimed = await blocking(request.app.ctx.store.claim, ticket_id, agent, joined)
    return response.json({"ticket": ticket_view(claimed, store=request.app.ctx.store)})


@bp.post("/tickets/<ticket_id:str>/reply")
@agent_route
async def reply(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
    """``{"text": ...}``: send the holder's message to the user on their latest channel. Personal data in it is
    masked first (bot.privacy), so neither the tracker, the audit log nor the webhook stores it; ``sent`` says
    what the user got."""
    text = mask_pii(text_field(json_body(request), "text", request.app.ctx.settings.max_reply_chars))
    rasa = request.app.ctx.rasa
    store = request.app.ctx.store
    found = await blocking(store.require_holder, ticket_id, agent)
    if not channel_can_receive_agent(found.channel):
        problem = f"the user's channel ({found.channel}) cannot receive agent messages"
        await blocking(store.record_undelivered, ticket_id, agent, text, problem)
        return response.json({"error": f"not delivered: {problem}; nothing was sent", "delivered": False},
                             status=409)

    def send(t: Ticket) -> None:
        rasa.append_events(t.sender_id, [agent_message_event(text, agent, t.id)])

    try:
        replied = await blocking(store.record_reply, ticket_id, agent, text, send)
    except RasaUndelivered as err:
        await blocking(store.record_undelivered, ticket_id, agent, text, str(err))
        raise
    return response.json({"ticket": ticket_view(replied, store=store), "sent": text, "delivered": True})


@bp.post("/tickets/<ticket_id:str>/release")
@agent_route
async def release(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
    """Give the ticket one holds back to the queue and tell the user (the conversation stays paused, waiting
    for the next agent; the unclaimed timer starts again)."""
    rasa = request.app.ctx.rasa

    def told(t: Ticket) -> None:
        if channel_can_receive_agent(t.channel):
            rasa.append_state_events(t.sender_id, [released_event(t.id, t.claimed_by)])

    released = await blocking(request.app.ctx.store.release, ticket_id, agent, "agent", None, told)
    return response.json({"ticket": ticket_view(released, store=request.app.ctx.store)})


@bp.post("/tickets/<ticket_id:str>/notes")
@agent_route
async def add_note(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
    """``{"text": ...}``: an internal note (never shown to the user), personal data masked (bot.privacy); 201."""
    text = mask_pii(text_field(json_body(request), "text", request.app.ctx.settings.max_reply_chars))
    note = await blocking(request.app.ctx.store.add_note, ticket_id, agent, text)
    return response.json({"note": note.to_dict()}, status=201)


@bp.post("/tickets/<ticket_id:str>/close")
@agent_route
async def close(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
    """``{"outcome": ...}``: close, resume the bot and tell the user."""
    outcome = json_body(request).get("outcome")
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        raise BadBody(f"'outcome' must be one of {', '.join(OUTCOMES)}")
    rasa = request.app.ctx.rasa

    def resume(t: Ticket) -> None:
        # action_listen after the resume: the bot is listening again, so the user's next message is
        # predicted from the rules exactly as at the start of a turn.
        rasa.append_state_events(t.sender_id, resume_events(render("utter_handoff_closed", ticket_id=t.id), t.id,
                                                            "closed", agent))

    closed = await blocking(request.app.ctx.store.close, ticket_id, agent, outcome, resume)
    return response.json({"ticket": ticket_view(closed, store=request.app.ctx.store)})


@bp.get("/audit")
@desk_route("agent", "compliance")
async def audit_log(request: Request, agent: str) -> response.HTTPResponse:
    """The audit log, newest first (``?ticket_id=<id>``: one ticket's); reading it is audited (``audit_read``)."""
    ticket_id = request.args.get("ticket_id")
    store = request.app.ctx.store
    await blocking(store.record_read, agent, "audit_read", ticket_id)
    entries = await blocking(store.audit_log, ticket_id)
    return response.json({"entries": [e.to_dict() for e in entries]})
