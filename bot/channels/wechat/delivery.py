"""Deliver bot replies to one WeChat user: render them, send them through the customer-service API, and
remember what the next message needs (numbered options, a hand-over window).

Nothing is lost silently: a reply that cannot be sent (unknown user, API error with its ``errcode``, quota
reached) is logged with the hashed user id and kept as a failure record in the shared store.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence

from rasa.core.channels.channel import OutputChannel

from bot.channels.wechat.api import WeChatApiClient, WeChatApiError
from bot.channels.wechat.render import (
    QUOTA_AFTER_MESSAGE,
    ChannelTexts,
    RenderedTurn,
    RenderOptions,
    channel_texts,
    render_turn,
)
from bot.channels.wechat.store import WeChatStore
from bot.handoff.delivery import AgentMessageNotDelivered

logger = logging.getLogger(__name__)

CHANNEL_NAME = "wechat_miniprogram"
"""The input and output channel name (Rasa's ``input_channel`` of every WeChat message)."""


def short_id(user_id: str) -> str:
    """A hashed user id shortened for logs (``wx-1a2b3c4d…``)."""
    return user_id[:11] + "…"


class WeChatDelivery:
    """Sends replies for one mini-program. ``transfer_window``: seconds a hand-over keeps transferring."""

    def __init__(self, api: WeChatApiClient, store: WeChatStore, options: RenderOptions,
                 transfer_window: float, texts: Optional[ChannelTexts] = None) -> None:
        self.api = api
        self.store = store
        self.options = options
        self.transfer_window = transfer_window
        self.texts = texts or channel_texts()

    async def _failed(self, kind: str, user_id: str, errcode: Optional[int], detail: str) -> None:
        logger.warning("WeChat reply to %s not delivered (%s, errcode %s): %s",
                       short_id(user_id), kind, errcode, detail[:200])
        try:
            await self.store.record_failure(kind, user_id, errcode, detail)
        except Exception:  # noqa: BLE001 - the log line above still records it
            logger.exception("Could not keep the failure record in the WeChat store.")

    async def deliver(self, user_id: str, bot_messages: Sequence[Dict[str, Any]],
                      quota: int = QUOTA_AFTER_MESSAGE, replace_options: bool = True) -> RenderedTurn:
        """Render ``bot_messages`` (one turn) and send them to the user behind ``user_id``.

        Saves the turn's numbered options, or forgets the previous ones if it has none (unless
        ``replace_options`` is False, for the channel's own notices), and, for a hand-over with transfers
        enabled, opens the transfer window. Returns the rendered turn. Never raises for API errors: they
        are logged and recorded.
        """
        turn = render_turn(bot_messages, quota, self.options, self.texts)
        if replace_options or turn.options:
            await self.store.save_options(user_id, turn.options)
        if turn.transfer:
            await self.store.start_transfer(user_id, time.time() + self.transfer_window)
            logger.info("Hand-over for %s: transferring the next messages to WeChat's customer-service tool.",
                        short_id(user_id))
        if turn.dropped:
            await self._failed("quota", user_id, None,
                               f"{turn.dropped} message(s) over the quota of {quota} were not sent")
        if not turn.messages:
            return turn
        openid = await self.store.openid_for(user_id)
        if openid is None:
            await self._failed("no_openid", user_id, None, "no openid is known for this user (expired?)")
            turn.failed += len(turn.messages)
            return turn
        for message in turn.messages:
            try:
                await self.api.send({"touser": openid, **message})
            except WeChatApiError as err:
                turn.failed += 1
                await self._failed(err.stage, user_id, err.errcode,
                                   f"{err.errmsg}; message: {json.dumps(message, ensure_ascii=False)}")
        return turn

    async def send_text(self, user_id: str, text: str, quota: int = QUOTA_AFTER_MESSAGE) -> RenderedTurn:
        """Send one plain text (e.g. the channel's own "please type your question"); the options shown
        before stay answerable."""
        return await self.deliver(user_id, [{"text": text}], quota, replace_options=False)


class TurnCollector(OutputChannel):
    """Collects the complete bot messages of one turn (text, buttons and custom together), for
    :meth:`WeChatDelivery.deliver` to send them in as few WeChat messages as possible."""

    def __init__(self) -> None:
        self.messages: List[Dict[str, Any]] = []

    @classmethod
    def name(cls) -> str:
        """The channel name, as for the input channel."""
        return CHANNEL_NAME

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        """Keep ``message`` as Rasa built it."""
        self.messages.append(dict(message))


class WeChatOutputChannel(OutputChannel):
    """Sends each bot message at once: for messages Rasa sends outside a webhook turn (the HTTP API with
    ``output_channel=latest``, e.g. an agent desk or a reminder)."""

    def __init__(self, delivery: Callable[[], Awaitable[WeChatDelivery]]) -> None:
        self._delivery = delivery
        """Returns the channel's delivery, opening the store and the API client on first use."""

    @classmethod
    def name(cls) -> str:
        """The channel name, as for the input channel."""
        return CHANNEL_NAME

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        """Deliver one message to ``recipient_id`` (a hashed WeChat user id).

        Raises bot.handoff.delivery.AgentMessageNotDelivered when it did not go out (over the customer-service
        quota, no openid, an API error; all logged and recorded as before): Rasa then stores nothing and the
        agent desk reports the message as not delivered instead of sent.
        """
        turn = await (await self._delivery()).deliver(recipient_id, [dict(message)])
        if turn.dropped or turn.failed:
            raise AgentMessageNotDelivered("WeChat did not take the message (quota or API error)")
