"""The desk's client for the Rasa server's HTTP API (token-protected): read a tracker, append events.

Agent messages and the resume are appended with ``output_channel=latest&execute_side_effects=true``, so Rasa
sends every appended ``BotUttered`` through the channel the user last wrote on (socketio, a callback channel,
WeChat) and stores it in the tracker. Calls are synchronous (the desk runs them in worker threads, inside
the ticket store's transactions).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List

from bot.handoff.delivery import NOT_DELIVERED_MARKER


class RasaUnavailable(RuntimeError):
    """The Rasa server did not answer, or answered with an error; the message says which."""


class RasaUndelivered(RasaUnavailable):
    """Rasa took the request but the user's channel could not deliver the message (socket gone, WeChat quota);
    Rasa stored nothing (bot.handoff.delivery)."""


class RasaClient:
    """Talk to Rasa at ``base_url`` (e.g. ``http://127.0.0.1:5005``) with the API ``token``; ``timeout`` s."""

    def __init__(self, base_url: str, token: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _url(self, sender_id: str, suffix: str, **params: str) -> str:
        quoted = urllib.parse.quote(sender_id, safe="")
        query = urllib.parse.urlencode({**params, "token": self.token})
        return f"{self.base_url}/conversations/{quoted}/{suffix}?{query}"

    def _call(self, request: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            try:
                detail = err.read().decode("utf-8", "replace")
            except OSError:
                detail = ""
            if NOT_DELIVERED_MARKER in detail:
                raise RasaUndelivered("the user's channel could not deliver the message") from err
            raise RasaUnavailable(f"Rasa answered HTTP {err.code}") from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise RasaUnavailable(f"Rasa is not reachable: {err}") from err

    def tracker(self, sender_id: str) -> Dict[str, Any]:
        """The conversation's tracker (``events``, ``slots``, ``paused``...). Raises RasaUnavailable."""
        return self._call(urllib.request.Request(self._url(sender_id, "tracker", include_events="AFTER_RESTART")))

    def append_state_events(self, sender_id: str, events: List[Dict[str, Any]]) -> bool:
        """Append ``events`` that change the conversation's state (pause, resume, a notice about the
        hand-over), delivering their messages if the channel can. When it cannot (RasaUndelivered), the events
        are appended again without sending, so that the state still changes and the notice waits in the
        transcript (the widget restores it from the history). Returns whether the messages were delivered.
        Raises RasaUnavailable when Rasa does not take the events at all."""
        try:
            self.append_events(sender_id, events)
            return True
        except RasaUndelivered:
            url = self._url(sender_id, "tracker/events", include_events="NONE")
            body = json.dumps(events, ensure_ascii=False).encode("utf-8")
            self._call(urllib.request.Request(url, data=body, method="POST",
                                              headers={"Content-Type": "application/json"}))
            return False

    def append_events(self, sender_id: str, events: List[Dict[str, Any]]) -> Dict[str, Any]:
        """Append ``events`` and send their bot messages on the user's latest channel. Raises RasaUndelivered
        when the channel could not deliver a message (nothing stored), RasaUnavailable for other failures."""
        url = self._url(sender_id, "tracker/events", output_channel="latest", execute_side_effects="true",
                        include_events="NONE")
        body = json.dumps(events, ensure_ascii=False).encode("utf-8")
        return self._call(urllib.request.Request(url, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"}))
