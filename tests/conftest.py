"""Shared fixtures: the project paths, the knowledge, and (once per session) the trained model."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge import Knowledge, default_knowledge
from bot.project_files import merged_domain


@pytest.fixture(autouse=True)
def _fresh_rate_limiter():
    """Each test starts with empty in-memory rate-limit counters (bot.channels.limits)."""
    from bot.channels.limits import reset_default_limiter

    reset_default_limiter()
    yield
    reset_default_limiter()


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    """The project's validated knowledge files."""
    return default_knowledge()


@pytest.fixture(scope="session")
def domain() -> dict:
    """The domain (domain/*.yml) merged as Rasa merges it, as a plain mapping."""
    return merged_domain()


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The model for the current training inputs, trained at most once per session (and reused across runs)."""
    from bot.ops.model_store import ensure_model

    return ensure_model()


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    """Folder of the shared end-to-end servers: their SQLite tracker store and their logs."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def servers(trained_model, e2e_dir):
    """The real action and Rasa servers on free loopback ports, shared by every end-to-end test module."""
    from tests.support.servers import start_test_servers, write_sqlite_endpoints

    running = start_test_servers(trained_model, e2e_dir, write_sqlite_endpoints(e2e_dir))
    yield running
    running.stop()
