"""The socketio channel (bank-app widget) with message screening.

Rasa's ``SocketIOInput`` unchanged on the wire; every message is screened by
:func:`bot.channels.guard.guard_messages` (PII masking, empty and over-long messages).

It also fixes session persistence: Rasa 3.6 calls ``sio.enter_room`` without ``await``, but in the
python-socketio 5.x that Rasa's dependency set resolves to here (5.18) ``AsyncServer.enter_room`` is a
coroutine, so the client never joins its session room and never receives a reply. The ``session_request``
handler is re-registered here with the same behaviour and the call awaited.

And it fixes custom payloads (docs/channels/payloads.md): Rasa's ``SocketIOOutput.send_custom_json`` passes the
payload's keys as keyword arguments to ``sio.emit`` (``emit(evt, type=..., status=...)``), which raises a
``TypeError``. :class:`CustomPayloadSocketIOOutput` emits the payload itself as the ``bot_uttered`` data, and
the ``user_uttered`` handler is re-registered to use it (Rasa's creates its own output object).

And it binds each socket to one conversation (bot.channels.ownership). ``session_request`` takes
``{"session_token": ...}`` (a token this server issued; the widget keeps it instead of a guessable id) or
``{"customer_token": ...}`` (signed by the bank app's backend, docs/bank-signing.md); without a valid token a new
anonymous session is created, so naming another session's id joins nothing. The answer, ``session_confirm``, is
``{"session_id": ..., "session_token": ...}``; the sender id is saved in the socket's server-side session
(python-socketio's ``save_session``), and ``user_uttered`` always speaks as that sender: a message naming
another ``session_id``, or sent before a session was confirmed, gets a ``refused`` event and reaches nothing.
A refused customer token also gets ``refused`` (no session).

Messages sent outside a user turn (the agent desk through Rasa's HTTP API) go through
:class:`OutOfTurnSocketIOOutput`, which refuses to pretend: when no socket is in the session's room, it raises
bot.handoff.delivery.AgentMessageNotDelivered, so the agent is told "not delivered", never "sent".

With several replicas, ``SOCKETIO_REDIS_URL`` shares the rooms and the presence of sockets through Redis
(bot/channels/socketio_rooms.py), so that a message sent on one replica reaches a socket on another.
"""
from __future__ import annotations

import inspect
import json
import logging
from typing import Any, Dict, Optional

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from sanic import Blueprint

from bot.channels.guard import OnNewMessage, guard_messages
from bot.channels.limits import client_key, current_client, default_limiter
from bot.channels.ownership import (
    ChannelSecurity,
    SecurityConfigError,
    TokenRefused,
    channel_security,
    customer_token_sender,
    issue_session_token,
    new_web_sender,
    session_sender,
)
from bot.channels.socketio_rooms import LocalPresence, Presence, install_shared_rooms
from bot.channels.turns import current_agent
from bot.handoff.delivery import AgentMessageNotDelivered
from bot.knowledge import default_knowledge
from bot.referral_taps import TAP_EVENT, record_tap, tap_entry

logger = logging.getLogger(__name__)

REFUSED_EVENT = "refused"
"""The event a client gets for a refused ``session_request`` or ``user_uttered``: ``{"event", "reason"}``."""

SENDER_KEY = "sender_id"
CLIENT_KEY = "rate_limit_client"
"""Session key of the client's rate-limit key (its address at connect), so that a client's sockets share one
limit."""
"""Where the socket's conversation is kept in its python-socketio session."""


class CustomPayloadSocketIOOutput(SocketIOOutput):
    """Rasa's socketio output, except that a custom payload is emitted as the ``bot_uttered`` data itself."""

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        """Emit ``json_message`` (e.g. ``{"type": "handoff", "status": "queued"}``) to the session's room."""
        await self.sio.emit(self.bot_message_evt, dict(json_message), room=recipient_id)


class OutOfTurnSocketIOOutput(CustomPayloadSocketIOOutput):
    """The output for messages sent outside a user turn: delivered only to a session room with a socket in it."""

    def __init__(self, sio: Any, bot_message_evt: str, namespace: Optional[str] = None,
                 presence: Optional[Presence] = None) -> None:
        super().__init__(sio, bot_message_evt)
        self.namespace = namespace or "/"
        self.presence: Presence = presence or LocalPresence(sio, self.namespace)

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        """Send ``message`` if the user's session has a connected socket (on any replica, with shared rooms).
        Raises AgentMessageNotDelivered otherwise (Rasa then stores nothing and the desk reports the message as
        not delivered)."""
        if not await self.presence.connected(recipient_id):
            raise AgentMessageNotDelivered("the user's widget is not connected")
        await super().send_response(recipient_id, message)


class ScreenedSocketIOInput(SocketIOInput):
    """Rasa's socketio channel, registered under the same name ``socketio``, with screening."""

    @classmethod
    def name(cls) -> str:
        """``socketio``, the name of Rasa's own channel, so that clients and ``output_channel`` stay the same."""
        return "socketio"

    presence: Optional[Presence] = None
    """Who is connected: set by :meth:`blueprint` (Redis-backed when ``SOCKETIO_REDIS_URL`` is set)."""

    def get_output_channel(self) -> Optional[CustomPayloadSocketIOOutput]:
        """The output used when a message is sent outside a user turn (e.g. by the agent desk via the API):
        it raises AgentMessageNotDelivered when the user's socket is gone."""
        if self.sio is None:
            return None
        return OutOfTurnSocketIOOutput(self.sio, self.bot_message_evt, self.namespace, self.presence)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Rasa's socketio blueprint around the screened callback, with a working ``session_request``."""
        screened = guard_messages(on_new_message)
        blueprint = super().blueprint(screened)
        sio = blueprint.ctx.sio
        presence = self.presence = install_shared_rooms(sio, self.namespace)

        rasa_connect = sio.handlers.get(self.namespace or "/", {}).get("connect")

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: str, environ: Dict[str, Any], auth: Optional[Dict[str, Any]] = None) -> bool:
            """Rasa's connect (its JWT check), then the client's address kept in the socket's session."""
            accepted = True if rasa_connect is None else await rasa_connect(sid, environ, auth)
            if accepted is not False:
                client = client_key(environ.get("sanic.request"))
                await sio.save_session(sid, {CLIENT_KEY: client}, namespace=self.namespace)
            return accepted is not False

        @sio.on("disconnect", namespace=self.namespace)
        async def disconnect(sid: str, *reason: Any) -> None:  # python-socketio >= 5.12 passes a reason
            await presence.left(sid)

        try:
            security: Optional[ChannelSecurity] = channel_security()
        except SecurityConfigError as err:
            logger.error("The socketio channel refuses every session: %s", err)
            security = None

        async def refuse(sid: str, event: str, reason: str) -> None:
            logger.info("Refused a socketio %s: %s", event, reason)
            await sio.emit(REFUSED_EVENT, {"event": event, "reason": reason}, room=sid)

        async def socket_session(sid: str) -> Optional[Dict[str, Any]]:
            try:
                return await sio.get_session(sid, namespace=self.namespace)
            except KeyError:  # the socket is gone
                return None

        async def bound_sender(sid: str) -> Optional[str]:
            sender = (await socket_session(sid) or {}).get(SENDER_KEY)
            return sender if isinstance(sender, str) else None

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Optional[Dict[str, Any]]) -> None:
            data = data if isinstance(data, dict) else {}
            if security is None:
                await refuse(sid, "session_request", "the channel is not configured")
                return
            if data.get("customer_token"):
                try:
                    sender_id = customer_token_sender(security, data["customer_token"])
                except TokenRefused as err:
                    await refuse(sid, "session_request", str(err))
                    return
            else:
                try:
                    sender_id = session_sender(security, data.get("session_token"))
                except TokenRefused:
                    sender_id = new_web_sender()  # no (valid) token: a new conversation, never someone else's
            previous = await bound_sender(sid)
            if previous is not None and previous != sender_id:
                left = sio.leave_room(sid, previous, namespace=self.namespace)
                if inspect.isawaitable(left):
                    await left
                await presence.left(sid)
            session = dict(await socket_session(sid) or {})
            session[SENDER_KEY] = sender_id
            await sio.save_session(sid, session, namespace=self.namespace)
            # Always in the conversation's room (the room is how replies reach it), whatever session_persistence.
            joined = sio.enter_room(sid, sender_id, namespace=self.namespace)
            if inspect.isawaitable(joined):
                await joined
            await presence.joined(sender_id, sid)
            await sio.emit("session_confirm", {"session_id": sender_id,
                                               "session_token": issue_session_token(security, sender_id)},
                           room=sid)

        @sio.on(TAP_EVENT, namespace=self.namespace)
        async def referral_tapped(sid: str, data: Any) -> None:
            """A call button tapped on a referral card: recorded in the socket's own conversation when the
            reason and number are ones the bot gives (bot.referral_taps); otherwise refused. No reply."""
            sender_id = await bound_sender(sid)
            if sender_id is None:
                await refuse(sid, TAP_EVENT, "no session: send session_request first")
                return
            entry = tap_entry(data, default_knowledge())
            if entry is None:
                await refuse(sid, TAP_EVENT, "not a channel this assistant gives")
                return
            if not await default_limiter().allow("tap", sender_id):
                return  # a flood of taps is dropped; the user's messages keep their own limit
            await record_tap(current_agent(), sender_id, entry)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Optional[Dict[str, Any]]) -> None:
            data = data if isinstance(data, dict) else {}
            sender_id = await bound_sender(sid)
            if sender_id is None:
                await refuse(sid, self.user_message_evt, "no session: send session_request first")
                return
            named = data.get("session_id")
            if named not in (None, "", sender_id):
                await refuse(sid, self.user_message_evt, "this socket belongs to another session")
                return
            metadata = data.get(self.metadata_key) or {}
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = {}
            if not isinstance(metadata, dict):
                metadata = {}
            output = CustomPayloadSocketIOOutput(sio, self.bot_message_evt)
            message = UserMessage(data.get("message", ""), output, sender_id,
                                  input_channel=self.name(), metadata=metadata)
            client = (await socket_session(sid) or {}).get(CLIENT_KEY)
            current_client.set(client if isinstance(client, str) else f"sio:{sid}")
            await screened(message)

        return blueprint
