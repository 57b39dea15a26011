"""The bank-app chat widget: its page, scripts and styles, and a read-only history of its own session.

A Rasa input channel named ``widget`` (registered in credentials.yml) whose blueprint, under
``/webhooks/widget/``, serves the files in ``web/`` from the Rasa server itself, on the same origin as the
socket.io endpoint the widget talks to. The page is therefore there whenever the Rasa server is, with no extra
process, CDN or proxy. The channel receives no messages itself: the widget sends them over the ``socketio``
channel (bot/channels/socketio.py), where they are screened and masked like on every channel.

Routes (all GET):

* ``/webhooks/widget/`` the standalone chat page (web/index.html), as a bank app's web view opens it;
* ``/webhooks/widget/<file>`` one of :data:`STATIC_FILES` (embed.js, widget.css, demo.html, ...);
* ``/webhooks/widget/history/<session_id>`` the session's transcript, see :func:`session_transcript`; it needs
  ``Authorization: Bearer <session token>`` issued for that session (bot.channels.ownership): 401 without a
  valid token, 403 with a token of another session;
  HTTP 429 over the ``history`` rate limit per client (``bot.channels.limits``).
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import PROJECT_ROOT
from bot.channels.limits import client_key, default_limiter
from bot.channels.ownership import WIDGET_SENDER, SecurityConfigError, TokenRefused, bearer, channel_security
from bot.channels.ownership import session_sender as token_sender
from bot.privacy import mask_pii

logger = logging.getLogger(__name__)

WEB_DIR = PROJECT_ROOT / "web"
"""Where the widget's files live; ``web/vendor/`` is filled by scripts/setup-web from node_modules."""

STATIC_FILES: Dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "demo.html": "text/html; charset=utf-8",
    "embed.js": "application/javascript; charset=utf-8",
    "page.js": "application/javascript; charset=utf-8",
    "widget.css": "text/css; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "vendor/socket.io.min.js": "application/javascript; charset=utf-8",
    "vendor/socket.io.min.js.map": "application/json; charset=utf-8",
}
"""The only files served (path under web/ -> content type); anything else is a 404, so nothing else in the
repository can be reached through the widget's routes."""

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "font-src 'self'; base-uri 'none'; form-action 'none'"
)
"""Content-Security-Policy of the standalone page: only its own scripts run (no inline script, no other
origin), a second line of defence behind rendering every message as text."""

SESSION_ID = WIDGET_SENDER
"""The form of a session id the socketio channel generates (``web-`` or ``bank-`` and 128 bits in hex)."""

MAX_HISTORY_MESSAGES = 200
"""At most this many of the latest messages are returned by the history route."""


def _static(name: str) -> HTTPResponse:
    path = WEB_DIR / name
    if not path.is_file():
        if name.startswith("vendor/"):
            return response.text("The widget's socket.io client is not installed: run ./scripts/setup.",
                                 status=503)
        return response.text("Not found", status=404)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    if name == "index.html":
        headers["Content-Security-Policy"] = PAGE_POLICY
    return response.raw(path.read_bytes(), content_type=STATIC_FILES[name], headers=headers)


def _quick_replies(data: Dict[str, Any]) -> List[Dict[str, str]]:
    buttons = data.get("quick_replies") or data.get("buttons") or []
    replies = []
    for button in buttons:
        if isinstance(button, dict) and isinstance(button.get("title"), str):
            replies.append({"title": button["title"], "payload": str(button.get("payload") or "")})
    return replies


def session_transcript(events: Iterable[Any], limit: int = MAX_HISTORY_MESSAGES) -> List[Dict[str, Any]]:
    """The messages of a conversation as the widget shows them, oldest first (at most ``limit``, the latest).

    Each item is ``{"from": "user", "text": ...}``, ``{"from": "user", "payload": ...}`` or ``{"from": "bot",
    "text": ..., "quick_replies": [{"title", "payload"}], "custom": {...}}`` (the last two only when present). User
    texts are the ones the tracker stored, which the channel layer masked before storage; they are masked again here
    as a second line of defence. A user message that was a button payload (``/intent``) is shown as the button's
    title when the previous bot message offered that button; otherwise it is returned as ``{"from": "user",
    "payload": "/intent"}`` (entities cut off) and the page decides (it shows its 转人工 button's payload as the
    button's label and hides the initial ``/greet``).
    """
    messages: List[Dict[str, Any]] = []
    offered: Dict[str, str] = {}
    for event in events:
        if isinstance(event, UserUttered):
            text = event.text or ""
            if text.startswith("/") and text in offered:
                messages.append({"from": "user", "text": offered[text]})
            elif text.startswith("/"):
                messages.append({"from": "user", "payload": text.split("{")[0][:64]})
            else:
                messages.append({"from": "user", "text": mask_pii(text)})
            offered = {}
        elif isinstance(event, BotUttered):
            data = event.data or {}
            item: Dict[str, Any] = {"from": "bot", "text": event.text or ""}
            replies = _quick_replies(data)
            if replies:
                item["quick_replies"] = replies
                offered = {reply["payload"]: reply["title"] for reply in replies}
            if isinstance(data.get("custom"), dict):
                item["custom"] = data["custom"]
            if item["text"] or replies or "custom" in item:
                messages.append(item)
    return messages[-limit:]


def _came_over_socketio(events: Iterable[Any]) -> bool:
    return any(isinstance(event, UserUttered) and event.input_channel == "socketio" for event in events)


class WidgetInput(InputChannel):
    """Serves the widget (web/) and its session history; registered in credentials.yml as ``widget``.

    Why the history comes from the server and not from the browser's storage: the page keeps only the opaque
    session token in ``localStorage``. Keeping the transcript there instead would leave the user's own words,
    unmasked, on the device (a bank app's web view on a phone that may be shared) and, when the widget is
    embedded, readable by every script of the host page's origin. The server's copy is the one the channel
    layer masked before it was stored (ID, card and mobile numbers, codes). The route is read-only, returns
    only message texts, buttons and custom payloads (no slots, intents or metadata), answers only with the
    session token the server issued for that very session (the credential that also continues it over
    socketio), only for conversations held over the socketio channel (not REST senders), and never creates a
    conversation.
    """

    @classmethod
    def name(cls) -> str:
        """The channel's name, which is also its URL prefix: ``/webhooks/widget/``."""
        return "widget"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> WidgetInput:
        """The channel takes no settings."""
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The routes described in the module docstring."""
        widget = Blueprint("widget_webhook", __name__)

        @widget.route("/", methods=["GET"])
        async def page(request: Request) -> HTTPResponse:
            if not request.path.endswith("/"):  # the page's relative URLs need the trailing slash
                return response.redirect(request.path + "/")
            return _static("index.html")

        @widget.route("/history/<session_id>", methods=["GET"])
        async def history(request: Request, session_id: str) -> HTTPResponse:
            headers = {"Cache-Control": "no-store"}
            if not SESSION_ID.match(session_id):
                return response.json({"error": "unknown session"}, status=404, headers=headers)
            if not await default_limiter().allow("history", client_key(request) or "ip:unknown"):
                return response.json({"error": "too many history requests; try again in a minute"}, status=429,
                                     headers={**headers, "Retry-After": "60"})
            try:
                owner = token_sender(channel_security(), bearer(request.headers.get("authorization")))
            except (TokenRefused, SecurityConfigError) as err:
                logger.info("Refused a history request: %s", err)
                return response.json({"error": "send the session token: Authorization: Bearer <token>"},
                                     status=401, headers=headers)
            if owner != session_id:
                logger.info("Refused a history request for another session.")
                return response.json({"error": "this token is not for that session"}, status=403, headers=headers)
            agent = getattr(request.app.ctx, "agent", None)
            store = getattr(agent, "tracker_store", None)
            tracker = await store.retrieve(session_id) if store is not None else None
            if tracker is None or not _came_over_socketio(tracker.events):
                return response.json({"messages": []}, headers=headers)
            return response.json({"messages": session_transcript(tracker.events)}, headers=headers)

        @widget.route("/<name:path>", methods=["GET"])
        async def static(request: Request, name: str) -> HTTPResponse:
            if name in ("", "index.html"):
                return _static("index.html")
            if name not in STATIC_FILES:
                return response.text("Not found", status=404)
            return _static(name)

        return widget
