"""Per-agent credentials for the desk: issued to one named person with a role and an expiry, stored hashed,
revocable (``python -m bot agents issue|revoke|list``).

A token is ``dhk_`` and 256 random bits (``secrets.token_urlsafe``); it is shown once, when issued. The store
keeps its public id (the first 16 hex digits of its SHA-256, so a request finds its row without a scan), a
random salt and ``hashlib.scrypt(token, salt, n=2**14, r=8, p=1)``. The agent's name and role come from the
row, never from the request. Each check reads the row (so a revocation or expiry counts at once); the slow
scrypt comparison runs once per token and process, later checks compare a SHA-256 kept in memory.

Roles (:data:`ROLES`): ``agent`` works tickets on the desk; ``compliance`` is for reviewing the desk's audit
(a compliance page agents cannot see) and does not work tickets; ``leads`` reads the consented seller leads
(``python -m bot leads``, bot.leads.store) and nothing else.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Engine

from bot.handoff.schema import agent_credentials

ROLES = ("agent", "compliance", "leads")
"""The roles a credential can carry."""

TOKEN_PREFIX = "dhk_"
"""How every desk token starts (so a leaked one is recognisable, e.g. by secret scanners)."""

DEFAULT_DAYS = 90
"""Default lifetime of a credential, in days."""

MAX_DAYS = 366
"""Longest lifetime of a credential, in days."""

MIN_TOKEN_CHARS = 32
"""Shortest token accepted when one is supplied (tests, a migration from another system)."""

MAX_AGENT_NAME_CHARS = 32
"""Longest agent name."""

RESERVED_NAMES = frozenset({"system", "bot", "user", "unknown"})
"""Names that mark audit rows written by the bot, the desk itself, the user or an unidentified caller."""

_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f<>]")


class CredentialError(ValueError):
    """An issue or revoke request that cannot be done (bad name, role or lifetime, nothing to revoke)."""


class CredentialRefused(Exception):
    """A token that is not an active credential. ``reason`` says why (unknown, revoked, expired); ``agent`` and
    ``credential_id`` are set when the token named a known credential (for the audit)."""

    def __init__(self, reason: str, credential_id: Optional[str] = None, agent: Optional[str] = None) -> None:
        super().__init__(reason)
        self.reason, self.credential_id, self.agent = reason, credential_id, agent


@dataclass(frozen=True)
class Credential:
    """A stored credential (never the token): times are naive UTC."""

    id: str
    agent: str
    role: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: Optional[dt.datetime]

    def active(self, now: dt.datetime) -> bool:
        """True if neither revoked nor expired at ``now``."""
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True)
class Agent:
    """Who a request is from: the name and role of its credential."""

    name: str
    role: str
    credential_id: str


def credential_id(token: str) -> str:
    """The public id of ``token``: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def check_name(name: str) -> str:
    """``name`` stripped. Raises CredentialError unless it has 1-32 printable characters and is not reserved."""
    name = (name or "").strip()
    if not name or len(name) > MAX_AGENT_NAME_CHARS or _BAD_NAME.search(name) or name.lower() in RESERVED_NAMES:
        raise CredentialError(f"an agent's name has 1-{MAX_AGENT_NAME_CHARS} printable characters and is not one "
                              f"of {', '.join(sorted(RESERVED_NAMES))}")
    return name


def _hash(token: str, salt: bytes) -> str:
    return hashlib.scrypt(token.encode("utf-8"), salt=salt, **_SCRYPT).hex()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _credential(row: object) -> Credential:
    mapping = row._mapping  # type: ignore[attr-defined]
    return Credential(id=mapping["id"], agent=mapping["agent"], role=mapping["role"],
                      created_at=mapping["created_at"], expires_at=mapping["expires_at"],
                      revoked_at=mapping["revoked_at"])


class CredentialStore:
    """Credentials in the ticket store's database (``engine``, migrated). ``clock``: naive UTC now."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self._verified: Dict[str, bytes] = {}

    def issue(self, agent: str, role: str = "agent", days: int = DEFAULT_DAYS,
              token: Optional[str] = None) -> Tuple[str, Credential]:
        """A new credential for ``agent`` with ``role``, valid ``days`` days. Returns ``(token, credential)``: the
        token exists only in this answer. ``token`` supplies one instead of a random one (at least
        MIN_TOKEN_CHARS characters). Raises CredentialError for a bad name, role, lifetime or token."""
        name = check_name(agent)
        if role not in ROLES:
            raise CredentialError(f"the role must be one of {', '.join(ROLES)}")
        if not 1 <= days <= MAX_DAYS:
            raise CredentialError(f"a credential lives 1-{MAX_DAYS} days")
        if token is None:
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        elif len(token) < MIN_TOKEN_CHARS:
            raise CredentialError(f"a supplied token has at least {MIN_TOKEN_CHARS} characters")
        salt = secrets.token_bytes(16)
        now = self.clock()
        credential = Credential(id=credential_id(token), agent=name, role=role, created_at=now,
                                expires_at=now + dt.timedelta(days=days), revoked_at=None)
        with self.engine.begin() as conn:
            if conn.execute(select(agent_credentials.c.id).where(agent_credentials.c.id == credential.id)).first():
                raise CredentialError("this token is already issued")
            conn.execute(insert(agent_credentials).values(
                id=credential.id, agent=name, role=role, salt=salt.hex(), token_hash=_hash(token, salt),
                created_at=now, expires_at=credential.expires_at, revoked_at=None))
        return token, credential

    def revoke(self, credential: Optional[str] = None, agent: Optional[str] = None) -> List[Credential]:
        """Revoke one credential (by id) or every active one of ``agent``; returns those revoked. Raises
        CredentialError if neither is given or nothing active matches."""
        if not credential and not agent:
            raise CredentialError("name a credential id or an agent")
        now = self.clock()
        condition = (agent_credentials.c.id == credential) if credential else (agent_credentials.c.agent == agent)
        with self.engine.begin() as conn:
            rows = conn.execute(select(agent_credentials).where(
                and_(condition, agent_credentials.c.revoked_at.is_(None)))).fetchall()
            if not rows:
                raise CredentialError("no active credential matches")
            ids = [row._mapping["id"] for row in rows]
            conn.execute(update(agent_credentials).where(agent_credentials.c.id.in_(ids)).values(revoked_at=now))
        for revoked_id in ids:
            self._verified.pop(revoked_id, None)
        return [Credential(**{**_credential(row).__dict__, "revoked_at": now}) for row in rows]

    def credentials(self, include_inactive: bool = False) -> List[Credential]:
        """The credentials, oldest first (only active ones unless ``include_inactive``)."""
        with self.engine.connect() as conn:
            found = [_credential(row) for row in
                     conn.execute(select(agent_credentials).order_by(agent_credentials.c.created_at))]
        now = self.clock()
        return [c for c in found if include_inactive or c.active(now)]

    def any_active(self) -> bool:
        """True if at least one credential is active."""
        return bool(self.credentials())

    def verify(self, token: str) -> Agent:
        """The agent of an active credential ``token``. Raises CredentialRefused (unknown, revoked, expired)."""
        if not isinstance(token, str) or not token or len(token) > 256:
            raise CredentialRefused("unknown credential")
        cid = credential_id(token)
        with self.engine.connect() as conn:
            row = conn.execute(select(agent_credentials).where(agent_credentials.c.id == cid)).first()
        if row is None:
            raise CredentialRefused("unknown credential")
        mapping = row._mapping
        fingerprint = hashlib.sha256(token.encode("utf-8")).digest()
        known = self._verified.get(cid)
        if known is None or not hmac.compare_digest(known, fingerprint):
            if not hmac.compare_digest(_hash(token, bytes.fromhex(mapping["salt"])), mapping["token_hash"]):
                raise CredentialRefused("unknown credential")
            self._verified[cid] = fingerprint
        if mapping["revoked_at"] is not None:
            raise CredentialRefused("revoked credential", cid, mapping["agent"])
        if self.clock() >= mapping["expires_at"]:
            raise CredentialRefused("expired credential", cid, mapping["agent"])
        return Agent(name=mapping["agent"], role=mapping["role"], credential_id=cid)
