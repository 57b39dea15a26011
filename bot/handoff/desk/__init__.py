"""The agent desk: a small Sanic service with an HTTP API and a web page for human agents, and the intake
route where the action server hands conversations over.

Started by ``python -m bot run`` on 127.0.0.1 (port 5056 by default), or alone with
``python -m bot.handoff.desk --port 5056`` (bot/handoff/desk/__main__.py). It migrates the ticket store at
start-up, then serves:

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
``POST /api/tickets/<id>/release``        give a claimed ticket back to the queue; tells the user
``GET  /api/presence``                    the agents at the desk now and whether agents are on duty
``POST /api/intake/tickets``              the action server's new ticket (service token only)
``POST /api/intake/paused-message``       the Rasa side's gate: a message to a paused conversation
``GET  /compliance``                      the compliance page (its data needs a ``compliance`` credential)
``GET  /api/compliance/report``           the compliance report with its charts (compliance role; audited)
``GET  /api/compliance/report.csv``       the report's CSV as a download (compliance role; audited)
========================================  ==================================================================

Every ``/api`` call needs agent credentials (bot.handoff.auth), except the intake route, which needs the
service token and nothing else. Errors are JSON ``{"error": reason}`` with 400 (bad body), 401 (credentials),
404 (unknown ticket), 409 (wrong state: not claimed, held by another agent, closed), 413 (reply, note or body
too large), 502 (Rasa did not take the message; nothing changed) or, on the intake route, 503 (the ticket
store failed). A background task tells users of unclaimed tickets about the wait and delivers the webhook
outbox.

One module per concern, each a blueprint reading what it needs from ``app.ctx`` (set by :func:`create_app`):
``page`` (``/`` and ``/static``), ``health``, ``agent_api`` (``/api``, with the one agent-auth wrapper),
``service_api`` (``/api/intake``), ``compliance_api`` (``/compliance``, the compliance record's report),
``background`` (the listener-started loop); ``common`` holds the shared
helpers.
"""
from __future__ import annotations

from typing import Optional

from sanic import Sanic

from bot.handoff.auth import AgentAuth, GateAuth, ServiceAuth
from bot.handoff.config import HandoffSettings
from bot.handoff.credentials import CredentialStore
from bot.handoff.desk import agent_api, background, compliance_api, health, page, service_api
from bot.handoff.notifier import WebhookNotifier
from bot.handoff.presence import AgentPresence
from bot.handoff.rasa_client import RasaClient
from bot.handoff.store import TicketStore

DEFAULT_PORT = 5056
"""The desk's default port on 127.0.0.1."""

MAX_BODY_BYTES = 16 * 1024
"""Largest accepted request body; larger ones get 413 before any handler runs (the intake route has its own,
larger limit: bot.handoff.desk.service_api.INTAKE_MAX_BODY_BYTES)."""


def create_app(settings: HandoffSettings, store: TicketStore, rasa: RasaClient,
               name: str = "handoff_desk", compliance_url: Optional[str] = None) -> Sanic:
    """The desk application over ``store`` and ``rasa`` (no server is started; see bot.handoff.desk.__main__).

    ``app.ctx`` carries ``settings``, ``store``, ``rasa``, ``auth`` (agents' credentials, in the store's
    database), ``intake_auth`` (the action server), ``gate_auth`` (the Rasa side's paused-conversation gate),
    ``presence`` (agents seen lately), ``notifier`` (None without a webhook) and ``compliance`` (the compliance
    record at ``compliance_url``, else ``$COMPLIANCE_DATABASE_URL`` or var/compliance.db, opened on first use).
    ``name`` must be unique in the process (Sanic keeps a registry of apps).
    """
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.settings = settings
    app.ctx.store = store
    app.ctx.rasa = rasa
    app.ctx.auth = AgentAuth(CredentialStore(store.engine))
    app.ctx.intake_auth = ServiceAuth(settings.intake_token)
    app.ctx.gate_auth = GateAuth(settings.intake_token, settings.rasa_token)
    app.ctx.presence = AgentPresence(settings.presence_window_seconds)
    app.ctx.notifier = (WebhookNotifier(store, settings.webhook_url, settings.webhook_secret or "",
                                        settings.webhook_max_attempts, settings.webhook_retry_seconds)
                        if settings.webhook_url else None)
    app.ctx.compliance = compliance_api.ComplianceStore(compliance_url)
    app.ctx.background = None
    for blueprint in (page.bp, health.bp, agent_api.bp, service_api.bp, compliance_api.bp, background.bp):
        app.blueprint(blueprint)
    return app
