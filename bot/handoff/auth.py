"""Who may call the desk: agents with their own credential (bot.handoff.credentials), and the action server (one
service token for the intake route).

Agent requests carry ``Authorization: Bearer <token>``; the token is a per-agent credential, stored hashed, with
a role and an expiry, and revocable. The agent's name and role come from the credential. ``X-Agent-Name`` is not
a credential: a request that sends one naming anybody else is refused (HTTP 403), so that nobody can act under
another agent's name. There is no shared secret: one secret for all agents cannot say who acted, and then the
audit proves nothing (``HANDOFF_SHARED_SECRET`` and the plaintext ``HANDOFF_AGENT_TOKENS`` are refused at
start-up, bot.handoff.config).

The action server authenticates with the service token ``HANDOFF_INTAKE_TOKEN`` (:class:`ServiceAuth`). The
two kinds never overlap: agent credentials are not accepted on the intake route, and the service token is not
an agent credential.
"""
from __future__ import annotations

import hmac
import urllib.parse
from typing import Optional, Sequence

from bot.handoff.credentials import Agent, CredentialRefused, CredentialStore


class AuthError(Exception):
    """The request is not from a known agent, or not allowed; the message says why. ``status`` is 401 (no valid
    credential) or 403 (a valid credential that may not do this); ``agent`` and ``credential_id`` name the
    credential when it was recognised (for the audit)."""

    def __init__(self, message: str, status: int = 401, agent: Optional[str] = None,
                 credential_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.status, self.agent, self.credential_id = status, agent, credential_id


class AgentAuth:
    """Checks agent credentials against ``credentials`` (the hashed per-agent store)."""

    def __init__(self, credentials: CredentialStore) -> None:
        self.credentials = credentials

    def authenticate(self, authorization: Optional[str], agent_name: Optional[str] = None,
                     roles: Sequence[str] = ("agent",)) -> Agent:
        """The agent of an ``Authorization: Bearer <token>`` header, if their role is one of ``roles``.

        Raises AuthError: 401 for a missing or malformed header or a token that is unknown, revoked or expired;
        403 when ``agent_name`` (the ``X-Agent-Name`` header, percent-encoded) names someone other than the
        credential's agent, or the role is not allowed. Blocking (reads the store).
        """
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing agent token: send 'Authorization: Bearer <token>'")
        token = authorization[len("Bearer "):].strip()
        if not token:
            raise AuthError("missing agent token")
        try:
            agent = self.credentials.verify(token)
        except CredentialRefused as err:
            raise AuthError(f"{err.reason}: sign in with your own current token", 401, err.agent,
                            err.credential_id) from err
        claimed = urllib.parse.unquote(agent_name or "").strip()
        if claimed and not hmac.compare_digest(claimed.encode("utf-8"), agent.name.encode("utf-8")):
            raise AuthError("X-Agent-Name does not match your credential: the name comes from the credential",
                            403, agent.name, agent.credential_id)
        if agent.role not in roles:
            raise AuthError(f"the role {agent.role!r} may not do this", 403, agent.name, agent.credential_id)
        return agent


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
