"""The machine's own services for tests of the production configurations: PostgreSQL (127.0.0.1:5432, user
postgres, trust auth) and Redis (127.0.0.1:6379). Tests skip, with the reason, when one is not reachable."""
from __future__ import annotations

import socket
import uuid
from contextlib import contextmanager
from typing import Iterator

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def reachable(host: str, port: int) -> bool:
    """True if something accepts TCP connections on ``host:port`` within 2 s."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def postgres_reachable() -> bool:
    """True if PostgreSQL listens on 127.0.0.1:5432."""
    return reachable(PG_HOST, PG_PORT)


def redis_reachable() -> bool:
    """True if Redis listens on 127.0.0.1:6379."""
    return reachable(REDIS_HOST, REDIS_PORT)


@contextmanager
def throwaway_postgres(prefix: str = "test") -> Iterator[str]:
    """A new empty PostgreSQL database; yields its SQLAlchemy URL and drops it afterwards."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672


def rabbitmq_env(queue: str) -> dict:
    """The RABBITMQ_* settings endpoints.production.yml needs, for this machine's RabbitMQ (guest/guest) and
    ``queue``. Rasa starts and answers without RabbitMQ too (bot.event_broker buffers), so no skip is needed."""
    return {"RABBITMQ_HOST": RABBITMQ_HOST, "RABBITMQ_PORT": str(RABBITMQ_PORT), "RABBITMQ_USER": "guest",
            "RABBITMQ_PASSWORD": "guest", "RABBITMQ_QUEUE": queue}


def delete_rabbitmq_queue(queue: str) -> None:
    """Delete ``queue`` from the machine's RabbitMQ (nothing to do when RabbitMQ is away or the queue was never
    declared). A test's queue must go: Rasa's broker binds it to the shared fan-out exchange, so a queue left behind
    collects every event every later test publishes."""
    import asyncio

    async def go() -> None:
        import aio_pika

        connection = await aio_pika.connect(host=RABBITMQ_HOST, port=RABBITMQ_PORT, login="guest",
                                            password="guest", timeout=5)
        async with connection:
            await (await connection.channel()).queue_delete(queue)

    try:
        asyncio.run(go())
    except Exception:  # noqa: BLE001 - RabbitMQ gone or the queue never declared: nothing to clean up
        pass
