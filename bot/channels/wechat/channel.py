"""The WeChat mini-program customer-service channel (``/webhooks/wechat_miniprogram/webhook``).

A user taps the mini-program's ``<button open-type="contact">`` and writes; WeChat pushes each message to
this webhook, waits five seconds for an answer and retries up to three times. So the channel:

1. checks the request (signature, timestamp, decryption, AppID, format, size; see ``push``) and
   refuses a bad one with its 4xx before anything reaches the dialogue;
2. remembers the request's nonce in the shared store (``store``) for the timestamp window and refuses (403) a
   nonce that comes back with another body (a replayed signed query), and records the push so that a retry,
   on this server or another, is acknowledged without a second reply;
3. answers ``success`` at once and processes the message in the background: the openid becomes a keyed
   hash (``security``), the text goes through ``guard_messages`` (PII masking, limits) to the
   dialogue, and the replies go out through the customer-service send API (``delivery``);
4. during a hand-over window (``WECHAT_TRANSFER_TO_KF``) answers the user's messages with WeChat's
   ``transfer_customer_service`` passive reply instead, which forwards them to WeChat's customer-service
   tool (网页版客服工具 / 客服小助手).

What each push type gets: ``text`` goes to the dialogue (a number answering numbered options becomes that
option's payload); the ``user_enter_tempsession`` event is sent to the dialogue as ``/greet`` (the greeting
with the main topics); ``image``, ``miniprogrampage`` and any other message type get the channel's polite
"please type your question"; other events are acknowledged and ignored.

Settings come from the environment (``settings``). Without them the webhook answers 503 with the
reason and the other channels run normally.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Set, Tuple

import xmltodict
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request

from bot.channels.guard import OnNewMessage, guard_messages
from bot.channels.wechat.api import WeChatApiClient
from bot.channels.wechat.delivery import (
    CHANNEL_NAME,
    TurnCollector,
    WeChatDelivery,
    WeChatOutputChannel,
    short_id,
)
from bot.channels.wechat.push import ENTER_SESSION_EVENT, Push, read_push, verify_url
from bot.channels.wechat.render import (
    QUOTA_AFTER_ENTER_SESSION,
    QUOTA_AFTER_MESSAGE,
    RenderOptions,
    channel_texts,
    selected_payload,
)
from bot.channels.wechat.security import PushCrypto, PushRejected
from bot.channels.wechat.security import user_id as hashed_user_id
from bot.channels.wechat.settings import WeChatSettings, aes_key_problem
from bot.channels.wechat.store import WeChatStore, open_store

logger = logging.getLogger(__name__)

GREET_PAYLOAD = "/greet"
"""What the dialogue receives when the user opens the conversation."""

SHUTDOWN_GRACE_SECONDS = 10.0
"""How long a stopping server waits for messages still being processed."""

Reply = Tuple[int, str, str]
"""An HTTP answer: status, body, content type."""


def _json_error(status: int, reason: str) -> Reply:
    return status, json.dumps({"error": reason}, ensure_ascii=False), "application/json"


SUCCESS: Reply = (200, "success", "text/plain; charset=utf-8")
"""The acknowledgement WeChat expects (it then does not retry)."""


class RedactWebhookQuery(logging.Filter):
    """Removes the query string of this channel's requests from Sanic's access log: WeChat puts the user's
    openid (and the signatures) in it. Installed on the ``sanic.access`` logger by the channel."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record.request`` (``"POST http://host/webhooks/wechat_miniprogram/webhook?..."``)."""
        request = getattr(record, "request", None)
        if isinstance(request, str) and f"/webhooks/{CHANNEL_NAME}/" in request and "?" in request:
            record.request = request.split("?", 1)[0] + "?[redacted]"
        return True


def install_access_log_redaction() -> None:
    """Add :class:`RedactWebhookQuery` to the ``sanic.access`` logger (once)."""
    access_logger = logging.getLogger("sanic.access")
    if not any(isinstance(existing, RedactWebhookQuery) for existing in access_logger.filters):
        access_logger.addFilter(RedactWebhookQuery())


class WeChatService:
    """The channel's logic, independent of Sanic: answer verification GETs and pushes, process messages.

    ``on_new_message``: Rasa's callback (the channel wraps it with ``guard_messages``). The store and the API
    client are opened on first use, inside the server's event loop; ``store`` may be injected (tests).
    """

    def __init__(self, settings: WeChatSettings, on_new_message: Optional[OnNewMessage] = None,
                 store: Optional[WeChatStore] = None) -> None:
        self.settings = settings
        self.problems = settings.problems()
        self._on_new_message = guard_messages(on_new_message) if on_new_message else None
        self.crypto: Optional[PushCrypto] = None
        if not self.problems and settings.encoding_aes_key and not aes_key_problem(settings.encoding_aes_key):
            self.crypto = PushCrypto(settings.token, settings.encoding_aes_key, settings.appid)
        self.store = store
        self.api: Optional[WeChatApiClient] = None
        self.delivery: Optional[WeChatDelivery] = None
        self._open_lock: Optional[asyncio.Lock] = None
        self._tasks: Set[asyncio.Task] = set()
        self._user_locks: Dict[str, List[Any]] = {}

    @property
    def configured(self) -> bool:
        """Whether the settings are complete (otherwise every webhook request gets 503)."""
        return not self.problems

    def _not_configured(self) -> Reply:
        return _json_error(503, "; ".join(self.problems))

    async def ready(self) -> WeChatDelivery:
        """Open the store (a SQL one is migrated first, in a worker thread), the API client and the delivery,
        once. Raises the store's error if it is unreachable; the next call tries again."""
        if self.delivery is not None:
            return self.delivery
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self.delivery is None:
                if self.store is None:
                    self.store = await asyncio.to_thread(open_store, self.settings.store_url)
                self.api = WeChatApiClient(self.settings.appid, self.settings.appsecret,
                                           self.settings.api_base_url, self.store)
                options = RenderOptions(appid=self.settings.appid, link_thumb_url=self.settings.link_thumb_url,
                                        page_thumb_media_id=self.settings.page_thumb_media_id,
                                        transfer_to_kf=self.settings.transfer_to_kf)
                self.delivery = WeChatDelivery(self.api, self.store, options,
                                               self.settings.transfer_window_seconds)
        return self.delivery

    def user_id(self, openid: str) -> str:
        """The Rasa sender id of ``openid`` (keyed hash, see ``security``)."""
        return hashed_user_id(openid, self.settings.id_hash_key)

    # ------------------------------------------------------------------------------------------ requests

    def answer_verification(self, params: Mapping[str, str]) -> Reply:
        """Answer the console's URL verification GET: ``echostr`` if the signature is right, else 4xx."""
        if not self.configured:
            return self._not_configured()
        try:
            return 200, verify_url(params, self.settings), "text/plain; charset=utf-8"
        except PushRejected as rejected:
            logger.info("Refused a WeChat URL verification: %s (%s)", rejected.reason, rejected.status)
            return _json_error(rejected.status, rejected.reason)

    async def answer_push(self, params: Mapping[str, str], body: bytes) -> Reply:
        """Check, deduplicate and acknowledge one push; start processing it in the background.

        Returns ``success`` (also for a retry already handled), a passive ``transfer_customer_service``
        reply during a hand-over window, a 4xx for a bad request, or 503 if not configured or the store
        is unreachable.
        """
        if not self.configured:
            return self._not_configured()
        try:
            push = read_push(params, body, self.settings, self.crypto)
        except PushRejected as rejected:
            logger.info("Refused a WeChat push: %s (%s)", rejected.reason, rejected.status)
            return _json_error(rejected.status, rejected.reason)
        uid = self.user_id(push.openid)
        try:
            delivery = await self.ready()
            nonce_key = f"{self.settings.appid}:{params.get('timestamp')}:{params.get('nonce')}"
            if not await delivery.store.remember_nonce(nonce_key, hashlib.sha256(body).hexdigest()):
                logger.info("Refused a WeChat push that reused a nonce with another body (a replay).")
                return _json_error(403, "'nonce' was already used with another request (replayed request)")
            transfer = (push.msg_type != "event" and self.settings.transfer_to_kf
                        and await delivery.store.transfer_active(uid))
            if not await delivery.store.claim(f"{self.settings.appid}:{push.dedup_key}"):
                logger.info("Ignored a repeated WeChat push (%s) from %s.", push.msg_type, short_id(uid))
                return SUCCESS
        except Exception:  # noqa: BLE001 - database or Redis down: WeChat will retry
            logger.exception("The WeChat store is unavailable; refusing the push so that WeChat retries it.")
            return _json_error(503, "the WeChat channel's store (WECHAT_STORE_URL) is unavailable")
        if transfer:
            self._in_background(delivery.store.remember_openid(uid, push.openid), uid)
            logger.info("Transferred a message from %s to WeChat's customer-service tool.", short_id(uid))
            return self._transfer_reply(push)
        self._in_background(self.process(push, uid), uid)
        return SUCCESS

    def _transfer_reply(self, push: Push) -> Reply:
        reply = {"ToUserName": push.openid, "FromUserName": push.original_id, "CreateTime": int(time.time()),
                 "MsgType": "transfer_customer_service"}
        if self.settings.data_format == "xml":
            body, content_type = xmltodict.unparse({"xml": reply}, full_document=False), "application/xml"
        else:
            body, content_type = json.dumps(reply), "application/json"
        if push.encrypted and self.crypto is not None:
            body = self.crypto.encrypted_reply(body, self.settings.data_format, nonce=secrets.token_hex(8))
        return 200, body, content_type

    # ---------------------------------------------------------------------------------------- processing

    def _in_background(self, work: Awaitable[Any], uid: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:  # noqa: BLE001 - keep the record, never crash the server
                logger.exception("Processing a WeChat message from %s failed.", short_id(uid))
                if self.store is not None:
                    try:
                        await self.store.record_failure("processing", uid, None, "processing raised; see the log")
                    except Exception:  # noqa: BLE001
                        logger.exception("Could not keep the failure record in the WeChat store.")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _locked(self, uid: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` after the user's earlier messages (in arrival order) on this server."""
        entry = self._user_locks.setdefault(uid, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                await work()
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._user_locks.pop(uid, None)

    async def process(self, push: Push, uid: str) -> None:
        """Handle one accepted push: pass it to the dialogue (or answer it directly) and send the replies."""
        delivery = await self.ready()

        async def work() -> None:
            await delivery.store.remember_openid(uid, push.openid)
            metadata: Dict[str, Any] = {"wechat_msg_type": push.msg_type}
            if push.msg_type == "text":
                text, quota = push.content, QUOTA_AFTER_MESSAGE
                payload = selected_payload(text, await delivery.store.load_options(uid))
                if payload is not None:
                    metadata["wechat_option"] = text.strip()
                    text = payload
            elif push.msg_type == "event":
                if push.event != ENTER_SESSION_EVENT:
                    logger.debug("Ignored WeChat event %r.", push.event)
                    return
                text, quota = GREET_PAYLOAD, QUOTA_AFTER_ENTER_SESSION
                metadata["wechat_event"] = push.event
            else:
                await delivery.send_text(uid, channel_texts().text_only)
                return
            if self._on_new_message is None:
                raise RuntimeError("the WeChat channel has no dialogue callback")
            collector = TurnCollector()
            await self._on_new_message(UserMessage(text, collector, uid, input_channel=CHANNEL_NAME,
                                                   message_id=push.msg_id, metadata=metadata))
            await delivery.deliver(uid, collector.messages, quota)

        await self._locked(uid, work)

    async def drain(self, timeout: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Wait up to ``timeout`` seconds for messages still being processed."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        """Finish pending work (bounded), then close the API session and the store."""
        await self.drain()
        if self.api is not None:
            await self.api.close()
        if self.store is not None:
            await self.store.close()


class WeChatMiniProgramInput(InputChannel):
    """Rasa input channel ``wechat_miniprogram``; register it in credentials.yml as
    ``bot.channels.wechat.channel.WeChatMiniProgramInput`` (settings come from ``WECHAT_*``)."""

    def __init__(self, settings: Optional[WeChatSettings] = None) -> None:
        self.settings = settings or WeChatSettings.from_env()
        self.service: Optional[WeChatService] = None

    @classmethod
    def name(cls) -> str:
        """``wechat_miniprogram`` (the URL prefix and the ``input_channel`` of its messages)."""
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> WeChatMiniProgramInput:
        """Build the channel from the environment. The credentials.yml block only documents the variables:
        Rasa refuses to start on an unset ``${VAR}``, and the channel must start without its settings."""
        return cls(WeChatSettings.from_env())

    def get_output_channel(self) -> Optional[OutputChannel]:
        """Output for messages Rasa sends outside a webhook turn (``output_channel=latest``)."""
        if self.service is None or not self.service.configured:
            return None
        service = self.service

        async def delivery() -> WeChatDelivery:
            return await service.ready()

        return WeChatOutputChannel(delivery)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Routes: ``GET /`` (status), ``GET /webhook`` (URL verification), ``POST /webhook`` (pushes)."""
        service = WeChatService(self.settings, on_new_message)
        self.service = service
        install_access_log_redaction()
        if not service.configured:
            level = logging.INFO if len(service.problems) == 1 and "not configured" in service.problems[0] \
                else logging.ERROR
            logger.log(level, "WeChat mini-program channel disabled (webhook answers 503): %s",
                       "; ".join(service.problems))
        blueprint = Blueprint("wechat_miniprogram_webhook", __name__)

        def params_of(request: Request) -> Dict[str, str]:
            return {name: request.args.get(name) for name in request.args}

        def as_response(reply: Reply) -> response.HTTPResponse:
            status, body, content_type = reply
            return response.text(body, status=status, content_type=content_type)

        @blueprint.route("/", methods=["GET"])
        async def health(request: Request) -> response.HTTPResponse:
            if service.configured:
                return response.json({"status": "ok", "mode": self.settings.mode,
                                      "data_format": self.settings.data_format})
            return response.json({"status": "not_configured", "problems": service.problems}, status=503)

        @blueprint.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> response.HTTPResponse:
            return as_response(service.answer_verification(params_of(request)))

        @blueprint.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> response.HTTPResponse:
            return as_response(await service.answer_push(params_of(request), request.body or b""))

        @blueprint.listener("before_server_stop")
        async def stop(app: Any, loop: Any) -> None:
            await service.close()

        return blueprint

