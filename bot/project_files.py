"""Where the Rasa project's own files are, and how to read them as Rasa does.

The domain is split by feature across ``domain/*.yml`` (Rasa merges a domain directory); rules and stories
live in ``data/dialogue/*.yml``. Code that needs the merged domain or all dialogue blocks reads them here.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List

import yaml

from bot import PROJECT_ROOT

DOMAIN_DIR = PROJECT_ROOT / "domain"
"""The domain directory (intents, entities, slots, actions, responses, forms)."""

NLU_DIR = PROJECT_ROOT / "data" / "nlu"
"""NLU training data."""

DIALOGUE_DIR = PROJECT_ROOT / "data" / "dialogue"
"""Rules and stories."""


@lru_cache(maxsize=1)
def merged_domain() -> Dict[str, Any]:
    """The domain as Rasa merges ``domain/``: a mapping with ``intents``, ``actions``, ``responses``, ...

    Raises rasa's InvalidDomain if a domain file is malformed.
    """
    from rasa.shared.core.domain import Domain

    return Domain.load(str(DOMAIN_DIR)).as_dict()


def dialogue_blocks() -> List[Dict[str, Any]]:
    """Every rule and story in ``data/dialogue/`` as its YAML mapping (``rule``/``story`` and ``steps``)."""
    blocks: List[Dict[str, Any]] = []
    for path in sorted(DIALOGUE_DIR.glob("*.yml")):
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        blocks += content.get("rules", []) + content.get("stories", [])
    return blocks


def relative(path: Path) -> str:
    """``path`` relative to the project root, as a string (for command lines run from the root)."""
    return str(path.relative_to(PROJECT_ROOT))
