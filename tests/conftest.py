"""Shared fixtures: the project paths, the knowledge, and (once per session) the trained model."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot import PROJECT_ROOT
from bot.knowledge import Knowledge, default_knowledge


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    """The project's validated knowledge files."""
    return default_knowledge()


@pytest.fixture(scope="session")
def domain() -> dict:
    """domain.yml as a plain mapping."""
    return yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The model for the current training inputs, trained at most once per session (and reused across runs)."""
    from bot.model_store import ensure_model

    return ensure_model()
