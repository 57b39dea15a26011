"""The socketio channel's output: custom payloads (docs/channels/payloads.md) reach the client as its data."""
from __future__ import annotations

import asyncio

from bot.channels.socketio import CustomPayloadSocketIOOutput, ScreenedSocketIOInput


class _FakeSio:
    def __init__(self):
        self.emitted = []

    async def emit(self, event, data=None, room=None, **kwargs):
        assert not kwargs, "a payload's keys must not become emit() arguments"
        self.emitted.append((event, data, room))


def test_custom_payloads_reach_socketio_clients_as_the_message_data():
    sio = _FakeSio()
    output = CustomPayloadSocketIOOutput(sio, "bot_uttered")
    asyncio.run(output.send_response("s1", {"text": "暂未接入人工",
                                            "custom": {"type": "handoff", "status": "unavailable"}}))
    assert sio.emitted == [("bot_uttered", {"text": "暂未接入人工"}, "s1"),
                           ("bot_uttered", {"type": "handoff", "status": "unavailable"}, "s1")]


def test_socketio_output_channel_for_api_sends_is_the_fixed_one():
    channel = ScreenedSocketIOInput.from_credentials({"session_persistence": True})
    assert channel.get_output_channel() is None
    channel.sio = _FakeSio()
    assert isinstance(channel.get_output_channel(), CustomPayloadSocketIOOutput)
