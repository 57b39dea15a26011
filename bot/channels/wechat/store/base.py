"""The WeChat channel's shared state: an abstract key-value store with expiring keys, and the six jobs of the
channel written once on top of it.

Several Rasa servers behind one mini-program must behave as one, so what a push or a reply needs from an
earlier one lives in a store they share (SQL or Redis, see ``sql`` and ``redis``). The idea is wechatpy's
``wechatpy.session.SessionStorage``: a small key-value store with a TTL, and the features as plain code over
it; here it is asynchronous, has an atomic add-if-absent for deduplication, and a capped log.

What :class:`WeChatStore` keeps, under which key, and for how long:

* ``dedup:<sha256 of the push key>`` = ``1``, for a day (:data:`DEDUP_TTL_SECONDS`). WeChat retries a push it
  got no answer for three times within about 15 s; :meth:`WeChatStore.claim` lets exactly one server process
  each push, however many servers receive the retries. Hashed because event keys contain the openid.
* ``user:<user id>`` = the openid, for a week after the user's last message (:data:`USER_TTL_SECONDS`). The
  Rasa sender id is a keyed hash of the openid (``security.user_id``); replying needs the openid back (WeChat
  allows customer-service replies for 48 hours).
* ``options:<user id>`` = a JSON list of payloads, for a day (:data:`OPTIONS_TTL_SECONDS`): the buttons last
  shown as "1. ...", "2. ...", so that a reply "2" can be mapped back.
* ``transfer:<user id>`` = ``1``, until the hand-over window ends: meanwhile the user's messages go to
  WeChat's customer-service tool.
* ``token:<appid>`` = JSON ``{"token", "expires_at"}``, until the token expires: the API access token, shared
  because WeChat invalidates older tokens when a new one is fetched, so servers must not each fetch their own.
* the log ``failures``: JSON :class:`FailureRecord` entries, the newest :data:`MAX_FAILURE_RECORDS`: API errors
  and undeliverable replies, so that none is lost silently.

Times are Unix seconds (``time.time()``), TTLs seconds. The openid is only ever a value, never part of a key in
clear, and nothing here logs it.
"""
from __future__ import annotations

import abc
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

DEDUP_TTL_SECONDS = 24 * 3600
"""How long a processed push is remembered. WeChat's retries come within seconds; a day is generous."""

USER_TTL_SECONDS = 7 * 24 * 3600
"""How long the user id -> openid mapping is kept after the user's last message."""

OPTIONS_TTL_SECONDS = 24 * 3600
"""How long numbered options stay answerable."""

MAX_FAILURE_RECORDS = 1000
"""Failure records kept (the oldest are dropped first)."""

MAX_FAILURE_DETAIL_CHARS = 4000
"""Longest ``detail`` kept in a failure record; ``kind`` is cut to 32 characters."""

FAILURE_LOG = "failures"
"""The capped log holding the failure records."""


def check_ttl(ttl: float) -> None:
    """Raise ValueError unless ``ttl`` (seconds) is positive: every key of the store expires."""
    if not ttl > 0:
        raise ValueError(f"a TTL must be a positive number of seconds (got {ttl!r})")


def hashed_key(raw: str) -> str:
    """Hex SHA-256 of ``raw``: dedup keys contain openids, which the store should not hold in clear."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


NONCE_TTL_SECONDS = 2 * 300 + 60
"""How long a request nonce is remembered: the timestamp window on either side of now (bot.channels.wechat.security
.MAX_CLOCK_SKEW_SECONDS, 300 s) and a minute of margin."""


class KeyValueStore(abc.ABC):
    """An asynchronous store of string values under string keys, each key with a TTL, plus capped logs.

    The contract every backend keeps (``tests/integration/test_wechat_store.py`` checks it on each):

    * a key is readable until its TTL has passed, then it is as if it had never been set;
    * :meth:`add` is atomic across every process sharing the store: of concurrent adds of one key, one wins;
    * a log keeps its newest ``cap`` entries, read newest first.

    Errors are the backend's own (SQLAlchemy's, redis-py's); a SQL error never quotes the values it carried.
    """

    @abc.abstractmethod
    async def get(self, key: str) -> Optional[str]:
        """The value of ``key``, or None if it was never set, was deleted or has expired."""

    @abc.abstractmethod
    async def set(self, key: str, value: str, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any value and TTL it had.

        Raises ValueError unless ``ttl`` > 0.
        """

    @abc.abstractmethod
    async def add(self, key: str, value: str, ttl: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds only if ``key`` holds no live value.

        Returns True if this call stored it, False if the key was taken (its value and TTL are left alone).
        Atomic: the check and the write are one step for every process sharing the store. Raises ValueError
        unless ``ttl`` > 0.
        """

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is not there)."""

    @abc.abstractmethod
    async def append(self, log: str, entry: str, cap: int) -> None:
        """Add ``entry`` to the capped log ``log``, then drop all but its newest ``cap`` entries."""

    @abc.abstractmethod
    async def recent(self, log: str, limit: int) -> List[str]:
        """The newest ``limit`` entries of ``log``, newest first (empty if ``limit`` < 1)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""


@dataclass(frozen=True)
class FailureRecord:
    """A reply that could not be delivered, or another API error. ``created_at`` is Unix seconds."""

    created_at: float
    kind: str
    """``send`` (customer-service send API), ``token`` (access token), ``processing`` (dialogue error) ..."""
    user_id: Optional[str]
    """The hashed Rasa sender id (never the openid), if the failure concerns one user."""
    errcode: Optional[int]
    """WeChat's ``errcode`` (e.g. 45015 reply window expired), or None for transport errors."""
    detail: str
    """``errmsg`` or the exception, and what was being sent."""


class WeChatStore:
    """The channel's six jobs (dedupe, openid map, numbered options, transfer windows, access token, failure
    log) on a :class:`KeyValueStore` ``kv``. All methods are coroutines and raise the backend's errors."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv

    async def claim(self, key: str, ttl: float = DEDUP_TTL_SECONDS) -> bool:
        """Atomically record ``key`` (stored hashed); True if this call recorded it first, False if it was
        already there and not expired."""
        return await self.kv.add(f"dedup:{hashed_key(key)}", "1", ttl)

    async def remember_nonce(self, nonce_key: str, fingerprint: str, ttl: float = NONCE_TTL_SECONDS) -> bool:
        """Record the request ``nonce_key`` (appid, timestamp and nonce; stored hashed) with the ``fingerprint`` of
        its body. True for a new nonce or the same request again (WeChat's retry); False when the nonce came with
        another body: a signed query replayed within the timestamp window (the query signature does not cover a
        plaintext body)."""
        key = f"nonce:{hashed_key(nonce_key)}"
        if await self.kv.add(key, fingerprint, ttl):
            return True
        return await self.kv.get(key) == fingerprint

    async def remember_openid(self, user_id: str, openid: str) -> None:
        """Store (or refresh for another :data:`USER_TTL_SECONDS`) the openid behind the hashed ``user_id``."""
        await self.kv.set(f"user:{user_id}", openid, USER_TTL_SECONDS)

    async def openid_for(self, user_id: str) -> Optional[str]:
        """The openid behind ``user_id``, or None if unknown or expired."""
        return await self.kv.get(f"user:{user_id}")

    async def save_options(self, user_id: str, payloads: Sequence[str]) -> None:
        """Remember the payloads of the numbered options just shown (option n is ``payloads[n-1]``).

        An empty sequence forgets the previous options.
        """
        if not payloads:
            await self.kv.delete(f"options:{user_id}")
            return
        await self.kv.set(f"options:{user_id}", json.dumps(list(payloads), ensure_ascii=False),
                          OPTIONS_TTL_SECONDS)

    async def load_options(self, user_id: str) -> List[str]:
        """The payloads of the options last shown to ``user_id`` (empty if none or expired)."""
        raw = await self.kv.get(f"options:{user_id}")
        return list(json.loads(raw)) if raw else []

    async def start_transfer(self, user_id: str, until: float) -> None:
        """Transfer ``user_id``'s messages to WeChat's customer-service tool until ``until`` (Unix seconds);
        a time already past ends any window."""
        remaining = until - time.time()
        if remaining <= 0:
            await self.kv.delete(f"transfer:{user_id}")
            return
        await self.kv.set(f"transfer:{user_id}", "1", remaining)

    async def transfer_active(self, user_id: str) -> bool:
        """Whether ``user_id`` is inside a hand-over window."""
        return await self.kv.get(f"transfer:{user_id}") is not None

    async def load_token(self, appid: str) -> Optional[Tuple[str, float]]:
        """The shared access token of ``appid`` and its expiry time, or None (none yet, or expired)."""
        raw = await self.kv.get(f"token:{appid}")
        if not raw:
            return None
        stored = json.loads(raw)
        return str(stored["token"]), float(stored["expires_at"])

    async def save_token(self, appid: str, token: str, expires_at: float) -> None:
        """Share a freshly fetched access token (valid until ``expires_at``) with the other servers."""
        await self.kv.set(f"token:{appid}", json.dumps({"token": token, "expires_at": expires_at}),
                          max(1.0, expires_at - time.time()))

    async def record_failure(self, kind: str, user_id: Optional[str], errcode: Optional[int], detail: str) -> None:
        """Keep a failure record (see :class:`FailureRecord`); the log keeps the newest MAX_FAILURE_RECORDS."""
        record = FailureRecord(created_at=time.time(), kind=kind[:32], user_id=user_id, errcode=errcode,
                               detail=detail[:MAX_FAILURE_DETAIL_CHARS])
        await self.kv.append(FAILURE_LOG, json.dumps(asdict(record), ensure_ascii=False), MAX_FAILURE_RECORDS)

    async def recent_failures(self, limit: int = 50) -> List[FailureRecord]:
        """The newest ``limit`` failure records, newest first."""
        return [FailureRecord(**json.loads(entry)) for entry in await self.kv.recent(FAILURE_LOG, limit)]

    async def close(self) -> None:
        """Release the backend's connections."""
        await self.kv.close()
