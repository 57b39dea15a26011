"""Every text the bot sends, read one way: the responses in ``domain/`` and the channels' own notices.

* **Responses** (``domain/*.yml``, key ``responses``) are what the dialogue says. Custom actions send them by
  name and Rasa's NLG fills their ``{placeholders}``; the channel layer and the agent desk, which send texts
  outside a dialogue turn, read them here. The files are merged as Rasa merges a domain directory; this
  reader needs only PyYAML, so that the action server runs with rasa-sdk alone
  (``tests/unit/test_domain_consistency.py`` checks that it agrees with Rasa's own reading).
* **Channel notices** (``data/channels/<channel>.yml``: a mapping of key to text) are what a channel says on
  its own, e.g. WeChat's "please type your question" for a picture. They are not in ``domain/`` on purpose:
  every domain file is a training input (bot.ops.model_store), so editing a notice there would force a retrain.

No text holds a digit: numbers reach users only through placeholders filled from ``data/knowledge/``
(``tests/unit/test_numbers_reach_user_only_from_knowledge.py``).
"""
from __future__ import annotations

import copy
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping

import yaml

from bot import PROJECT_ROOT

DOMAIN_DIR = PROJECT_ROOT / "domain"
"""The domain directory; its files' ``responses`` are merged."""

CHANNEL_TEXTS_DIR = PROJECT_ROOT / "data" / "channels"
"""One YAML file of notices per channel (``wechat.yml`` ...)."""

_PLACEHOLDER = re.compile(r"{([^\n{}]+?)}")
"""A ``{name}`` placeholder, as Rasa's interpolator finds them."""


class TextsError(ValueError):
    """A text file is malformed, or defines a response twice; the message names the file."""


@lru_cache(maxsize=1)
def domain_responses() -> Dict[str, List[Dict[str, Any]]]:
    """Response name -> its variants (mappings with ``text``, ``buttons``, ``custom`` ...), from every domain file.

    Raises TextsError for a file that is not a mapping or a response defined in two files.
    """
    merged: Dict[str, List[Dict[str, Any]]] = {}
    for path in sorted(DOMAIN_DIR.glob("*.yml")):
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(content, dict):
            raise TextsError(f"{path}: expected a mapping at the top level")
        for name, variants in (content.get("responses") or {}).items():
            if name in merged:
                raise TextsError(f"{path}: response {name!r} is defined in another domain file too")
            merged[name] = list(variants)
    return merged


def response_text(name: str) -> str:
    """The text of the first variant of response ``name``, placeholders unfilled. Raises KeyError if unknown."""
    return str(domain_responses()[name][0].get("text") or "")


def placeholders(name: str) -> List[str]:
    """The ``{placeholder}`` names in every variant's text of response ``name``, in order, with repeats.

    Raises KeyError for an unknown response.
    """
    return [key for variant in domain_responses()[name] for key in _PLACEHOLDER.findall(variant.get("text") or "")]


def render_response(name: str, values: Mapping[str, str]) -> Dict[str, Any]:
    """The first variant of response ``name`` with its placeholders filled from ``values``: ``{"text": ...}`` plus
    any ``custom`` or ``buttons`` it has.

    Filled exactly as Rasa's NLG fills a response for a custom action (``rasa.core.nlg.interpolator``, so this
    needs the ``rasa`` package: only the agent desk renders texts itself). Raises KeyError for an unknown name.
    """
    from rasa.core.nlg.interpolator import interpolate

    variant = copy.deepcopy(domain_responses()[name][0])
    rendered = interpolate(variant, dict(values))
    return dict(rendered) if isinstance(rendered, dict) else {"text": str(rendered)}


@cache
def channel_texts(channel: str) -> Dict[str, str]:
    """The notices of ``channel`` (``data/channels/<channel>.yml``): key -> text.

    Raises TextsError if the file is missing or not a mapping of keys to non-empty strings.
    """
    path: Path = CHANNEL_TEXTS_DIR / f"{channel}.yml"
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise TextsError(f"{path}: the channel's texts are missing") from err
    if not isinstance(content, dict):
        raise TextsError(f"{path}: expected a mapping of keys to texts")
    for key, text in content.items():
        if not isinstance(text, str) or not text.strip():
            raise TextsError(f"{path}: {key}: a non-empty text is required")
    return {str(key): text for key, text in content.items()}
