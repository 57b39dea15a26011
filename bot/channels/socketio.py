"""The socketio channel (bank-app widget) with message screening.

Rasa's ``SocketIOInput`` unchanged on the wire; every message is screened by
:func:`bot.channels.message_guard.guard_messages` (PII masking, empty and over-long messages).

It also fixes session persistence: Rasa 3.6 calls ``sio.enter_room`` without ``await``, but in the
python-socketio 5.x that Rasa's dependency set resolves to here (5.18) ``AsyncServer.enter_room`` is a
coroutine, so the client never joins its session room and never receives a reply. The ``session_request``
handler is re-registered here with the same behaviour and the call awaited.
"""
from __future__ import annotations

import inspect
import uuid
from typing import Any, Dict, Optional

from rasa.core.channels.socketio import SocketIOInput
from sanic import Blueprint

from bot.channels.message_guard import OnNewMessage, guard_messages


class ScreenedSocketIOInput(SocketIOInput):
    """Rasa's socketio channel, registered under the same name ``socketio``, with screening."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Rasa's socketio blueprint around the screened callback, with a working ``session_request``."""
        blueprint = super().blueprint(guard_messages(on_new_message))
        sio = blueprint.ctx.sio

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Optional[Dict[str, Any]]) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id") or uuid.uuid4().hex
            if not isinstance(session_id, str) or len(session_id) > 128:
                session_id = uuid.uuid4().hex
            if self.session_persistence:
                joined = sio.enter_room(sid, session_id)
                if inspect.isawaitable(joined):
                    await joined
            await sio.emit("session_confirm", session_id, room=sid)

        return blueprint
