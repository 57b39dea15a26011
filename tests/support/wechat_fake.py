"""A fake WeChat server API for the tests: the access-token and customer-service send endpoints.

It behaves like api.weixin.qq.com where the channel depends on it: tokens are issued for the right
appid/secret only and expire on request (42001), sends need a live token and a well-formed body, and
scripted errors can be queued. Run it in the test's event loop (``await fake.start()``) or, for the
end-to-end tests where the Rasa server is another process, in a thread (``fake.start_in_thread()``).
"""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from aiohttp import web

from bot.ops.servers import LOOPBACK, free_port

_REQUIRED_FIELDS = {
    "text": ("content",),
    "link": ("title", "description", "url", "thumb_url"),
    "miniprogrampage": ("title", "pagepath", "thumb_media_id"),
    "image": ("media_id",),
}


class FakeWeChatApi:
    """The fake server. ``sent`` holds every accepted send body; ``send_attempts`` every send with the token it
    used and the errcode it got; ``token_requests`` counts token calls."""

    def __init__(self, appid: str, secret: str, token_delay: float = 0.0, expires_in: int = 7200) -> None:
        self.appid = appid
        self.secret = secret
        self.token_delay = token_delay
        self.expires_in = expires_in
        self.port = free_port()
        self.token_requests = 0
        self.send_attempts: List[Dict[str, Any]] = []
        self.sent: List[Dict[str, Any]] = []
        self.queued_errors: List[int] = []
        self._live_tokens: set = set()
        self._expired_tokens: set = set()
        self._counter = itertools.count(1)
        self._runner: Optional[web.AppRunner] = None
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    @property
    def base_url(self) -> str:
        """Where the fake listens, e.g. ``http://127.0.0.1:40123`` (the channel's WECHAT_API_BASE_URL)."""
        return f"http://{LOOPBACK}:{self.port}"

    # ------------------------------------------------------------------------------------------ control

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired: sends with it get errcode 42001."""
        self._expired_tokens |= self._live_tokens
        self._live_tokens = set()

    def fail_next_sends(self, *errcodes: int) -> None:
        """The next sends (with a valid token) answer these errcodes, one each."""
        self.queued_errors.extend(errcodes)

    def sent_to(self, openid: str) -> List[Dict[str, Any]]:
        """Accepted messages for ``openid``, in order."""
        return [message for message in list(self.sent) if message.get("touser") == openid]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> bool:
        """Poll ``condition`` (from a test thread) until it holds or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.1)
        return condition()

    async def wait_for_async(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """:meth:`wait_for` for a test running in the fake's own event loop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            await asyncio.sleep(0.02)
        return condition()

    # ---------------------------------------------------------------------------------------- endpoints

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        query = request.query
        if query.get("grant_type") != "client_credential":
            return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
        if query.get("appid") != self.appid:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if query.get("secret") != self.secret:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        token = f"FAKE-TOKEN-{next(self._counter)}"
        self._live_tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": self.expires_in})

    async def _send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"errcode": 47001, "errmsg": "data format error"})
        attempt = {"token": token, "body": body, "errcode": 0}
        self.send_attempts.append(attempt)

        def answer(errcode: int, errmsg: str) -> web.Response:
            attempt["errcode"] = errcode
            return web.json_response({"errcode": errcode, "errmsg": errmsg})

        if token in self._expired_tokens:
            return answer(42001, "access_token expired")
        if token not in self._live_tokens:
            return answer(40001, "invalid credential, access_token is invalid")
        msgtype = body.get("msgtype") if isinstance(body, dict) else None
        content = body.get(msgtype) if isinstance(body, dict) else None
        if not body.get("touser") or msgtype not in _REQUIRED_FIELDS or not isinstance(content, dict) or \
                any(not content.get(name) for name in _REQUIRED_FIELDS[msgtype]):
            return answer(44002, "empty post data or invalid message")
        if self.queued_errors:
            errcode = self.queued_errors.pop(0)
            return answer(errcode, f"scripted error {errcode}")
        self.sent.append(body)
        return answer(0, "ok")

    # ------------------------------------------------------------------------------------------ running

    async def start(self) -> FakeWeChatApi:
        """Serve in the running event loop."""
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()
        return self

    async def stop(self) -> None:
        """Stop serving (from the loop it runs in)."""
        if self._runner is not None:
            await self._runner.cleanup()

    def start_in_thread(self) -> FakeWeChatApi:
        """Serve from a daemon thread with its own event loop; returns once it listens."""
        started = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start())
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.stop())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="fake-wechat-api", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the fake WeChat API did not start")
        return self

    def stop_thread(self) -> None:
        """Stop the thread started by :meth:`start_in_thread`."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
