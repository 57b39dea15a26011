"""The hand-over's decisions, free of servers: who can receive an agent, when to pause, how a message to a
paused conversation is read.

* :func:`channel_can_receive_agent`: the widget (``socketio``) and WeChat can show an agent's message sent
  later; plain REST answers each request synchronously and cannot.
* :func:`intake_status`: the status the desk gives a new ticket: ``queued`` (the conversation will pause) only
  when agents are on duty and the channel can receive them, else ``follow_up`` (a record an agent reads later,
  while the bot keeps talking).
* :func:`read_paused_message`: ``danger`` (bot.crisis), ``leave`` (data/handoff/leave_phrases.yml, or
  ``/restart``) or an ordinary ``message``.

It imports no web or database package: the action server, the desk and the Rasa side all use it.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import FrozenSet, Optional, Tuple

import yaml

from bot.crisis import reads_as_danger
from bot.text_normalisation import compact

PUSH_CHANNELS: FrozenSet[str] = frozenset({"socketio", "wechat_miniprogram"})
"""Input channels on which Rasa's HTTP API (``output_channel=latest``) reaches the user outside a turn."""

QUEUED, CLAIMED, FOLLOW_UP, CLOSED = "queued", "claimed", "follow_up", "closed"
"""Ticket statuses (bot.handoff.store keeps the same values)."""

LEAVE_PHRASES_PATH = Path(__file__).resolve().parent.parent.parent / "data" / "handoff" / "leave_phrases.yml"
"""The lexicon of leave-the-queue phrases."""

RESTART_COMMANDS = ("/restart", "/session_start")
"""Rasa's own commands that end a conversation: they also leave the queue."""


def channel_can_receive_agent(channel: Optional[str]) -> bool:
    """True if an agent's message sent later reaches a user of ``channel`` (an input channel's name)."""
    return channel in PUSH_CHANNELS


def intake_status(agents_on_duty: bool, channel: Optional[str]) -> str:
    """``queued`` if a person can answer now on this channel, else ``follow_up``."""
    return QUEUED if agents_on_duty and channel_can_receive_agent(channel) else FOLLOW_UP


@lru_cache(maxsize=1)
def leave_lexicon(path: Path = LEAVE_PHRASES_PATH) -> Tuple[int, Tuple[str, ...]]:
    """``(max_chars, patterns)`` from the lexicon file, patterns normalised. Raises OSError / yaml errors /
    ValueError for a missing or malformed file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    patterns = data.get("patterns")
    max_chars = data.get("max_chars")
    if not isinstance(patterns, list) or not patterns or not isinstance(max_chars, int) or max_chars <= 0:
        raise ValueError(f"{path}: needs a non-empty 'patterns' list and a positive 'max_chars'")
    return max_chars, tuple(compact(str(p)) for p in patterns)


def reads_as_leaving(text: object) -> bool:
    """True if ``text`` is a short wish to leave the queue ("不等了", "继续和机器人聊") or a restart command."""
    if not isinstance(text, str):
        return False
    stripped = text.strip()
    if stripped.lower().startswith(RESTART_COMMANDS):
        return True
    max_chars, patterns = leave_lexicon()
    normalised = compact(stripped)
    return 0 < len(normalised) <= max_chars and any(pattern in normalised for pattern in patterns)


def is_restart_command(text: object) -> bool:
    """True for ``/restart`` (and ``/session_start``): Rasa handles these itself, even while paused."""
    return isinstance(text, str) and text.strip().lower().startswith(RESTART_COMMANDS)


def read_paused_message(text: object) -> str:
    """How a message to a paused conversation reads: ``danger`` first (a risk to life outranks everything,
    even a wish to leave), then ``leave``, else ``message`` (the contract's PAUSED_KINDS)."""
    if reads_as_danger(text):
        return "danger"
    if reads_as_leaving(text):
        return "leave"
    return "message"
