"""Rate limits on user messages, per client and per conversation, with counters shared across replicas.

Fixed-window counters: ``hit(key, window)`` counts one event in the current window of ``window`` seconds and
returns the count so far. In Redis (``RATE_LIMIT_REDIS_URL``, else ``redis://$REDIS_HOST:$REDIS_PORT/$REDIS_DB``
when the production lock store's variables are set) so that limits hold across Rasa replicas; in this process's
memory otherwise (the embedded default, one server). A counter store that fails lets the message through (a
throttle outage must never silence a user) and logs a warning.

Limits (``RATE_LIMITS``, e.g. ``conversation=30/60,client=120/60``; unset keys keep their defaults):

* ``conversation``: messages per conversation (sender id);
* ``client``: messages per client (REST and socket.io: the client's address, counted together, so that opening
  more sockets buys no more messages; WeChat: the openid hash, which is also the conversation);
* ``history``: widget history reads per client;
* ``tap``: referral-card taps recorded per conversation (bot.referral_taps); beyond it taps are dropped.

The channel tells the limiter who the client is through :data:`current_client` (a context variable set by the
REST middleware and the socket.io handler before the message is screened). The address is Sanic's
``request.remote_addr`` (the balancer's ``X-Forwarded-For``, trusted only when ``SANIC_PROXIES_COUNT`` or
``SANIC_REAL_IP_HEADER`` is set for the Rasa server: set it behind HAProxy, or every user shares the balancer's
address and its limit) or else the peer address.
"""
from __future__ import annotations

import contextvars
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Tuple

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """At most ``count`` events per ``seconds`` (a fixed window)."""

    count: int
    seconds: int


DEFAULT_LIMITS: Dict[str, Limit] = {
    "conversation": Limit(30, 60),
    "client": Limit(120, 60),
    "history": Limit(60, 60),
    "tap": Limit(20, 60),
}
"""Defaults: a person types far below one message every two seconds; a bank's gateway may put many customers
behind one address, hence the higher per-client figure."""

current_client: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("current_client", default=None)
"""Who sent the message being screened (an address or a socket), set by the channel; None: unknown."""


class Counter(Protocol):
    """Counts events per key in fixed windows."""

    async def hit(self, key: str, seconds: int) -> int:
        """Count one event for ``key`` in the current ``seconds`` window; the count so far (1 for the first)."""


class MemoryCounter:
    """Counters in this process (the embedded default). Windows that ended are dropped as keys are touched."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._windows: Dict[str, Tuple[int, int]] = {}

    async def hit(self, key: str, seconds: int) -> int:
        """See Counter.hit."""
        window = int(self.clock() // seconds)
        start, count = self._windows.get(key, (window, 0))
        if start != window:
            count = 0
        self._windows[key] = (window, count + 1)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return count + 1


class RedisCounter:
    """Counters in Redis: ``INCR`` of ``<prefix><key>:<window>`` with an expiry of one window."""

    def __init__(self, url: str, prefix: str = "ratelimit:", clock: Callable[[], float] = time.time) -> None:
        import redis.asyncio as redis_asyncio

        self._redis = redis_asyncio.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.prefix = prefix
        self.clock = clock

    async def hit(self, key: str, seconds: int) -> int:
        """See Counter.hit. Raises redis errors (the limiter lets the message through)."""
        name = f"{self.prefix}{key}:{int(self.clock() // seconds)}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, seconds + 1)
            count, _ = await pipe.execute()
        return int(count)



def client_key(request: Any) -> Optional[str]:
    """The rate-limit client key (``ip:<address>``) of a Sanic request, or None when it has no address (see the
    module docstring for which address)."""
    address = getattr(request, "remote_addr", "") or getattr(request, "ip", "")
    return f"ip:{address}" if address else None


def parse_limits(spec: str) -> Dict[str, Limit]:
    """``DEFAULT_LIMITS`` overridden by ``spec`` (``name=count/seconds,...``). Raises ValueError if malformed."""
    limits = dict(DEFAULT_LIMITS)
    for part in filter(None, (item.strip() for item in spec.split(","))):
        name, _, value = part.partition("=")
        count, _, seconds = value.partition("/")
        if name.strip() not in DEFAULT_LIMITS or not count.isdigit() or not seconds.isdigit() or int(seconds) < 1:
            raise ValueError(f"RATE_LIMITS: {part!r} is not name=count/seconds with a known name")
        limits[name.strip()] = Limit(int(count), int(seconds))
    return limits


def redis_url_from_env(env: Mapping[str, str]) -> Optional[str]:
    """``RATE_LIMIT_REDIS_URL``, else the production lock store's Redis (``REDIS_HOST``...), else None."""
    if env.get("RATE_LIMIT_REDIS_URL"):
        return env["RATE_LIMIT_REDIS_URL"]
    if env.get("REDIS_HOST"):
        return f"redis://{env['REDIS_HOST']}:{env.get('REDIS_PORT') or 6379}/{env.get('REDIS_DB') or 0}"
    return None


class RateLimiter:
    """Decides whether one more event is allowed for a key under a named limit."""

    def __init__(self, counter: Counter, limits: Optional[Mapping[str, Limit]] = None) -> None:
        self.counter = counter
        self.limits = dict(limits or DEFAULT_LIMITS)

    async def allow(self, name: str, key: str) -> bool:
        """Count one ``name`` event (a key of ``limits``) for ``key``; False once over the limit. True when the
        counter store fails (logged), never raises."""
        limit = self.limits[name]
        try:
            count = await self.counter.hit(f"{name}:{key}", limit.seconds)
        except Exception as err:  # noqa: BLE001 - fail open: a throttle outage must not silence anyone
            logger.warning("The rate-limit counters are unavailable (%s); letting the message through.",
                           type(err).__name__)
            return True
        if count == limit.count + 1:
            logger.info("Rate limit %s (%d per %d s) reached; further events are refused until the window ends.",
                        name, limit.count, limit.seconds)
        return count <= limit.count

    async def allow_message(self, sender_id: str, client: Optional[str]) -> bool:
        """Whether a message from ``client`` (None: unknown) to conversation ``sender_id`` is within both
        limits. Both counters are counted."""
        per_conversation = await self.allow("conversation", sender_id)
        per_client = True if client is None else await self.allow("client", client)
        return per_conversation and per_client


_default: Optional[RateLimiter] = None


def default_limiter() -> RateLimiter:
    """The process's limiter, built once from the environment (see the module docstring)."""
    global _default
    if _default is None:
        limits = parse_limits(os.environ.get("RATE_LIMITS", ""))
        url = redis_url_from_env(os.environ)
        counter: Counter = (RedisCounter(url, os.environ.get("RATE_LIMIT_PREFIX", "ratelimit:"))
                            if url else MemoryCounter())
        _default = RateLimiter(counter, limits)
    return _default


def reset_default_limiter() -> None:
    """Forget the process's limiter (tests; the next ``default_limiter()`` reads the environment again)."""
    global _default
    _default = None
