"""The REST channel (``/webhooks/rest/webhook``) with request validation and message screening.

Same wire format as Rasa's ``RestInput`` (``{"sender": ..., "message": ..., "metadata": {...}}``, answered
with a JSON list of bot messages). Differences:

* a malformed body, a missing or invalid ``sender`` or a non-string ``message`` gets HTTP 400 with
  ``{"error": "<reason>"}`` instead of reaching the dialogue under a default sender;
* the body's ``input_channel`` is ignored: every message is recorded as ``rest``. Rasa's ``RestInput`` stores
  whatever string the client names there, beside the masked text and unmasked (in the tracker, the event broker,
  the compliance record's ``channel`` and the ticket's channel, which also decides whether an agent can write
  back), so a client could both store personal data and pass a REST conversation off as a widget one;
* a ``sender`` of the widget's or WeChat's form (``web-``, ``bank-``, ``wx-``, bot.channels.ownership) gets
  HTTP 403: those conversations are reachable only through their own channel's credential;
* when REST is signed (``SECURITY_MODE=production``, or ``BANK_SIGNING_KEY`` set), a request without a valid,
  fresh, unreplayed signature of the bank's backend gets HTTP 401 (bot.channels.rest_signing); in development
  without a bank key REST is open to whoever reaches the loopback port;
* every message is screened by :func:`bot.channels.guard.guard_messages` (PII masking, limits), with the
  peer address as the client of the per-client rate limit (``bot.channels.limits``).
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.exceptions import InvalidUsage
from sanic.request import Request

from bot.channels import rest_signing
from bot.channels.guard import OnNewMessage, guard_messages
from bot.channels.limits import client_key, current_client
from bot.channels.ownership import RESERVED_PREFIXES, SecurityConfigError, channel_security

logger = logging.getLogger(__name__)

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


def reserved_sender(sender: str) -> bool:
    """True for a sender id of the widget's or WeChat's form, which REST may not write to."""
    return sender.strip().lower().startswith(RESERVED_PREFIXES)


class ValidatedRestInput(RestInput):
    """Rasa's REST channel, registered under the same name ``rest``, with validation and screening."""

    @classmethod
    def name(cls) -> str:
        """``rest``, the name of Rasa's own REST channel, so that clients and ``output_channel`` stay the same."""
        return "rest"

    def _extract_input_channel(self, req: Request) -> str:
        """Always ``rest``, whatever the body's ``input_channel`` says (see the module docstring)."""
        return self.name()

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Rasa's REST blueprint around the screened callback, with a validating request middleware."""
        blueprint = super().blueprint(guard_messages(on_new_message))
        try:
            security = channel_security()
            config_problem = None
        except SecurityConfigError as err:
            logger.error("The REST channel refuses every request: %s", err)
            config_problem = str(err)
        nonces = rest_signing.nonce_memory_from_env()

        @blueprint.middleware("request")
        async def validate(request: Request) -> Optional[response.HTTPResponse]:
            if request.method != "POST":
                return None
            current_client.set(client_key(request))
            if config_problem is not None:
                return response.json({"error": f"the REST channel is not configured: {config_problem}"},
                                     status=503)
            problem = request_problem(request)
            if problem is not None:
                status = 413 if problem.startswith("request body is larger") else 400
                return response.json({"error": problem}, status=status)
            sender = request.json["sender"]
            if reserved_sender(sender):
                logger.info("Refused a REST request for a widget or WeChat sender.")
                return response.json({"error": "this sender belongs to another channel and cannot be written "
                                               "through REST"}, status=403)
            if security.rest_signed:
                if security.bank_key is None:
                    return response.json({"error": "REST is signed in production, but BANK_SIGNING_KEY is not "
                                                   "set"}, status=503)
                try:
                    await rest_signing.verify(security.bank_key, request.headers, sender, request.body or b"",
                                              security.replay_seconds, nonces)
                except rest_signing.SignatureRefused as err:
                    logger.info("Refused a REST request: %s", err)
                    return response.json({"error": str(err)}, status=401)
            return None

        return blueprint
