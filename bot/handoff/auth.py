"""Who may call the desk: agents (per-agent tokens, or one shared secret plus the agent's name), and the action
server (one service token for the intake route).

Agent requests carry ``Authorization: Bearer <token>``. With per-agent tokens (``HANDOFF_AGENT_TOKENS``) the token
names the agent. With the shared secret (``HANDOFF_SHARED_SECRET``) the agent also sends its display name in
``X-Agent-Name``, percent-encoded UTF-8 (browsers cannot send raw Chinese in headers). Comparisons are
constant-time. The name is what the audit table records and what the user sees when the agent joins.

The action server authenticates with the service token ``HANDOFF_INTAKE_TOKEN`` (:class:`ServiceAuth`). The
two kinds never overlap: the settings refuse a service token equal to an agent credential, agent tokens are
not accepted on the intake route, and the service token is not an agent credential.
"""
from __future__ import annotations

import hmac
import re
import urllib.parse
from typing import Mapping, Optional

MAX_AGENT_NAME_CHARS = 32
"""Longest accepted agent name."""

RESERVED_NAMES = frozenset({"system", "bot", "user"})
"""Names an agent may not use (they mark audit rows written by the bot and the desk itself)."""

_BAD_NAME = re.compile(r"[\x00-\x1f\x7f<>]")


class AuthError(Exception):
    """The request is not from a known agent; the message says why (HTTP 401)."""


class AgentAuth:
    """Checks agent credentials. ``agent_tokens``: name -> token; ``shared_secret``: or one secret for all."""

    def __init__(self, agent_tokens: Mapping[str, str], shared_secret: Optional[str]) -> None:
        self.agent_tokens = dict(agent_tokens)
        self.shared_secret = shared_secret

    def authenticate(self, authorization: Optional[str], agent_name: Optional[str]) -> str:
        """The agent's name for an ``Authorization`` header (and ``X-Agent-Name`` with the shared secret).

        Raises AuthError for a missing or malformed header, an unknown token, or a missing or invalid name.
        """
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing agent token: send 'Authorization: Bearer <token>'")
        token = authorization[len("Bearer "):].strip()
        if not token:
            raise AuthError("missing agent token")
        for name, known in self.agent_tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return name
        if self.shared_secret and hmac.compare_digest(self.shared_secret.encode(), token.encode()):
            return self._name(agent_name)
        raise AuthError("wrong agent token")

    @staticmethod
    def _name(raw: Optional[str]) -> str:
        name = urllib.parse.unquote(raw or "").strip()
        if not name:
            raise AuthError("with the shared secret, send your name in X-Agent-Name")
        if len(name) > MAX_AGENT_NAME_CHARS or _BAD_NAME.search(name) or name.lower() in RESERVED_NAMES:
            raise AuthError(f"X-Agent-Name must be 1-{MAX_AGENT_NAME_CHARS} printable characters")
        return name


class ServiceAuth:
    """Checks the action server's service token for the intake route; ``token`` None refuses every request."""

    def __init__(self, token: Optional[str]) -> None:
        self.token = token

    def check(self, authorization: Optional[str]) -> None:
        """Return if ``authorization`` is ``Bearer <service token>`` (constant-time comparison).

        Raises AuthError for a missing or malformed header, a wrong token, or a desk without a service token.
        """
        if not self.token:
            raise AuthError("the desk has no intake token (HANDOFF_INTAKE_TOKEN); it takes no tickets")
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing intake token: send 'Authorization: Bearer <HANDOFF_INTAKE_TOKEN>'")
        token = authorization[len("Bearer "):].strip()
        if not hmac.compare_digest(self.token.encode(), token.encode()):
            raise AuthError("wrong intake token")


class GateAuth:
    """Checks the token of the paused-conversation gate (bot.handoff.paused, in the Rasa server) on the desk's
    ``/api/intake/paused-message``: the service token or Rasa's own API token (``RASA_AUTH_TOKEN``, which
    the desk already holds to reach Rasa). The Rasa process does not get the service token, so that a leak
    from it cannot open tickets; the gate's route can only read a ticket's state, raise its priority or close it
    for its own user, all of which Rasa's token already allows through the conversation."""

    def __init__(self, intake_token: Optional[str], rasa_token: Optional[str]) -> None:
        self._checks = [ServiceAuth(token) for token in (intake_token, rasa_token) if token]

    def check(self, authorization: Optional[str]) -> None:
        """Return if ``authorization`` is ``Bearer <one of the tokens>``. Raises AuthError otherwise."""
        for check in self._checks:
            try:
                check.check(authorization)
                return
            except AuthError:
                continue
        raise AuthError("missing or wrong gate token")
