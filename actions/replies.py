"""The one way an action sends what a planner in ``bot/`` decided: each ReplyInstruction becomes one
``utter_message`` of its domain response, which Rasa's NLG fills with the instruction's variables.

Each message also carries ``knowledge_version`` (bot.knowledge.default_knowledge_version): Rasa keeps an
action's extra message keys in the ``BotUttered`` event's metadata, so the compliance record knows which version
of ``data/knowledge/`` the facts shown came from. No response text uses it.
"""
from __future__ import annotations

from typing import Iterable

from rasa_sdk.executor import CollectingDispatcher

from bot.knowledge import default_knowledge_version
from bot.replies import ReplyInstruction


def send_replies(dispatcher: CollectingDispatcher, replies: Iterable[ReplyInstruction]) -> None:
    """Queue ``replies`` on ``dispatcher`` in order (``response=<name>``, placeholders as keyword arguments, and
    ``knowledge_version``)."""
    version = default_knowledge_version()
    for reply in replies:
        dispatcher.utter_message(response=reply.response, **{"knowledge_version": version, **reply.variables})
