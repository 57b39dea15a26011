"""A socket.io client that plays the chat widget in end-to-end tests."""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

import socketio


class Widget:
    """A socket.io client recording every event it gets."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = socketio.AsyncClient(reconnection=False)
        self.bot: List[Dict[str, Any]] = []
        self.refused: List[Dict[str, Any]] = []
        self.confirm: Optional[Dict[str, Any]] = None
        self.client.on("bot_uttered", self.bot.append)
        self.client.on("refused", self.refused.append)
        self.client.on("session_confirm", self._confirmed)

    def _confirmed(self, data: Dict[str, Any]) -> None:
        self.confirm = data

    async def connect(self, headers: Optional[Dict[str, str]] = None) -> None:
        """Connect over long-polling (the widget's fall-back transport), with extra HTTP ``headers``."""
        await self.client.connect(self.url, headers=headers or {}, transports=["polling"],
                                  socketio_path="/socket.io")

    async def request_session(self, data: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Send session_request; the confirmation, or None when it was refused."""
        self.confirm, refused = None, len(self.refused)
        await self.client.emit("session_request", data)
        for _ in range(100):
            if self.confirm is not None or len(self.refused) > refused:
                break
            await asyncio.sleep(0.1)
        return self.confirm

    async def say(self, data: Dict[str, Any], wait: float = 15) -> List[Dict[str, Any]]:
        """Emit user_uttered; what arrived (bot messages or a refusal) within ``wait`` seconds of quiet start."""
        start, refused = len(self.bot), len(self.refused)
        await self.client.emit("user_uttered", data)
        for _ in range(int(wait * 10)):
            if len(self.bot) > start or len(self.refused) > refused:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        return self.bot[start:] + self.refused[refused:]
