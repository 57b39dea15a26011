"""What the Rasa server knows about its action server: up or down, from the calls it makes and from probes.

Rasa 3.6 calls the action server through ``agent.action_endpoint`` (an ``EndpointConfig``) with a fixed
5-minute timeout (``rasa.core.constants.DEFAULT_REQUEST_TIMEOUT``, passed by ``RemoteAction.run``; the
``EndpointConfig`` has no setting for it). A hung action server would hold a turn that long. So
:class:`WatchedActionEndpoint`, an ``EndpointConfig`` that :func:`install` puts in the agent's place:

* bounds each call to the action server to ``timeout`` seconds (the ``timeout`` key of ``action_endpoint`` in
  endpoints.yml, which Rasa keeps in ``EndpointConfig.kwargs`` and does not use itself; default
  ``DEFAULT_ACTION_TIMEOUT``);
* reports every outcome to an :class:`ActionServerWatch` and marks the current turn (``turn_failures``);
* fails at once, without a call, while the watch has seen the server fail in the last few seconds
  (``FAIL_FAST_SECONDS``), so that a turn with several custom actions does not wait once per action.

Rasa turns a failed call into "the action's events are lost, the bot continues" (``MessageProcessor._run_action``),
which the turn supervisor (bot.channels.turns) sees through the watch. A background probe of the action
server's ``/health`` (every ``PROBE_INTERVAL`` seconds) notices when it is back, and the supervisor probes once
alongside each turn, so that even a turn that needs no custom action (a greeting) knows of an outage.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any, List, Optional

import aiohttp
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

DEFAULT_ACTION_TIMEOUT = 3.0
"""Seconds one call to the action server may take when endpoints.yml sets no ``timeout``."""

PROBE_INTERVAL = 2.0
"""Seconds between two probes of the action server's ``/health``."""

PROBE_TIMEOUT = 2.0
"""Seconds a probe may take before it counts as a failure (a hung server answers nothing; a healthy one answers
in milliseconds, but a loaded machine can take a second)."""

FAIL_FAST_SECONDS = PROBE_INTERVAL + PROBE_TIMEOUT
"""A call fails at once, without reaching the server, when a call or probe failed this recently; after that
it is tried again (so a server that came back is used even before the next probe says so)."""

_turn_failures: contextvars.ContextVar[Optional[List[str]]] = contextvars.ContextVar("turn_failures",
                                                                                      default=None)


def begin_turn() -> List[str]:
    """Start collecting the action-server failures of the current asyncio context (one turn); returns the list
    they are appended to (a reason per failed call). Call it before creating the turn's task."""
    failures: List[str] = []
    _turn_failures.set(failures)
    return failures


def _note_turn_failure(reason: str) -> None:
    failures = _turn_failures.get()
    if failures is not None:
        failures.append(reason)


class ActionServerWatch:
    """The last known state of the action server: ``down`` after a failed call or probe, up after a good one.

    ``down_since`` is a ``time.monotonic()`` reading or None. Not thread-safe (used on Rasa's event loop only).
    """

    def __init__(self) -> None:
        self.down_since: Optional[float] = None
        self.last_failure_at: Optional[float] = None
        self.last_error: str = ""
        self.health_url: Optional[str] = None
        self._probe: Optional[asyncio.Task] = None

    @property
    def down(self) -> bool:
        """True while the most recent call or probe failed."""
        return self.down_since is not None

    def record_success(self) -> None:
        """A call or probe succeeded: the server is up (logged when it was down)."""
        if self.down_since is not None:
            logger.warning("The action server answers again after %.1f s.", time.monotonic() - self.down_since)
        self.down_since = None
        self.last_error = ""

    def record_failure(self, reason: str) -> None:
        """A call or probe failed for ``reason`` (one line): the server is down (logged on the change)."""
        now = time.monotonic()
        if self.down_since is None:
            logger.error("The action server is down: %s", reason)
            self.down_since = now
        self.last_failure_at = now
        self.last_error = reason

    @property
    def fail_fast(self) -> bool:
        """True while down and the latest failure is under FAIL_FAST_SECONDS old: do not call the server."""
        return (self.down_since is not None and self.last_failure_at is not None
                and time.monotonic() - self.last_failure_at < FAIL_FAST_SECONDS)

    async def probe(self, health_url: str, timeout: float = PROBE_TIMEOUT) -> bool:
        """GET ``health_url`` once; record and return whether it answered 200 within ``timeout`` seconds."""
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
                async with session.get(health_url) as answer:
                    healthy = answer.status == 200
                    reason = f"GET {health_url} answered {answer.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            healthy, reason = False, f"GET {health_url} failed: {type(err).__name__} {err}"
        if healthy:
            self.record_success()
        else:
            self.record_failure(reason)
        return healthy

    async def probe_now(self) -> Optional[bool]:
        """One probe of the URL given to :meth:`start_probing` (None before that): the supervisor runs one
        alongside each turn, so that a turn needing no custom action still knows whether the server is down."""
        if self.health_url is None:
            return None
        return await self.probe(self.health_url)

    def start_probing(self, health_url: str, interval: float = PROBE_INTERVAL) -> None:
        """Probe ``health_url`` every ``interval`` seconds on the running loop, once per watch (idempotent)."""
        self.health_url = health_url
        if self._probe is not None and not self._probe.done():
            return

        async def loop() -> None:
            while True:
                await self.probe(health_url)
                await asyncio.sleep(interval)

        self._probe = asyncio.ensure_future(loop())


class WatchedActionEndpoint(EndpointConfig):
    """Rasa's ``EndpointConfig`` for the action server, with a bounded timeout, fail-fast while the server is
    known down, and every outcome reported to ``watch`` (see the module docstring).

    Raises what ``EndpointConfig.request`` raises, plus ``aiohttp.ServerTimeoutError`` after ``timeout`` and
    ``aiohttp.ClientConnectionError`` while the watch says the server is down; Rasa's ``RemoteAction``
    turns both into a failed action.
    """

    def __init__(self, original: EndpointConfig, watch: ActionServerWatch, timeout: float) -> None:
        super().__init__(original.url, original.params, original.headers, original.basic_auth, original.token,
                         original.token_name, original.cafile, **original.kwargs)
        self.type = original.type
        self.watch = watch
        self.timeout = timeout

    async def request(self, method: str = "post", subpath: Optional[str] = None,
                      content_type: Optional[str] = "application/json", compress: bool = False,
                      **kwargs: Any) -> Optional[Any]:
        """``EndpointConfig.request`` bounded to ``self.timeout`` seconds; see the class docstring."""
        if self.watch.fail_fast:
            reason = f"not called: the action server is down ({self.watch.last_error})"
            _note_turn_failure(reason)
            raise aiohttp.ClientConnectionError(reason)
        kwargs["timeout"] = aiohttp.ClientTimeout(total=self.timeout)
        try:
            result = await super().request(method, subpath, content_type, compress, **kwargs)
        except TimeoutError as err:
            reason = f"no answer from {self.url} within {self.timeout:g} s"
            self.watch.record_failure(reason)
            _note_turn_failure(reason)
            raise aiohttp.ServerTimeoutError(reason) from err
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            self.watch.record_failure(reason)
            _note_turn_failure(reason)
            raise
        self.watch.record_success()
        return result


def health_url(action_url: str) -> str:
    """The action server's health route for its webhook URL (``http://h:p/webhook`` -> ``http://h:p/health``)."""
    base = action_url.rstrip("/")
    if base.endswith("/webhook"):
        base = base[: -len("/webhook")]
    return f"{base}/health"


WATCH = ActionServerWatch()
"""The watch of this Rasa process (one action server per Rasa server)."""


def install(agent: Any, watch: ActionServerWatch = WATCH) -> bool:
    """Put a :class:`WatchedActionEndpoint` in place of ``agent``'s action endpoint (and its processor's), and
    start probing the action server. Idempotent; cheap enough to call on every turn (a new model loaded through
    the HTTP API gets a new processor, which takes the agent's endpoint).

    Returns False when the agent has no action endpoint (nothing to watch).
    """
    endpoint = getattr(agent, "action_endpoint", None)
    if endpoint is None or not getattr(endpoint, "url", None):
        return False
    if not isinstance(endpoint, WatchedActionEndpoint):
        timeout = float(endpoint.kwargs.get("timeout") or DEFAULT_ACTION_TIMEOUT)
        endpoint = WatchedActionEndpoint(endpoint, watch, timeout)
        agent.action_endpoint = endpoint
        logger.info("Calls to the action server at %s time out after %g s.", endpoint.url, timeout)
    processor = getattr(agent, "processor", None)
    if processor is not None and processor.action_endpoint is not endpoint:
        processor.action_endpoint = endpoint
    watch.start_probing(health_url(endpoint.url))
    return True
