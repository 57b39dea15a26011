"""The consent dialogue of seller leads, on the Rasa server (hooked into bot.channels.guard).

1. **Before masking**, each user message is read for a seller's details (:meth:`LeadGate.observe`,
   bot.leads.extract). Nothing is stored; the candidate stays in this call's memory.
2. **After the turn** (:meth:`LeadGate.offer`), if the conversation has a grey-industry red flag (the
   ``red_flags`` slot, bot.risk), has not been asked yet in this session (the ``lead_consent_asked`` slot), is
   not paused for a human agent, has no active form and the message does not read as danger, the candidate is
   held (:class:`PendingLeads` in memory, or :class:`RedisPendingLeads` with several replicas; at most
   ``$LEADS_PENDING_TTL_SECONDS``, default 900) and Rasa is given
   the external intent ``EXTERNAL_lead_candidate``, whose rule asks the question with the 同意/不同意 buttons
   (domain/leads.yml) and whose slot mapping sets ``lead_consent_asked``: asked once per conversation. The
   tracker only ever holds the masked message and the external intent (no details).
3. **The answer** (:meth:`LeadGate.answer`, before the turn): ``/lead_consent_yes`` stores the held candidate in
   the leads store (bot.leads.store) and forgets it; ``/lead_consent_no`` forgets it; a yes with nothing held
   (expired, the server restarted, another replica) becomes ``/lead_consent_expired``, so the bot does not claim
   to have passed anything on. No answer: the candidate expires and is gone.

In memory, the held candidate is in one process: with several Rasa replicas behind a balancer without session
affinity, an answer reaching another replica is "expired" (nothing is kept), never wrongly stored; with Redis
configured (the production lock store's, or ``$LEADS_PENDING_REDIS_URL``) every replica finds it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import yaml

from bot import PROJECT_ROOT
from bot.crisis import reads_as_danger
from bot.leads.extract import LeadCandidate, extract_candidate

logger = logging.getLogger(__name__)

OFFER_INTENT = "EXTERNAL_lead_candidate"
"""The external intent that makes the bot ask for consent (data/dialogue/leads.yml)."""

ASKED_SLOT = "lead_consent_asked"
"""Set by the offer intent's slot mapping: the question was asked in this session."""

CONSENT_YES = "/lead_consent_yes"
CONSENT_NO = "/lead_consent_no"
CONSENT_EXPIRED = "/lead_consent_expired"
"""The answer payloads (the buttons), and what a yes becomes when nothing is held any more."""

DEFAULT_PENDING_TTL_SECONDS = 900.0
"""How long a candidate waits for the answer, in seconds (``$LEADS_PENDING_TTL_SECONDS``)."""


OFFER_TIMEOUT_SECONDS = 5.0
"""Longest the question may take (lock, tracker, Rasa's slot extraction on the action server) before it is given
up and the candidate dropped: the user has their answer already and must not wait on a hung server."""


ANSWERS_FILE = PROJECT_ROOT / "data" / "leads" / "answers.yml"
"""Typed answers to the question (see the file's comment)."""

_NOT_PART_OF_AN_ANSWER = re.compile(r"[\s\W_]+", re.UNICODE)


@lru_cache(maxsize=1)
def _typed_answers() -> Dict[str, str]:
    raw = yaml.safe_load(ANSWERS_FILE.read_text(encoding="utf-8"))
    answers = {unicodedata.normalize("NFKC", reply): CONSENT_YES for reply in raw["yes"]}
    answers.update({unicodedata.normalize("NFKC", reply): CONSENT_NO for reply in raw["no"]})
    return answers


def typed_answer(text: str) -> Optional[str]:
    """CONSENT_YES or CONSENT_NO when the whole of ``text`` (NFKC, without spaces and punctuation) is one of the
    typed answers in data/leads/answers.yml, else None."""
    key = _NOT_PART_OF_AN_ANSWER.sub("", unicodedata.normalize("NFKC", text or ""))
    return _typed_answers().get(key) if key else None


def pending_ttl() -> float:
    """``$LEADS_PENDING_TTL_SECONDS`` (a positive number), else DEFAULT_PENDING_TTL_SECONDS."""
    try:
        value = float(os.environ.get("LEADS_PENDING_TTL_SECONDS") or DEFAULT_PENDING_TTL_SECONDS)
    except ValueError:
        return DEFAULT_PENDING_TTL_SECONDS
    return value if value > 0 else DEFAULT_PENDING_TTL_SECONDS


@dataclass(frozen=True)
class PendingLead:
    """A candidate waiting for the answer: what was asked about, when (epoch s), on which channel, the
    conversation's red-flag ids then, and when it expires."""

    details: LeadCandidate
    asked_at: float
    channel: Optional[str]
    red_flags: Tuple[str, ...]
    expires_at: float


class PendingLeads:
    """Candidates waiting for consent, per sender id, in this process's memory (the embedded default); expired
    ones are never returned and are dropped at the next access. ``ttl`` seconds; ``clock`` epoch seconds."""

    def __init__(self, ttl: Optional[float] = None, clock: Callable[[], float] = time.time) -> None:
        self.ttl = pending_ttl() if ttl is None else ttl
        self.clock = clock
        self._held: Dict[str, PendingLead] = {}
        self._lock = threading.Lock()

    def _purge(self, now: float) -> None:
        for sender in [s for s, p in self._held.items() if p.expires_at <= now]:
            del self._held[sender]

    async def hold(self, sender_id: str, details: LeadCandidate, channel: Optional[str],
                   red_flags: Sequence[str]) -> PendingLead:
        """Hold ``details`` for ``sender_id`` until the TTL (merged with what is already held)."""
        now = self.clock()
        with self._lock:
            self._purge(now)
            held = self._held.get(sender_id)
            merged = held.details.merged(details) if held else details
            pending = PendingLead(merged, held.asked_at if held else now, channel, tuple(red_flags), now + self.ttl)
            self._held[sender_id] = pending
            return pending

    async def holds(self, sender_id: str) -> bool:
        """Whether a candidate (not expired) is held for ``sender_id``."""
        with self._lock:
            self._purge(self.clock())
            return sender_id in self._held

    async def take(self, sender_id: str) -> Optional[PendingLead]:
        """Remove and return what is held for ``sender_id`` (None when nothing, or it expired)."""
        now = self.clock()
        with self._lock:
            self._purge(now)
            return self._held.pop(sender_id, None)

    def __len__(self) -> int:
        with self._lock:
            self._purge(self.clock())
            return len(self._held)


class RedisPendingLeads:
    """The same in Redis (``$LEADS_PENDING_REDIS_URL``, else the production lock store's
    ``redis://$REDIS_HOST:$REDIS_PORT/$REDIS_DB``), so that an answer reaching another Rasa replica still finds
    the candidate: one key per conversation, ``<prefix><sha256 of the sender id>``, a JSON value, and Redis's own
    expiry of ``ttl`` seconds. Redis errors propagate: the gate then asks nothing, or answers "not saved"."""

    def __init__(self, url: str, ttl: Optional[float] = None, prefix: str = "leads:pending:",
                 clock: Callable[[], float] = time.time) -> None:
        import redis.asyncio as redis_asyncio

        self._redis = redis_asyncio.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.ttl = pending_ttl() if ttl is None else ttl
        self.prefix, self.clock = prefix, clock

    def _key(self, sender_id: str) -> str:
        return self.prefix + hashlib.sha256(sender_id.encode("utf-8")).hexdigest()

    async def hold(self, sender_id: str, details: LeadCandidate, channel: Optional[str],
                   red_flags: Sequence[str]) -> PendingLead:
        """See PendingLeads.hold (not atomic against a second message of the same conversation in the same
        instant: Rasa's lock store serialises a conversation's turns)."""
        key, now = self._key(sender_id), self.clock()
        raw = await self._redis.get(key)
        held = _decode(raw) if raw else None
        merged = held.details.merged(details) if held else details
        pending = PendingLead(merged, held.asked_at if held else now, channel, tuple(red_flags), now + self.ttl)
        await self._redis.set(key, _encode(pending), px=max(1, int(self.ttl * 1000)))
        return pending

    async def holds(self, sender_id: str) -> bool:
        """See PendingLeads.holds."""
        return bool(await self._redis.exists(self._key(sender_id)))

    async def take(self, sender_id: str) -> Optional[PendingLead]:
        """See PendingLeads.take (GET and DEL in one transaction)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key(sender_id))
            pipe.delete(self._key(sender_id))
            raw, _ = await pipe.execute()
        return _decode(raw) if raw else None


def _encode(pending: PendingLead) -> str:
    return json.dumps({"details": pending.details.as_dict(), "asked_at": pending.asked_at,
                       "channel": pending.channel, "red_flags": list(pending.red_flags),
                       "expires_at": pending.expires_at}, ensure_ascii=False)


def _decode(raw: Any) -> Optional[PendingLead]:
    try:
        data = json.loads(raw)
        return PendingLead(LeadCandidate.from_dict(data["details"]), float(data["asked_at"]), data.get("channel"),
                           tuple(str(f) for f in data.get("red_flags") or ()), float(data["expires_at"]))
    except (ValueError, KeyError, TypeError):
        logger.warning("A held seller lead could not be read; dropped.")
        return None


def pending_store_from_env(env: Optional[Mapping[str, str]] = None) -> Any:
    """RedisPendingLeads when ``LEADS_PENDING_REDIS_URL`` or ``REDIS_HOST`` is set, else PendingLeads."""
    env = os.environ if env is None else env
    url = env.get("LEADS_PENDING_REDIS_URL")
    if not url and env.get("REDIS_HOST"):
        url = f"redis://{env['REDIS_HOST']}:{env.get('REDIS_PORT') or 6379}/{env.get('REDIS_DB') or 0}"
    return RedisPendingLeads(url) if url else PendingLeads()


def _current_agent() -> Any:
    from bot.channels.turns import current_agent

    return current_agent()


class LeadGate:
    """The three steps above. ``pending`` the held candidates; ``store`` a callable returning the leads store's
    engine (opened lazily: default bot.leads.store.open_store); ``agent`` returns Rasa's running Agent or None."""

    def __init__(self, pending: Any = None, store: Optional[Callable[[], Any]] = None,
                 agent: Callable[[], Any] = _current_agent) -> None:
        self.pending = pending if pending is not None else pending_store_from_env()
        self._store_factory = store
        self._engine: Any = None
        self.agent = agent

    def _store(self) -> Any:
        if self._engine is None:
            if self._store_factory is not None:
                self._engine = self._store_factory()
            else:
                from bot.leads.store import open_store

                self._engine = open_store()
        return self._engine

    @staticmethod
    def observe(text: str) -> Optional[LeadCandidate]:
        """The seller's details in the unmasked ``text``, or None (never raises: a failure only loses a lead)."""
        if not text or text.startswith("/"):
            return None
        try:
            return extract_candidate(text)
        except Exception:  # noqa: BLE001 - a bug here must not cost the user an answer
            logger.exception("Reading a message for a seller's details failed; no lead from it.")
            return None

    async def answer(self, message: Any) -> None:
        """Before the turn: act on a consent payload in ``message.text`` (a Rasa UserMessage), as described; a
        typed answer (:func:`typed_answer`) counts as its button while a candidate is held, and ``message.text``
        becomes the payload so that the dialogue answers it."""
        text = (message.text or "").strip()
        if text not in (CONSENT_YES, CONSENT_NO):
            typed = typed_answer(text)
            if typed is None:
                return
            try:
                held = await self.pending.holds(message.sender_id)
            except Exception:  # noqa: BLE001 - cannot tell: leave the message to the dialogue
                logger.exception("Reading a held seller lead failed.")
                return
            if not held:
                return
            text = message.text = typed
        try:
            pending = await self.pending.take(message.sender_id)
        except Exception:  # noqa: BLE001 - nothing can be stored; the user is told so
            logger.exception("Reading a held seller lead failed.")
            pending = None
        if text == CONSENT_NO:
            if pending is not None:
                logger.info("A seller lead was declined; nothing kept.")
            return
        if pending is None:
            message.text = CONSENT_EXPIRED
            return
        from bot.leads.store import record_lead

        try:
            lead_id = await asyncio.to_thread(record_lead, self._store(), pending.details, asked_at=pending.asked_at,
                                              channel=pending.channel, red_flags=pending.red_flags)
        except Exception:  # noqa: BLE001 - the user is told the truth instead of a thank-you
            logger.exception("Storing a consented seller lead failed.")
            message.text = CONSENT_EXPIRED
            return
        logger.info("Stored consented seller lead %s (%s).", lead_id, ", ".join(pending.details.kinds()))

    async def offer(self, message: Any, candidate: Optional[LeadCandidate], original_text: str) -> None:
        """After the turn: ask for consent once, as described, sending the question on ``message``'s output
        channel. Never raises."""
        if candidate is None or reads_as_danger(original_text):
            return
        agent = self.agent()
        if agent is None:
            return
        try:
            await asyncio.wait_for(self._offer(agent, message, candidate), OFFER_TIMEOUT_SECONDS)
        except Exception:  # noqa: BLE001 - the turn is answered; only the question is lost
            try:
                await self.pending.take(message.sender_id)
            except Exception:  # noqa: BLE001
                logger.warning("Could not drop a held seller lead; it expires on its own.")
            logger.exception("Asking for consent to a seller lead failed; nothing kept.")

    async def _offer(self, agent: Any, message: Any, candidate: LeadCandidate) -> None:
        from bot.channels.turns import primary_tracker_store

        processor = agent.processor
        async with agent.lock_store.lock(message.sender_id):
            store = primary_tracker_store(agent.tracker_store)
            tracker = await store.retrieve(message.sender_id)
            if tracker is None or tracker.is_paused() or tracker.active_loop_name:
                return
            if tracker.get_slot(ASKED_SLOT):
                return
            red_flags = tuple(tracker.get_slot("red_flags") or ())
            if not red_flags:
                return
            await self.pending.hold(message.sender_id, candidate, message.input_channel, red_flags)
            tracker = await processor.fetch_tracker_with_initial_session(message.sender_id, message.output_channel)
            await processor.trigger_external_user_uttered(OFFER_INTENT, None, tracker, message.output_channel)


_DEFAULT_GATE: Optional[LeadGate] = None


def default_gate() -> LeadGate:
    """The process's gate (one set of held candidates per Rasa server)."""
    global _DEFAULT_GATE
    if _DEFAULT_GATE is None:
        _DEFAULT_GATE = LeadGate()
    return _DEFAULT_GATE
