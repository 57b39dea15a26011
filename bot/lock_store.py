"""Rasa's Redis lock store, with every change of a conversation's lock made atomically in Redis.

Rasa 3.6's ``RedisLockStore`` (rasa/core/lock_store.py) keeps a conversation's ticket lock as one JSON value and
changes it by read-modify-write: ``issue_ticket`` (GET, add a ticket, SET), ``update_lock`` (GET, drop expired
tickets, SET), ``finish_serving`` (GET, drop a ticket, SET) and ``cleanup`` (then DELETE when no one seems to
wait). Inside one Rasa process nothing runs between those calls, so one replica is safe. Two replicas that
take messages of one sender at once are not:

* both read the same lock and issue the **same ticket number**: two turns of one conversation run together and
  their events interleave in the tracker (the lock exists to prevent exactly that);
* one replica's SET after finishing writes over a ticket the other has just issued, or its DELETE removes the
  lock the other is waiting on, and the waiting turn fails with ``LockError`` (the user gets the outage reply).

:class:`AtomicRedisLockStore` (``type: bot.lock_store.AtomicRedisLockStore``, same settings as ``type: redis``)
makes each of those changes one optimistic Redis transaction (WATCH the key, read, MULTI/EXEC the write; retried
when another client changed the key meanwhile), and deletes the lock only when no ticket is left in it.

Two settings of its own (endpoints.production.yml):

* ``lock_lifetime``: seconds a ticket lives (Rasa: ``TICKET_LOCK_LIFETIME``, default 60). A replica that dies
  while serving a turn leaves its ticket behind, and every later turn of that conversation waits until it
  expires. It must outlast the longest turn: the turn supervisor cancels a turn after ``TURN_DEADLINE`` seconds
  (bot/channels/turns.py), which releases the lock. Default :data:`DEFAULT_LOCK_LIFETIME`.
* ``wait_seconds``: pause between two looks at a busy lock (Rasa: 1 s, added to every turn that waits).
  Default :data:`DEFAULT_WAIT_SECONDS`.
"""
from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, Callable, Optional, Text, Tuple, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

DEFAULT_LOCK_LIFETIME = 20.0
"""Seconds a ticket lives unless ``lock_lifetime`` says otherwise: over three times the turn deadline (6 s), and
below the 30 s for which the supervisor retries recording a reply (bot.channels.turns.RECORD_TIMEOUT), so that
the turns answered while a dead replica's ticket blocks their conversation are still recorded."""

DEFAULT_WAIT_SECONDS = 0.1
"""Seconds between two looks at a busy lock unless ``wait_seconds`` says otherwise."""

T = TypeVar("T")


class AtomicRedisLockStore(RedisLockStore):
    """``RedisLockStore`` whose lock changes are atomic across processes (see the module docstring).

    ``endpoint_config``: the ``lock_store`` section (``url`` is the Redis host; ``port``, ``db``, ``password``,
    ``socket_timeout``, ``key_prefix``... as for ``type: redis``; plus ``lock_lifetime`` and ``wait_seconds``
    in seconds). Raises ValueError for a lifetime or wait that is not a positive number."""

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        settings = dict(endpoint_config.kwargs) if endpoint_config is not None else {}
        settings.update(kwargs)
        self.lock_lifetime = _positive(settings.pop("lock_lifetime", DEFAULT_LOCK_LIFETIME), "lock_lifetime")
        self.wait_seconds = _positive(settings.pop("wait_seconds", DEFAULT_WAIT_SECONDS), "wait_seconds")
        host = settings.pop("host", None) or (endpoint_config.url if endpoint_config is not None else None)
        super().__init__(host=host or "localhost", **settings)

    def _change(self, conversation_id: Text,
                change: Callable[[Optional[TicketLock]], Tuple[Optional[TicketLock], T]]) -> T:
        """Apply ``change`` (the stored lock or None -> the lock to store, or None to delete it, and a result)
        atomically: retried until no other client changed the key between the read and the write."""
        import redis

        key = self.key_prefix + conversation_id
        with self.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    lock = TicketLock.from_dict(json.loads(raw)) if raw else None
                    new_lock, result = change(lock)
                    pipe.multi()
                    if new_lock is None:
                        pipe.delete(key)
                    else:
                        # A lock that nobody touches for a lifetime holds only expired tickets: let Redis drop it.
                        pipe.set(key, new_lock.dumps(), px=max(1, int(self.lock_lifetime * 1000)))
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue

    def issue_ticket(self, conversation_id: Text, lock_lifetime: Optional[float] = None) -> int:
        """Add a ticket (living ``lock_lifetime`` s, default the store's) to the lock of ``conversation_id``,
        creating the lock if needed; returns its number, unique among the lock's tickets. Raises LockError when
        Redis fails, as Rasa's does."""
        lifetime = self.lock_lifetime if lock_lifetime is None else lock_lifetime

        def add(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], int]:
            lock = lock or TicketLock(conversation_id)
            return lock, lock.issue_ticket(lifetime)

        try:
            return self._change(conversation_id, add)
        except Exception as err:  # noqa: BLE001  (Rasa's contract: any failure to take a ticket is a LockError)
            raise LockError(f"Error while acquiring lock. Error:\n{err}") from err

    def update_lock(self, conversation_id: Text) -> None:
        """Drop the expired tickets of ``conversation_id``'s lock (nothing when there is no lock)."""

        def drop_expired(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            if lock is None:
                return None, None
            lock.remove_expired_tickets()
            return (lock if lock.tickets else None), None

        self._change(conversation_id, drop_expired)

    def finish_serving(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove ticket ``ticket_number`` from the lock; delete the lock once no ticket is left in it."""

        def remove(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            if lock is None:
                return None, None
            lock.remove_ticket_for(ticket_number)
            return (lock if lock.tickets else None), None

        self._change(conversation_id, remove)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """What Rasa calls when a turn ends: :meth:`finish_serving`, which never deletes another's ticket."""
        self.finish_serving(conversation_id, ticket_number)

    @asynccontextmanager
    async def lock(self, conversation_id: Text, lock_lifetime: Optional[float] = None,
                   wait_time_in_seconds: Optional[float] = None) -> AsyncGenerator[TicketLock, None]:
        """Rasa's ``LockStore.lock`` with the store's ``lock_lifetime`` and ``wait_seconds`` as defaults (Rasa's
        processor passes neither). Raises LockError as Rasa's does."""
        async with super().lock(conversation_id,
                                self.lock_lifetime if lock_lifetime is None else lock_lifetime,
                                self.wait_seconds if wait_time_in_seconds is None else wait_time_in_seconds) as held:
            yield held


def _positive(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"lock_store {name}: {value!r} is not a number of seconds") from None
    if number <= 0:
        raise ValueError(f"lock_store {name}: {value!r} must be above 0")
    return number
