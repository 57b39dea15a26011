"""What the desk's blueprints share: the JSON error answer, request-body readers and worker threads.

Errors are always ``{"error": reason}``. The ticket store and the Rasa client are synchronous, so handlers
run them in worker threads (:func:`blocking`) and the event loop stays free for other agents.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, Optional

from sanic import response
from sanic.request import Request


class BadBody(Exception):
    """A request body the desk cannot use (HTTP 400)."""


class TooLarge(Exception):
    """A reply or note over the configured length (HTTP 413)."""


def error(message: str, status: int) -> response.HTTPResponse:
    """The desk's error answer: ``{"error": message}`` with HTTP ``status``."""
    return response.json({"error": message}, status=status)


async def blocking(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a worker thread (store and Rasa calls block)."""
    return await asyncio.to_thread(function, *args)


def parsed_json(request: Request) -> Optional[Any]:
    """The request body as JSON, or None if it is missing or not JSON."""
    try:
        return request.json
    except Exception:  # noqa: BLE001 - Sanic raises InvalidUsage for bad JSON
        return None


def json_body(request: Request) -> Dict[str, Any]:
    """The request body as a JSON object. Raises BadBody for anything else."""
    body = parsed_json(request)
    if not isinstance(body, dict):
        raise BadBody("the body must be a JSON object")
    return body


def text_field(body: Dict[str, Any], field: str, max_chars: int) -> str:
    """``body[field]`` stripped. Raises BadBody if it is not a non-empty string, TooLarge if over ``max_chars``."""
    text = body.get(field)
    if not isinstance(text, str) or not text.strip():
        raise BadBody(f"'{field}' is required and must be a non-empty string")
    if len(text) > max_chars:
        raise TooLarge(f"'{field}' is longer than {max_chars} characters")
    return text.strip()
