"""The agent desk: a small Sanic service with an HTTP API and a web page for human agents.

Started by ``python -m bot run`` on 127.0.0.1 (port 5056 by default), or alone with
``python -m bot.handoff.desk --port 5056``. It migrates the ticket store at start-up, then serves:

========================================  ==================================================================
``GET  /``                                the agents' page (plain HTML/JS from ``static/``, no CDN)
``GET  /health``                          ``{"status": "ok"}`` when the ticket store answers (no auth)
``GET  /api/me``                          ``{"agent": name}``: checks the credentials
``GET  /api/tickets[?include_closed=1]``  the queue: open tickets by priority, then age
``GET  /api/tickets/<id>``                a ticket with summary, stored transcript and notes (audited)
``GET  /api/tickets/<id>/transcript``     the live transcript from Rasa (incl. messages sent while paused)
``POST /api/tickets/<id>/claim``          take the ticket (only one agent can hold it); tells the user
``POST /api/tickets/<id>/reply``          ``{"text": ...}``: send the agent's message to the user
``POST /api/tickets/<id>/notes``          ``{"text": ...}``: add an internal note
``POST /api/tickets/<id>/close``          ``{"outcome": ...}``: close, resume the bot, tell the user
``GET  /api/audit[?ticket_id=<id>]``      the audit log, newest first
========================================  ==================================================================

Every ``/api`` call needs agent credentials (bot.handoff.auth). Errors are JSON ``{"error": reason}`` with
400 (bad body), 401 (credentials), 404 (unknown ticket), 409 (wrong state: not claimed, held by another
agent, closed), 413 (reply, note or body too large) or 502 (Rasa did not take the message; nothing changed).
A background task tells users of unclaimed tickets about the wait and delivers the webhook outbox.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional

from sanic import Sanic, response
from sanic.request import Request

from bot.db import upgrade_database
from bot.handoff.auth import AgentAuth, AuthError
from bot.handoff.config import HandoffConfigError, HandoffSettings, load_settings
from bot.handoff.messages import agent_message_event, bot_event, render
from bot.handoff.notifier import WebhookNotifier
from bot.handoff.priority import PRIORITY_LABELS, REASON_LABELS
from bot.handoff.rasa_client import RasaClient, RasaUnavailable
from bot.handoff.store import OUTCOMES, HandoffStoreError, Ticket, TicketStore, utcnow
from bot.handoff.summary import SLOT_LABELS, transcript
from bot.handoff.timeouts import notify_timeouts

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5056
"""The desk's default port on 127.0.0.1."""

MAX_BODY_BYTES = 16 * 1024
"""Largest accepted request body; larger ones get 413 before any handler runs."""

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The page's HTML, JavaScript and CSS."""


def _error(message: str, status: int) -> response.HTTPResponse:
    return response.json({"error": message}, status=status)


def _ticket_view(ticket: Ticket, include_transcript: bool = False) -> Dict[str, Any]:
    data = ticket.to_dict(include_transcript)
    data["priority_label"] = PRIORITY_LABELS.get(ticket.priority, str(ticket.priority))
    data["reason_label"] = REASON_LABELS.get(ticket.reason, ticket.reason)
    data["age_seconds"] = int((utcnow() - ticket.created_at).total_seconds())
    if ticket.outcome:
        data["outcome_label"] = OUTCOMES.get(ticket.outcome, ticket.outcome)
    return data


def create_app(settings: HandoffSettings, store: TicketStore, rasa: RasaClient,
               name: str = "handoff_desk") -> Sanic:
    """The desk application over ``store`` and ``rasa`` (no server is started; see :func:`main`)."""
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.FALLBACK_ERROR_FORMAT = "json"
    auth = AgentAuth(settings.agent_tokens, settings.shared_secret)
    notifier = (WebhookNotifier(store, settings.webhook_url, settings.webhook_secret or "",
                                settings.webhook_max_attempts, settings.webhook_retry_seconds)
                if settings.webhook_url else None)

    async def blocking(function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(function, *args)

    def agent_api(handler: Callable[..., Awaitable[response.HTTPResponse]]):
        """Authenticate, run the handler, and map store and Rasa errors to JSON answers."""

        async def wrapped(request: Request, *args: Any, **kwargs: Any) -> response.HTTPResponse:
            try:
                agent = auth.authenticate(request.headers.get("authorization"), request.headers.get("x-agent-name"))
            except AuthError as err:
                logger.info("Refused a desk request to %s: %s", request.path, err)
                return _error(str(err), 401)
            try:
                return await handler(request, agent, *args, **kwargs)
            except HandoffStoreError as err:
                return _error(str(err), err.status)
            except RasaUnavailable as err:
                logger.warning("Rasa did not take a desk message: %s", err)
                return _error(f"the conversation server did not accept the message ({err}); nothing was changed",
                              502)

        wrapped.__name__ = handler.__name__
        return wrapped

    def json_body(request: Request) -> Dict[str, Any]:
        try:
            body = request.json
        except Exception:  # noqa: BLE001 - Sanic raises InvalidUsage for bad JSON
            body = None
        if not isinstance(body, dict):
            raise _BadBody("the body must be a JSON object")
        return body

    def text_field(body: Dict[str, Any], field: str) -> str:
        text = body.get(field)
        if not isinstance(text, str) or not text.strip():
            raise _BadBody(f"'{field}' is required and must be a non-empty string")
        if len(text) > settings.max_reply_chars:
            raise _TooLarge(f"'{field}' is longer than {settings.max_reply_chars} characters")
        return text.strip()

    @app.exception(_BadBody)
    async def bad_body(request: Request, err: Exception) -> response.HTTPResponse:
        return _error(str(err), 400)

    @app.exception(_TooLarge)
    async def too_large(request: Request, err: Exception) -> response.HTTPResponse:
        return _error(str(err), 413)

    @app.get("/health")
    async def health(request: Request) -> response.HTTPResponse:
        try:
            await blocking(store.counts)
        except Exception as err:  # noqa: BLE001
            return _error(f"ticket store unavailable: {type(err).__name__}", 503)
        return response.json({"status": "ok"})

    @app.get("/")
    async def page(request: Request) -> response.HTTPResponse:
        return await response.file(STATIC_DIR / "desk.html", mime_type="text/html; charset=utf-8")

    app.static("/static", str(STATIC_DIR))

    @app.get("/api/me")
    @agent_api
    async def me(request: Request, agent: str) -> response.HTTPResponse:
        return response.json({"agent": agent, "outcomes": OUTCOMES, "slot_labels": SLOT_LABELS,
                              "max_reply_chars": settings.max_reply_chars})

    @app.get("/api/tickets")
    @agent_api
    async def queue(request: Request, agent: str) -> response.HTTPResponse:
        include_closed = request.args.get("include_closed") in ("1", "true")
        tickets = await blocking(store.queue, include_closed)
        return response.json({"tickets": [_ticket_view(t) for t in tickets]})

    @app.get("/api/tickets/<ticket_id:str>")
    @agent_api
    async def ticket(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
        found = await blocking(store.record_view, ticket_id, agent)
        notes = await blocking(store.notes, ticket_id)
        return response.json({"ticket": _ticket_view(found, include_transcript=True),
                              "notes": [n.to_dict() for n in notes]})

    @app.get("/api/tickets/<ticket_id:str>/transcript")
    @agent_api
    async def live_transcript(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
        found = await blocking(store.get, ticket_id)
        try:
            tracker = await blocking(rasa.tracker, found.sender_id)
        except RasaUnavailable as err:
            return response.json({"live": False, "error": str(err), "messages": found.transcript})
        return response.json({"live": True, "paused": bool(tracker.get("paused")),
                              "messages": transcript(tracker.get("events") or [])})

    @app.post("/api/tickets/<ticket_id:str>/claim")
    @agent_api
    async def claim(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
        def joined(t: Ticket) -> None:
            message = render("utter_handoff_agent_joined", ticket_id=t.id, agent_name=agent)
            rasa.append_events(t.sender_id, [bot_event(message, t.id, "agent_joined", agent)])

        claimed = await blocking(store.claim, ticket_id, agent, joined)
        return response.json({"ticket": _ticket_view(claimed)})

    @app.post("/api/tickets/<ticket_id:str>/reply")
    @agent_api
    async def reply(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
        text = text_field(json_body(request), "text")

        def send(t: Ticket) -> None:
            rasa.append_events(t.sender_id, [agent_message_event(text, agent, t.id)])

        replied = await blocking(store.record_reply, ticket_id, agent, text, send)
        return response.json({"ticket": _ticket_view(replied), "sent": text})

    @app.post("/api/tickets/<ticket_id:str>/notes")
    @agent_api
    async def add_note(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
        text = text_field(json_body(request), "text")
        note = await blocking(store.add_note, ticket_id, agent, text)
        return response.json({"note": note.to_dict()}, status=201)

    @app.post("/api/tickets/<ticket_id:str>/close")
    @agent_api
    async def close(request: Request, agent: str, ticket_id: str) -> response.HTTPResponse:
        outcome = json_body(request).get("outcome")
        if not isinstance(outcome, str) or outcome not in OUTCOMES:
            raise _BadBody(f"'outcome' must be one of {', '.join(OUTCOMES)}")

        def resume(t: Ticket) -> None:
            message = render("utter_handoff_closed", ticket_id=t.id)
            # action_listen after the resume: the bot is listening again, so the user's next message is
            # predicted from the rules exactly as at the start of a turn.
            rasa.append_events(t.sender_id, [
                {"event": "resume"},
                {"event": "action", "name": "action_listen", "policy": "handoff_desk"},
                bot_event(message, t.id, "closed", agent),
            ])

        closed = await blocking(store.close, ticket_id, agent, outcome, resume)
        return response.json({"ticket": _ticket_view(closed)})

    @app.get("/api/audit")
    @agent_api
    async def audit_log(request: Request, agent: str) -> response.HTTPResponse:
        entries = await blocking(store.audit_log, request.args.get("ticket_id"))
        return response.json({"entries": [e.to_dict() for e in entries]})

    async def periodic(app_: Sanic) -> None:
        while True:
            try:
                await blocking(notify_timeouts, store, rasa, settings.claim_timeout_seconds)
                if notifier is not None:
                    await blocking(notifier.deliver_due)
            except Exception:  # noqa: BLE001 - keep the loop alive; the next round retries
                logger.exception("Desk background task failed")
            await asyncio.sleep(settings.check_interval_seconds)

    background: Dict[str, asyncio.Task[None]] = {}

    @app.listener("after_server_start")
    async def start_background(app_: Sanic, _loop: Any) -> None:
        background["task"] = asyncio.ensure_future(periodic(app_))

    @app.listener("before_server_stop")
    async def stop_background(app_: Sanic, _loop: Any) -> None:
        task = background.pop("task", None)
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    return app


class _BadBody(Exception):
    """A request body the desk cannot use (HTTP 400)."""


class _TooLarge(Exception):
    """A reply or note over the configured length (HTTP 413)."""


def main(argv: Optional[list] = None) -> int:
    """Start the desk: ``python -m bot.handoff.desk [--host 127.0.0.1] [--port 5056]``.

    Needs RASA_URL, RASA_AUTH_TOKEN and agent credentials in the environment (see bot.handoff.config).
    Returns 2 (with the reason on stderr) on a configuration error; otherwise serves until stopped.
    """
    parser = argparse.ArgumentParser(prog="python -m bot.handoff.desk", description="The agent desk.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    try:
        settings = load_settings()
    except HandoffConfigError as err:
        print(f"Handoff configuration is invalid: {err}", file=sys.stderr)
        return 2
    if not settings.auth_configured:
        print("Set HANDOFF_AGENT_TOKENS or HANDOFF_SHARED_SECRET so that agents can sign in.", file=sys.stderr)
        return 2
    if not settings.rasa_url or not settings.rasa_token:
        print("Set RASA_URL and RASA_AUTH_TOKEN so that the desk can reach the conversations.", file=sys.stderr)
        return 2
    upgrade_database(settings.database_url, "handoff")
    store = TicketStore.from_url(settings.database_url, webhook_enabled=bool(settings.webhook_url))
    app = create_app(settings, store, RasaClient(settings.rasa_url, settings.rasa_token))
    app.run(host=args.host, port=args.port, access_log=False, motd=False, workers=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
