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
