"""An asyncio client for the two WeChat server APIs the channel needs: the access token and the
customer-service send API.

* ``GET  {base}/cgi-bin/token?grant_type=client_credential&appid=...&secret=...`` ->
  ``{"access_token": "...", "expires_in": 7200}`` (getAccessToken);
* ``POST {base}/cgi-bin/message/custom/send?access_token=...`` with ``{"touser": openid, "msgtype": ...}``
  -> ``{"errcode": 0, "errmsg": "ok"}`` (customerServiceMessage.send / sendCustomMessage).

Why not ``wechatpy.WeChatClient``: it is synchronous (``requests``) and would block the Rasa server's event
loop for every call, and its token refresh is neither shared between servers nor guarded against several
requests refreshing at once. The error codes and the exception type are ``wechatpy``'s
(``WeChatErrorCode``, ``WeChatClientException``).

Token handling:

* cached in the process until ``REFRESH_MARGIN_SECONDS`` before it expires, and shared through the store
  (WeChat's advice: one central token, because fetching a new one invalidates the previous one after about
  five minutes);
* refreshed by one coroutine at a time (an ``asyncio.Lock``): concurrent senders wait and reuse it;
* on ``40001``/``40014``/``42001`` (invalid or expired token) the token is refreshed and the send retried
  once; on ``-1`` (system busy) the send is retried once after a second. Every other error is raised as
  :class:`WeChatApiError` with WeChat's ``errcode`` for the caller to log and record.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Dict, Optional

import aiohttp
from wechatpy.constants import WeChatErrorCode
from wechatpy.exceptions import WeChatClientException

from bot.channels.wechat.store import WeChatStore

logger = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 300
"""A token is replaced this long before WeChat says it expires (tokens live 7,200 s)."""

TOKEN_ERRORS = frozenset({
    WeChatErrorCode.INVALID_CREDENTIAL.value,     # 40001
    WeChatErrorCode.INVALID_ACCESS_TOKEN.value,   # 40014
    WeChatErrorCode.EXPIRED_ACCESS_TOKEN.value,   # 42001
})
"""``errcode`` values that mean "fetch a new access token and try again"."""

SYSTEM_BUSY = WeChatErrorCode.SYSTEM_BUSY.value
"""``-1``: WeChat asks to retry a little later."""

REQUEST_TIMEOUT_SECONDS = 10.0
"""Timeout of one API call, connection included."""


class WeChatApiError(WeChatClientException):
    """A failed API call. ``errcode`` is WeChat's code, or None for a transport or HTTP error;
    ``stage`` is ``token`` or ``send``."""

    def __init__(self, errcode: Optional[int], errmsg: str, stage: str) -> None:
        super().__init__(errcode, errmsg)
        self.stage = stage

    def __str__(self) -> str:
        return f"WeChat {self.stage} API error {self.errcode}: {self.errmsg}"


class WeChatApiClient:
    """The token cache and the send API of one mini-program (``appid``/``appsecret``) at ``base_url``."""

    def __init__(self, appid: str, appsecret: str, base_url: str, store: Optional[WeChatStore] = None,
                 refresh_margin: float = REFRESH_MARGIN_SECONDS, busy_retry_delay: float = 1.0) -> None:
        self.appid = appid
        self._secret = appsecret
        self.base_url = base_url.rstrip("/")
        self._store = store
        self._refresh_margin = refresh_margin
        self._busy_retry_delay = busy_retry_delay
        self._token: Optional[str] = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._session: Optional[aiohttp.ClientSession] = None
        self.tokens_fetched = 0
        """How many tokens this client fetched from WeChat (for tests and monitoring)."""

    def _usable(self, token: Optional[str], expires_at: float, rejected: Optional[str]) -> bool:
        return bool(token) and token != rejected and expires_at - self._refresh_margin > time.time()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS))
        return self._session

    async def _call(self, stage: str, method: str, path: str, params: Dict[str, str],
                    body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {} if body is None else {"Content-Type": "application/json; charset=utf-8"}
        try:
            async with self._http().request(method, self.base_url + path, params=params, data=data,
                                            headers=headers) as answer:
                raw = await answer.read()
                if answer.status != 200:
                    raise WeChatApiError(None, f"HTTP {answer.status}", stage)
        except (TimeoutError, aiohttp.ClientError) as err:
            raise WeChatApiError(None, f"{type(err).__name__}: {err}", stage) from None
        try:
            result = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise WeChatApiError(None, "the answer is not JSON", stage) from None
        if not isinstance(result, dict):
            raise WeChatApiError(None, "the answer is not a JSON object", stage)
        return result

    async def _shared_token(self) -> Optional[tuple]:
        if self._store is None:
            return None
        try:
            return await self._store.load_token(self.appid)
        except Exception:  # noqa: BLE001 - the store is an optimisation here; fetch instead
            logger.exception("Could not read the shared WeChat access token; fetching one.")
            return None

    async def _fetch_token(self) -> None:
        result = await self._call("token", "GET", "/cgi-bin/token",
                                  {"grant_type": "client_credential", "appid": self.appid, "secret": self._secret})
        token, expires_in = result.get("access_token"), result.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise WeChatApiError(result.get("errcode"), str(result.get("errmsg") or "no access_token"), "token")
        self._token, self._expires_at = token, time.time() + expires_in
        self.tokens_fetched += 1
        logger.info("Fetched a WeChat access token (valid %d s).", expires_in)
        if self._store is not None:
            try:
                await self._store.save_token(self.appid, token, self._expires_at)
            except Exception:  # noqa: BLE001
                logger.exception("Could not share the WeChat access token through the store.")

    async def access_token(self, rejected: Optional[str] = None) -> str:
        """A valid access token: the cached one, the one another server shared, or a freshly fetched one.

        ``rejected``: a token WeChat just refused (40001/42001); it is never returned again. Concurrent
        callers share one refresh. Raises WeChatApiError (stage ``token``) if WeChat refuses to issue one.
        """
        if self._usable(self._token, self._expires_at, rejected):
            return self._token  # type: ignore[return-value]
        async with self._lock:
            if self._usable(self._token, self._expires_at, rejected):
                return self._token  # type: ignore[return-value]
            shared = await self._shared_token()
            if shared and self._usable(shared[0], shared[1], rejected):
                self._token, self._expires_at = shared
            else:
                await self._fetch_token()
            return self._token  # type: ignore[return-value]

    async def send(self, message: Dict[str, Any]) -> None:
        """Send one customer-service message (``{"touser": openid, "msgtype": ..., <msgtype>: {...}}``).

        Retries once after refreshing the token on 40001/40014/42001, and once after a pause on -1.
        Raises WeChatApiError with WeChat's errcode (e.g. 45015: the 48-hour reply window has passed;
        45047: too many replies to one user message) or None for transport errors.
        """
        token = await self.access_token()
        result = await self._call("send", "POST", "/cgi-bin/message/custom/send", {"access_token": token}, message)
        errcode = int(result.get("errcode") or 0)
        if errcode in TOKEN_ERRORS:
            logger.info("WeChat refused the access token (errcode %s); refreshing it and retrying once.", errcode)
            token = await self.access_token(rejected=token)
            result = await self._call("send", "POST", "/cgi-bin/message/custom/send", {"access_token": token},
                                      message)
        elif errcode == SYSTEM_BUSY:
            logger.info("WeChat is busy (errcode -1); retrying the send once.")
            await asyncio.sleep(self._busy_retry_delay)
            result = await self._call("send", "POST", "/cgi-bin/message/custom/send", {"access_token": token},
                                      message)
        errcode = int(result.get("errcode") or 0)
        if errcode != 0:
            raise WeChatApiError(errcode, str(result.get("errmsg") or ""), "send")

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
