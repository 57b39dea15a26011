"""The REST channel records every message as ``rest``, whatever ``input_channel`` the client names."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import List

from rasa.core.channels.channel import UserMessage

from bot.channels.rest import ValidatedRestInput


def test_a_client_named_input_channel_is_ignored():
    request = SimpleNamespace(json={"sender": "u1", "message": "你好", "input_channel": "13812345678"})
    assert ValidatedRestInput()._extract_input_channel(request) == "rest"
    request = SimpleNamespace(json={"sender": "u1", "message": "你好", "input_channel": "socketio"})
    assert ValidatedRestInput()._extract_input_channel(request) == "rest"


def test_the_message_reaching_the_dialogue_names_rest():
    """Through the blueprint's own route handler, as Sanic would call it (no server)."""
    received: List[UserMessage] = []

    async def on_new_message(message: UserMessage) -> None:
        received.append(message)

    blueprint = ValidatedRestInput().blueprint(on_new_message)
    handler = next(route.handler for route in blueprint._future_routes if route.uri == "/webhook")
    body = {"sender": "rest-unit-1", "message": "我手机13812345678", "input_channel": "微信wxid_a1b2c3d4",
            "metadata": {"phone": "13812345678"}}
    request = SimpleNamespace(json=body, args={})
    asyncio.run(handler(request))
    (message,) = received
    assert message.input_channel == "rest"
    assert "13812345678" not in message.text and message.metadata.get("phone") is None
