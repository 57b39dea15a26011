"""The compliance consumer: a long-running service that reads the events Rasa publishes to its event broker
and writes the compliance record (``python -m bot compliance consume``; ``python -m bot run`` starts it).

Which broker comes from the ``event_broker`` section of the endpoints file Rasa runs with (``${VAR}`` replaced
from the environment, as Rasa does):

* ``type: sql`` (endpoints.yml, the embedded default): Rasa's SQL event broker writes every event as a row of
  its ``events`` table. The consumer reads the rows after its cursor (the last id consumed, kept in the
  compliance store) in batches; each batch's record and the new cursor commit in one transaction, so a restart
  starts after the last committed row and loses nothing. Rows before the committed cursor are then deleted from
  the broker's table (it is a queue, not a second copy of the conversations).
* ``type: pika`` or bot.event_broker.BufferedPikaEventBroker (endpoints.production.yml): RabbitMQ. The
  consumer declares the same durable queue, bound to the same fanout exchange, and acknowledges each message
  only after its record is committed; a message delivered again after a crash is recognised by its event key
  (bot.compliance.record.event_key) and not counted twice. While RabbitMQ is unreachable it retries every
  RECONNECT_SECONDS.

One consumer per store: the turns' hash chain (bot.compliance.chain) is written by a single writer.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import URL, Engine

from bot import PROJECT_ROOT
from bot.compliance.record import Recorder, seal_idle
from bot.compliance.schema import state

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Broker rows (SQL) read and committed per transaction."""

POLL_SECONDS = 0.5
"""Pause between reads of an empty SQL broker table, in seconds."""

RECONNECT_SECONDS = 2.0
"""Pause before reconnecting to RabbitMQ or retrying a failed commit, in seconds."""

SEAL_EVERY_SECONDS = 30.0
"""How often idle open turns are sealed (bot.compliance.record.seal_idle), in seconds."""

PIKA_TYPES = {"pika", "bot.event_broker.BufferedPikaEventBroker"}
"""event_broker types read from RabbitMQ."""

_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class ConsumerConfigError(ValueError):
    """The endpoints file has no usable ``event_broker`` section; the message says what is wrong."""


def broker_config(endpoints: Path) -> Optional[Dict[str, Any]]:
    """The ``event_broker`` section of ``endpoints`` (a YAML file) with ``${VAR}`` replaced from the environment,
    or None when there is none. Raises ConsumerConfigError for a variable that is not set."""
    text = endpoints.read_text(encoding="utf-8")
    section = (yaml.safe_load(text) or {}).get("event_broker")
    if not section:
        return None

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item) for item in value]
        if isinstance(value, str):
            def variable(match: re.Match) -> str:
                name = match.group(1)
                if name not in os.environ:
                    raise ConsumerConfigError(f"{endpoints}: event_broker needs ${{{name}}}, which is not set")
                return os.environ[name]
            return _VARIABLE.sub(variable, value)
        return value

    return resolve(dict(section))


def sql_broker_url(config: Dict[str, Any], root: Path = PROJECT_ROOT) -> str:
    """The SQLAlchemy URL of Rasa's SQL event broker for ``config`` (keys as Rasa's SQLEventBroker takes them:
    ``dialect``, ``url`` as host, ``port``, ``db``, ``username``, ``password``); a relative SQLite file is
    relative to ``root`` (where the Rasa server runs)."""
    dialect = config.get("dialect", "sqlite")
    database = str(config.get("db", "events.db"))
    if dialect == "sqlite":
        path = Path(database)
        return f"sqlite:///{path if path.is_absolute() else root / path}"
    port = config.get("port")
    return URL.create(dialect, username=config.get("username"), password=config.get("password"),
                      host=config.get("url"), port=int(port) if port else None,
                      database=database).render_as_string(hide_password=False)


def _cursor_name(broker_url: str) -> str:
    return "cursor:sql:" + sa.engine.make_url(broker_url).render_as_string(hide_password=True)[:200]


class Consumer:
    """Reads one broker into one store (``store``: an engine from bot.compliance.store.open_store)."""

    def __init__(self, store: Engine, recorder: Recorder) -> None:
        self.store = store
        self.recorder = recorder
        self.stopping = threading.Event()
        self._last_seal = 0.0
        self.applied = 0

    def stop(self) -> None:
        """Ask the loop to finish after the batch or message in hand."""
        self.stopping.set()

    def _maybe_seal(self) -> None:
        now = time.time()
        if now - self._last_seal >= SEAL_EVERY_SECONDS:
            with self.store.begin() as connection:
                seal_idle(connection, now)
            self._last_seal = now

    # --- Rasa's SQL event broker ------------------------------------------------------------------------------

    def consume_sql_batch(self, broker: Engine, cursor_name: str) -> int:
        """Record the next BATCH_SIZE broker rows after the cursor, and move the cursor, in one transaction.
        Returns how many rows were read (0: none yet; also when Rasa has not created the table yet)."""
        with self.store.begin() as connection:
            cursor = int(connection.execute(sa.select(state.c.value).where(state.c.name == cursor_name)).scalar()
                         or 0)
            try:
                with broker.connect() as source:
                    rows = source.execute(sa.text("SELECT id, sender_id, data FROM events WHERE id > :cursor "
                                                  "ORDER BY id LIMIT :limit"),
                                          {"cursor": cursor, "limit": BATCH_SIZE}).all()
            except sa.exc.OperationalError as err:
                if "no such table" in str(err):
                    return 0
                raise
            for row in rows:
                event = json.loads(row.data)
                event.setdefault("sender_id", row.sender_id)
                if self.recorder.apply_event(connection, event):
                    self.applied += 1
            if rows:
                value = str(rows[-1].id)
                if connection.execute(sa.update(state).where(state.c.name == cursor_name)
                                      .values(value=value)).rowcount == 0:
                    connection.execute(sa.insert(state).values(name=cursor_name, value=value))
        if rows:
            # The broker table is a queue: rows before the committed cursor are deleted (a crash before this
            # point leaves them to the next batch's delete; the cursor already skips them). The cursor's own row
            # stays: SQLite gives a table without AUTOINCREMENT the next id after the largest one left, so an
            # emptied table would number new events from 1 again, behind the cursor.
            with broker.begin() as source:
                source.execute(sa.text("DELETE FROM events WHERE id < :cursor"), {"cursor": rows[-1].id})
        return len(rows)

    def run_sql(self, broker_url: str) -> None:
        """Follow Rasa's SQL broker at ``broker_url`` until :meth:`stop`; a failing read or commit is logged and
        retried after RECONNECT_SECONDS (nothing is committed, so nothing is lost)."""
        from bot.db import make_engine

        broker = make_engine(broker_url)
        name = _cursor_name(broker_url)
        try:
            while not self.stopping.is_set():
                try:
                    read = self.consume_sql_batch(broker, name)
                    self._maybe_seal()
                except sa.exc.SQLAlchemyError as err:
                    logger.warning("Compliance consumer: %s; retrying in %.0f s.", type(err).__name__,
                                   RECONNECT_SECONDS)
                    self.stopping.wait(RECONNECT_SECONDS)
                    continue
                if read < BATCH_SIZE:
                    self.stopping.wait(POLL_SECONDS)
        finally:
            broker.dispose()

    # --- RabbitMQ -------------------------------------------------------------------------------------------

    def _record_message(self, body: bytes) -> None:
        event = json.loads(body)
        with self.store.begin() as connection:
            if self.recorder.apply_event(connection, event):
                self.applied += 1

    async def run_pika(self, config: Dict[str, Any]) -> None:
        """Follow RabbitMQ (``config``: the pika broker's endpoint settings) until :meth:`stop`. Each message is
        acknowledged after its record commits; an undecodable one is logged and dropped (rejected)."""
        import aio_pika

        queue_name = (config.get("queues") or ["rasa_core_events"])[0]
        exchange_name = config.get("exchange_name", "rasa-exchange")
        while not self.stopping.is_set():
            try:
                connection = await aio_pika.connect(host=config.get("url", "localhost"),
                                                    port=int(config.get("port", 5672)),
                                                    login=config.get("username", "guest"),
                                                    password=config.get("password", "guest"), timeout=5)
            except Exception as err:  # aio_pika raises many kinds while RabbitMQ is away
                logger.warning("Compliance consumer: RabbitMQ unreachable (%s); retrying.", type(err).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            try:
                await self._drain(connection, queue_name, exchange_name)
            except Exception as err:
                logger.warning("Compliance consumer: RabbitMQ connection lost (%s); reconnecting.",
                               type(err).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                try:
                    await connection.close()
                except Exception:  # already gone
                    pass

    async def _drain(self, connection: Any, queue_name: str, exchange_name: str) -> None:
        import aio_pika

        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        exchange = await channel.declare_exchange(exchange_name, type=aio_pika.ExchangeType.FANOUT)
        queue = await channel.declare_queue(queue_name, durable=True)
        await queue.bind(exchange, "")
        logger.info("Compliance consumer: reading RabbitMQ queue %s.", queue_name)
        while not self.stopping.is_set():
            if connection.is_closed:
                raise ConnectionError("RabbitMQ closed the connection")
            message = await queue.get(no_ack=False, fail=False, timeout=5)
            if message is None:
                self._maybe_seal()
                await asyncio.sleep(POLL_SECONDS)
                continue
            try:
                self._record_message(message.body)
            except (ValueError, TypeError):
                logger.error("Compliance consumer: a message that is not a JSON event was dropped.")
                await message.reject(requeue=False)
                continue
            except sa.exc.SQLAlchemyError as err:
                logger.warning("Compliance consumer: commit failed (%s); the message goes back to the queue.",
                               type(err).__name__)
                await message.nack(requeue=True)
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            await message.ack()


def run(endpoints: Path, database: Optional[str] = None) -> int:
    """Consume the broker of ``endpoints`` into the store at ``database`` (bot.compliance.store) until SIGTERM
    or Ctrl-C. Returns the exit code: 0 after a stop, 2 when the endpoints file has no usable broker."""
    from bot.compliance.store import database_url, open_store
    from bot.risk import default_risk_engine

    try:
        config = broker_config(endpoints)
    except ConsumerConfigError as err:
        logger.error("%s", err)
        return 2
    if config is None:
        logger.error("%s has no event_broker section: nothing to consume.", endpoints)
        return 2
    kind = str(config.get("type", "")).lower() if config.get("type") in ("SQL", "sql", "pika") else config.get("type")
    store = open_store(database)
    consumer = Consumer(store, Recorder(default_risk_engine()))
    logger.info("Compliance consumer: %s broker into %s.", kind,
                sa.engine.make_url(database_url(database)).render_as_string(hide_password=True))

    def stop(*_: Any) -> None:
        consumer.stop()

    try:
        if kind == "sql":
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            consumer.run_sql(sql_broker_url(config))
        elif kind in PIKA_TYPES:
            loop = asyncio.new_event_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop)
            try:
                loop.run_until_complete(consumer.run_pika(config))
            finally:
                loop.close()
        else:
            logger.error("event_broker type %r is not one the compliance consumer reads (sql, pika).", kind)
            return 2
    finally:
        store.dispose()
    return 0
