"""Signed REST requests: only the bank's backend may write to a REST conversation in production.

The backend signs each request with ``BANK_SIGNING_KEY`` (docs/bank-signing.md has the recipe and a runnable
Python example) and sends three headers:

* ``X-Signature-Timestamp``: Unix seconds; refused when more than the replay window (``REST_REPLAY_SECONDS``,
  default 300) away from the server's clock;
* ``X-Signature-Nonce``: 16-64 characters of ``[A-Za-z0-9_-]``, new for every request; a nonce seen within the
  window is refused as a replay;
* ``X-Signature``: ``sha256=`` and the hex HMAC-SHA256 (stdlib ``hmac``) of :func:`signed_message`: the
  timestamp, the nonce, the ``sender`` and the raw body, so that none of them can be changed.

Nonces are remembered for the window in Redis when ``REDIS_HOST`` is set (``REDIS_PORT``, ``REDIS_DB``, the
lock store's settings; keys ``debt-help:rest-nonce:<nonce>``, SET NX with expiry), so that a request replayed
to another replica is refused too; otherwise, and while Redis does not answer, in this process's memory (a
warning is logged; the timestamp window still bounds a replay).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from typing import Callable, Dict, Mapping, Optional, Protocol

logger = logging.getLogger(__name__)

TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER = "X-Signature-Timestamp", "X-Signature-Nonce", "X-Signature"
"""The request headers of a signed REST request."""

DOMAIN = b"debt-help-rest-v1"
"""First line of every signed message, so that a REST signature is never valid for anything else."""

NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
"""The accepted form of a nonce."""

REDIS_PREFIX = "debt-help:rest-nonce:"
"""Key prefix of remembered nonces in Redis."""


class SignatureRefused(Exception):
    """A REST request that is not signed by the bank's backend, or is stale, tampered with or replayed."""


def signed_message(timestamp: str, nonce: str, sender: str, body: bytes) -> bytes:
    """The bytes that are signed: ``debt-help-rest-v1``, timestamp, nonce and sender, each on its own line
    (``\\n``, sender UTF-8), then the raw request body."""
    return b"\n".join([DOMAIN, timestamp.encode("ascii"), nonce.encode("ascii"), sender.encode("utf-8"), body])


def sign(key: bytes, timestamp: str, nonce: str, sender: str, body: bytes) -> str:
    """The ``X-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of :func:`signed_message` with ``key``."""
    return "sha256=" + hmac.new(key, signed_message(timestamp, nonce, sender, body), hashlib.sha256).hexdigest()


class NonceMemory(Protocol):
    """Remembers nonces for a while."""

    async def first_use(self, nonce: str, seconds: int) -> bool:
        """True if ``nonce`` was not seen in the last ``seconds`` (and remember it); False for a replay."""


class LocalNonces:
    """Nonces in this process's memory (one replica), forgotten after their window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: Dict[str, float] = {}
        self._clock = clock

    async def first_use(self, nonce: str, seconds: int) -> bool:
        """See :class:`NonceMemory`."""
        now = self._clock()
        if len(self._seen) > 10_000:
            self._seen = {n: t for n, t in self._seen.items() if t > now}
        expires = self._seen.get(nonce)
        if expires is not None and expires > now:
            return False
        self._seen[nonce] = now + seconds
        return True


class RedisNonces:
    """Nonces in Redis, shared by every replica (``SET key 1 NX EX seconds``); while Redis fails, in memory."""

    def __init__(self, host: str, port: int = 6379, db: int = 0, prefix: str = REDIS_PREFIX) -> None:
        import redis.asyncio

        self._redis = redis.asyncio.Redis(host=host, port=port, db=db, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._fallback = LocalNonces()

    async def first_use(self, nonce: str, seconds: int) -> bool:
        """See :class:`NonceMemory`."""
        try:
            return bool(await self._redis.set(self._prefix + nonce, b"1", nx=True, ex=seconds))
        except Exception as err:  # noqa: BLE001 - any Redis failure: keep answering, remember locally
            logger.warning("Redis did not take a REST nonce (%s); remembering it in this process only.",
                           type(err).__name__)
            return await self._fallback.first_use(nonce, seconds)


def nonce_memory_from_env(env: Optional[Mapping[str, str]] = None) -> NonceMemory:
    """RedisNonces when ``REDIS_HOST`` is set (with ``REDIS_PORT``, ``REDIS_DB``), else LocalNonces."""
    env = os.environ if env is None else env
    host = (env.get("REDIS_HOST") or "").strip()
    if not host:
        return LocalNonces()
    port = env.get("REDIS_PORT") or "6379"
    db = env.get("REDIS_DB") or "0"
    return RedisNonces(host, int(port) if port.isdigit() else 6379, int(db) if db.isdigit() else 0)


async def verify(key: bytes, headers: Mapping[str, str], sender: str, body: bytes, window: int,
                 nonces: NonceMemory, now: Optional[float] = None) -> None:
    """Return if the request is signed with ``key``, fresh and new. ``headers`` are case-insensitive (Sanic's).

    Raises SignatureRefused naming what is wrong: a missing header, a malformed timestamp or nonce, a
    timestamp outside ``window`` seconds, a wrong signature (anything signed was changed), or a replayed nonce.
    The nonce is remembered only once the signature is right, so that nobody can spend the bank's nonces.
    """
    timestamp, nonce = headers.get(TIMESTAMP_HEADER) or "", headers.get(NONCE_HEADER) or ""
    signature = headers.get(SIGNATURE_HEADER) or ""
    if not timestamp or not nonce or not signature:
        raise SignatureRefused(f"unsigned request: send {TIMESTAMP_HEADER}, {NONCE_HEADER} and {SIGNATURE_HEADER}")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureRefused(f"{TIMESTAMP_HEADER} must be Unix seconds")
    if not NONCE.match(nonce):
        raise SignatureRefused(f"{NONCE_HEADER} must be 16-64 characters of A-Z, a-z, 0-9, _ and -")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > window:
        raise SignatureRefused(f"stale request: the timestamp is more than {window} s from the server's clock")
    if not hmac.compare_digest(sign(key, timestamp, nonce, sender, body).encode(), signature.encode()):
        raise SignatureRefused("wrong signature")
    if not await nonces.first_use(nonce, 2 * window):
        raise SignatureRefused("replayed request: this nonce was already used")
