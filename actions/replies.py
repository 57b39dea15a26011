"""The one way an action sends what a planner in ``bot/`` decided: each ReplyInstruction becomes one
``utter_message`` of its domain response, which Rasa's NLG fills with the instruction's variables."""
from __future__ import annotations

from typing import Iterable

from rasa_sdk.executor import CollectingDispatcher

from bot.replies import ReplyInstruction


def send_replies(dispatcher: CollectingDispatcher, replies: Iterable[ReplyInstruction]) -> None:
    """Queue ``replies`` on ``dispatcher`` in order (``response=<name>``, placeholders as keyword arguments)."""
    for reply in replies:
        dispatcher.utter_message(response=reply.response, **reply.variables)
