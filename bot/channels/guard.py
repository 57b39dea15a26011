"""Screen every user message before the dialogue sees it: size limits, control characters and PII masking.

Wraps the ``on_new_message`` callback that Rasa hands each input channel, so the same rules hold on every
channel (REST, socketio, WeChat). A message that should not reach the dialogue gets a reply on its own
channel instead; a message with personal data reaches the dialogue masked, so the tracker store, the event
broker and the logs never see the data (see ``bot.privacy``). A message that reaches the dialogue does so under
the turn supervisor (``bot.channels.turns``): whatever is down, it gets a reply within a few seconds.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable, Dict, Mapping

from rasa.core.channels.channel import UserMessage

from bot.channels.limits import current_client, default_limiter
from bot.channels.turns import supervise_turns
from bot.crisis import reads_as_danger
from bot.handoff.paused import gate_paused_message
from bot.leads.consent import default_gate as default_lead_gate
from bot.privacy import mask_pii, mask_pii_with_counts
from bot.texts import response_text

logger = logging.getLogger(__name__)

EMPTY_MESSAGE = "utter_empty_message"
"""The response answering a message with nothing in it."""

MESSAGE_TOO_LONG = "utter_message_too_long"
"""The response answering a message over MAX_MESSAGE_CHARS."""

PRIVACY_NOTICE = "utter_privacy_notice"
"""The response telling the user that personal data was masked."""

RATE_LIMITED = "utter_rate_limited"
"""The response answering a message over a rate limit (bot.channels.limits)."""

RATE_LIMITED_DANGER = "utter_rate_limited_danger"
"""The response answering a message over a rate limit that reads as danger: the hotlines, never silence."""

DISTRESS_PAYLOAD = "/express_distress"
"""The button payload of the distress intent, which counts as danger when throttled."""

MAX_MESSAGE_CHARS = 2000
"""Longest user message (in characters, after stripping) passed to the dialogue; longer ones are refused with
a reply asking the user to shorten it."""

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")

OnNewMessage = Callable[[UserMessage], Awaitable[None]]

KEPT_METADATA_KEYS = frozenset({"wechat_msg_type", "wechat_option", "wechat_event"})
"""The only message metadata keys stored with a message: the ones the project's own WeChat channel sets. What a
client sends (REST ``metadata``, socket.io ``customData``) is otherwise dropped, since no action reads it and it
would be stored verbatim beside the masked text."""

MAX_METADATA_VALUE_CHARS = 200
"""Longest metadata string kept (characters); longer ones are cut."""


def screen_metadata(metadata: object) -> Dict[str, Any]:
    """The metadata to store with a message: only KEPT_METADATA_KEYS, strings masked (``bot.privacy``) and cut to
    MAX_METADATA_VALUE_CHARS, booleans and numbers as they are; anything else (lists, objects, other keys) dropped.
    A non-mapping gives ``{}``."""
    if not isinstance(metadata, Mapping):
        return {}
    kept: Dict[str, Any] = {}
    for key, value in metadata.items():
        if key not in KEPT_METADATA_KEYS:
            continue
        if isinstance(value, str):
            kept[key] = mask_pii(clean_text(value)[:MAX_METADATA_VALUE_CHARS])
        elif isinstance(value, (bool, int, float)):
            kept[key] = value
    return kept


def clean_text(text: object) -> str:
    """``text`` as a string without control or invisible formatting characters; non-strings become ``""``."""
    if not isinstance(text, str):
        return ""
    return _CONTROL_CHARACTERS.sub("", text).strip()


async def _reply(message: UserMessage, response_name: str) -> None:
    await message.output_channel.send_response(message.sender_id, {"text": response_text(response_name)})


async def _reply_throttled(message: UserMessage, text: str) -> None:
    danger = reads_as_danger(text) or text.startswith(DISTRESS_PAYLOAD)
    if danger:
        from bot.channels.turns import render_fallback

        await message.output_channel.send_response(message.sender_id, render_fallback(RATE_LIMITED_DANGER))
    else:
        await _reply(message, RATE_LIMITED)


def guard_messages(on_new_message: OnNewMessage) -> OnNewMessage:
    """Wrap a channel's ``on_new_message`` so that each message is screened first.

    * over a rate limit (``bot.channels.limits``: per conversation, and per client when the channel set
      ``current_client``): answered with ``utter_rate_limited``, or with the hotlines
      (``utter_rate_limited_danger``) when it reads as danger or is ``/express_distress``; not passed on, so
      a flood opens no tickets;
    * empty (or only control characters / whitespace): replied to with ``utter_empty_message``, not passed on;
    * longer than MAX_MESSAGE_CHARS: replied to with ``utter_message_too_long``, not passed on;
    * otherwise PII is masked (``bot.privacy``), the metadata is screened (``screen_metadata``: an allow-list,
      masked), the kinds masked are added to the metadata as ``pii_masked``
      (counts only), a privacy notice is sent when anything was masked, and the message is passed on, under
      the turn supervisor (``bot.channels.turns.supervise_turns``: deadline, outage reply);
    * a seller's details are read before masking and, after the turn, the user is asked once whether they may
      be passed on; a consent answer is acted on before its turn (``bot.leads.consent``);
    * a message to a conversation paused for a human agent goes, under the same supervisor, through the
      hand-over gate (``bot.handoff.paused``), which answers danger, a wish to leave and a desk that is gone.
    """

    async def gated(message: UserMessage) -> None:
        if not await gate_paused_message(message, on_new_message):
            await on_new_message(message)

    supervised = supervise_turns(gated)

    async def screened(message: UserMessage) -> None:
        text = clean_text(message.text)
        if not await default_limiter().allow_message(message.sender_id, current_client.get()):
            await _reply_throttled(message, text)
            return
        if not text:
            await _reply(message, EMPTY_MESSAGE)
            return
        if len(text) > MAX_MESSAGE_CHARS:
            logger.info("Refused a message of %d characters from one sender.", len(text))
            await _reply(message, MESSAGE_TOO_LONG)
            return
        leads = default_lead_gate()
        candidate = leads.observe(text)  # a seller's details, read before masking; held only with consent
        masked, counts = mask_pii_with_counts(text)
        message.text = masked
        message.metadata = screen_metadata(message.metadata)
        if counts:
            message.metadata = {**message.metadata, "pii_masked": counts}
            await _reply(message, PRIVACY_NOTICE)
        await leads.answer(message)
        await supervised(message)
        await leads.offer(message, candidate, text)

    return screened
