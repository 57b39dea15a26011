"""The socketio channel (bank-app widget) with message screening.

Rasa's ``SocketIOInput`` unchanged on the wire; every message is screened by
:func:`bot.channels.message_guard.guard_messages` (PII masking, empty and over-long messages).
"""
from __future__ import annotations

from rasa.core.channels.socketio import SocketIOInput
from sanic import Blueprint

from bot.channels.message_guard import OnNewMessage, guard_messages


class ScreenedSocketIOInput(SocketIOInput):
    """Rasa's socketio channel, registered under the same name ``socketio``, with screening."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Rasa's socketio blueprint around the screened callback."""
        return super().blueprint(guard_messages(on_new_message))
