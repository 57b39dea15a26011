"""Texts the channel layer sends on its own (before the dialogue runs), read from ``domain.yml`` responses.

The channel layer answers a message that never reaches the dialogue (empty, too long) and adds a privacy
notice when it masked personal data. Those texts are domain responses like every other bot text, so they are
edited in one place.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Dict

import yaml

from bot import PROJECT_ROOT

EMPTY_MESSAGE = "utter_empty_message"
MESSAGE_TOO_LONG = "utter_message_too_long"
PRIVACY_NOTICE = "utter_privacy_notice"


@lru_cache(maxsize=1)
def _domain_responses() -> Dict[str, list]:
    with (PROJECT_ROOT / "domain.yml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["responses"]


def notice_text(response_name: str) -> str:
    """The first text variant of a domain response. Raises KeyError if domain.yml lacks the response."""
    return _domain_responses()[response_name][0]["text"]
