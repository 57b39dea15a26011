"""Rasa's RabbitMQ event broker, except that it never blocks the bot and never drops an event while RabbitMQ
is away: events wait, in order, in memory until RabbitMQ takes them.

What Rasa 3.6's ``PikaEventBroker`` (rasa/core/brokers/pika.py) does when RabbitMQ is unreachable:

* **at start**, ``from_endpoint_config`` awaits ``connect()``, which tries ``connection_attempts`` times (default
  20) ``retry_delay_in_seconds`` apart (default 5): the Rasa server does not answer anyone for up to 100 s, and
  then ``EventBroker.create`` raises ``ConnectionException`` and the server does not start at all;
* **mid-run**, a publish that fails is kept in ``_unpublished_events`` and re-sent by the robust connection's
  reconnect callback; but a publish made while ``_exchange`` is None is dropped silently, re-sent events race
  the new ones (each publish is its own task), and an event whose re-send fails again waits for the *next*
  reconnect, i.e. possibly forever.

:class:`BufferedPikaEventBroker` (``type: bot.event_broker.BufferedPikaEventBroker``, same settings as
``type: pika``) instead returns at once and connects in the background; ``publish`` appends the event to an
in-memory queue that one task sends in order, each message confirmed by RabbitMQ (publisher confirms,
persistent delivery to a durable queue) before it leaves the queue; a failed or timed-out send closes the
connection and is retried, first event first, every ``retry_delay_in_seconds`` (at most RETRY_CAP_SECONDS).
An event may so reach RabbitMQ twice (sent, confirmation lost); the compliance consumer counts it once
(bot.compliance.record.event_key).

Limits: the queue lives in the Rasa process (a restart during an outage loses what it holds) and holds at most
``max_buffered_events`` (default MAX_BUFFERED_EVENTS); beyond that the oldest event is dropped and counted in
the log.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Deque, Dict, Optional, Text, Tuple

from rasa.core.brokers.pika import PikaEventBroker, _create_rabbitmq_ssl_options
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

MAX_BUFFERED_EVENTS = 100_000
"""Default bound of the in-memory queue, in events."""

PUBLISH_TIMEOUT_SECONDS = 10.0
"""How long one send may wait for RabbitMQ's confirmation before the connection is dropped and the event sent
again, in seconds."""

CONNECT_TIMEOUT_SECONDS = 5.0
"""How long one connection attempt may take, in seconds."""

RETRY_CAP_SECONDS = 2.0
"""Most seconds between two attempts, whatever ``retry_delay_in_seconds`` says (Rasa's default is 5)."""


class BufferedPikaEventBroker(PikaEventBroker):
    """``PikaEventBroker`` (same arguments, plus ``max_buffered_events``) that buffers instead of blocking or
    dropping; see the module docstring."""

    def __init__(self, *args: Any, max_buffered_events: int = MAX_BUFFERED_EVENTS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_buffered_events = int(max_buffered_events)
        self._buffer: Deque[Tuple[Dict[Text, Any], Optional[Dict[Text, Text]]]] = deque()
        self._wake = asyncio.Event()
        self._sender: Optional[asyncio.Task] = None
        self._closing = False
        self.dropped = 0
        self._outage_logged = False

    @classmethod
    async def from_endpoint_config(cls, broker_config: Optional[EndpointConfig],
                                   event_loop: Optional[asyncio.AbstractEventLoop] = None,
                                   ) -> Optional[BufferedPikaEventBroker]:
        """The broker for ``broker_config``, its sender started; returns without waiting for RabbitMQ."""
        if broker_config is None:
            return None
        broker = cls(broker_config.url, **broker_config.kwargs, event_loop=event_loop)
        broker.start()
        return broker

    def start(self) -> None:
        """Start the background task that connects and sends (idempotent)."""
        if self._sender is None or self._sender.done():
            self._sender = self._loop.create_task(self._send_forever())

    @property
    def buffered(self) -> int:
        """Events waiting to be sent."""
        return len(self._buffer)

    def is_ready(self) -> bool:
        """True while connected to RabbitMQ (events are accepted, and kept, either way)."""
        return self._exchange is not None and self._connection is not None and not self._connection.is_closed

    def publish(self, event: Dict[Text, Any], headers: Optional[Dict[Text, Text]] = None) -> None:
        """Queue ``event`` for sending (never blocks, never raises)."""
        if len(self._buffer) >= self.max_buffered_events:
            self._buffer.popleft()
            self.dropped += 1
            logger.error("RabbitMQ has been unreachable for %d buffered events: the oldest was dropped "
                         "(%d dropped so far).", self.max_buffered_events, self.dropped)
        self._buffer.append((event, headers))
        self._wake.set()

    async def _connect_once(self) -> None:
        import aio_pika

        url = self._configure_url()
        ssl_options = _create_rabbitmq_ssl_options(self.host)
        connection = await aio_pika.connect(url=url, host=self.host, port=self.port, login=self.username,
                                            password=self.password, ssl=ssl_options is not None,
                                            ssl_options=ssl_options, timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await self._set_up_exchange(channel)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._exchange = connection, exchange
        if self._outage_logged:
            logger.warning("RabbitMQ is reachable again; sending %d buffered events.", len(self._buffer))
        else:
            logger.info("RabbitMQ connection to '%s' was established.", self.host)
        self._outage_logged = False

    async def _disconnect(self) -> None:
        connection = self._connection
        self._connection, self._exchange = None, None  # type: ignore[assignment]
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), CONNECT_TIMEOUT_SECONDS)
            except Exception:  # already broken
                pass

    async def _send_forever(self) -> None:
        delay = min(float(self._retry_delay_in_seconds), RETRY_CAP_SECONDS)
        while not (self._closing and not self._buffer):
            if not self._buffer:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if not self.is_ready():
                    await self._disconnect()
                    await self._connect_once()
                event, headers = self._buffer[0]
                assert self._exchange is not None
                await asyncio.wait_for(self._exchange.publish(self._message(event, headers), ""),
                                       PUBLISH_TIMEOUT_SECONDS)
                self._buffer.popleft()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # every kind of connection failure: keep the event, retry later
                if not self._outage_logged:
                    logger.warning("RabbitMQ unreachable (%s): buffering events (%d waiting).",
                                   type(err).__name__, len(self._buffer))
                    self._outage_logged = True
                await self._disconnect()
                if self._closing:
                    return
                await asyncio.sleep(delay)

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is buffered for at most ``timeout`` seconds, then close the connection."""
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._sender), timeout)
            except Exception:
                self._sender.cancel()
        if self._buffer:
            logger.error("Closing the event broker with %d events not sent to RabbitMQ.", len(self._buffer))
        await self._disconnect()
