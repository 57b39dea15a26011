"""The REST channel (``/webhooks/rest/webhook``) with request validation and message screening.

Same wire format as Rasa's ``RestInput`` (``{"sender": ..., "message": ..., "metadata": {...}}``, answered
with a JSON list of bot messages). Differences:

* a malformed body, a missing or invalid ``sender`` or a non-string ``message`` gets HTTP 400 with
  ``{"error": "<reason>"}`` instead of reaching the dialogue under a default sender;
* every message is screened by :func:`bot.channels.guard.guard_messages` (PII masking, limits), with the
  peer address as the client of the per-client rate limit (``bot.channels.limits``).
"""
from __future__ import annotations

from typing import Any, Optional

from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.exceptions import InvalidUsage
from sanic.request import Request

from bot.channels.guard import OnNewMessage, guard_messages
from bot.channels.limits import current_client

MAX_SENDER_CHARS = 128
"""Longest accepted ``sender`` id, in characters."""

MAX_BODY_BYTES = 64 * 1024
"""Largest accepted request body. Larger bodies get HTTP 413."""


def request_problem(request: Request) -> Optional[str]:
    """Why a webhook request is unacceptable, in one sentence, or ``None`` if it is fine."""
    if len(request.body or b"") > MAX_BODY_BYTES:
        return f"request body is larger than {MAX_BODY_BYTES} bytes"
    try:
        body: Any = request.json
    except InvalidUsage:
        return "request body is not valid JSON"
    if not isinstance(body, dict):
        return "request body must be a JSON object with 'sender' and 'message'"
    sender = body.get("sender")
    if not isinstance(sender, str) or not sender.strip():
        return "'sender' is required and must be a non-empty string"
    if len(sender) > MAX_SENDER_CHARS:
        return f"'sender' must be at most {MAX_SENDER_CHARS} characters"
    if "message" not in body or not isinstance(body["message"], str):
        return "'message' is required and must be a string"
    if "metadata" in body and body["metadata"] is not None and not isinstance(body["metadata"], dict):
        return "'metadata' must be a JSON object"
    return None


class ValidatedRestInput(RestInput):
    """Rasa's REST channel, registered under the same name ``rest``, with validation and screening."""

    @classmethod
    def name(cls) -> str:
        """``rest``, the name of Rasa's own REST channel, so that clients and ``output_channel`` stay the same."""
        return "rest"

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Rasa's REST blueprint around the screened callback, with a validating request middleware."""
        blueprint = super().blueprint(guard_messages(on_new_message))

        @blueprint.middleware("request")
        async def validate(request: Request) -> Optional[response.HTTPResponse]:
            if request.method != "POST":
                return None
            current_client.set(f"ip:{request.remote_addr or request.ip}")
            problem = request_problem(request)
            if problem is None:
                return None
            status = 413 if problem.startswith("request body is larger") else 400
            return response.json({"error": problem}, status=status)

        return blueprint
