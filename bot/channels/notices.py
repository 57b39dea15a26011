"""Texts the channel layer sends on its own (before the dialogue runs), read from the domain's responses.

The channel layer answers a message that never reaches the dialogue (empty, too long) and adds a privacy
notice when it masked personal data. Those texts are domain responses like every other bot text, so they are
edited in one place.
"""
from __future__ import annotations

from bot.project_files import merged_domain

EMPTY_MESSAGE = "utter_empty_message"
MESSAGE_TOO_LONG = "utter_message_too_long"
PRIVACY_NOTICE = "utter_privacy_notice"


def notice_text(response_name: str) -> str:
    """The first text variant of a domain response. Raises KeyError if the domain lacks the response."""
    return merged_domain()["responses"][response_name][0]["text"]
