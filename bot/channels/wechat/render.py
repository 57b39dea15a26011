"""Render the bot's messages for one turn as WeChat customer-service messages. Pure functions, no I/O.

Input: the message dicts Rasa hands an output channel (``text``, ``buttons``, ``quick_replies``, ``custom``,
``image``, ``attachment``, ...). Output: bodies for the send API (without ``touser``), in order:

* texts are joined into as few ``text`` messages as fit (WeChat limits how many replies one user message
  may get, see the quotas below);
* buttons become numbered options under the text ("回复序号即可选择：" then "1. title"); the user answers
  with the number, and :func:`selected_payload` maps it back to the button's payload;
* a button that carries a web URL becomes a ``link`` card (when ``WECHAT_LINK_THUMB_URL`` gives its
  picture, which WeChat requires) or a "title：URL" line; one that carries a mini-program page
  (``pages/...``) becomes a ``miniprogrampage`` card (with ``WECHAT_PAGE_THUMB_MEDIA_ID``) or a text link
  to the page (``<a data-miniprogram-appid=... data-miniprogram-path=...>``, documented for text messages);
* ``custom`` payloads (docs/channels/payloads.md) are skipped, since the text of the same response says the
  same; a custom payload alone uses its ``fallback_text``; ``handoff`` with ``status: queued`` asks for a
  transfer to WeChat's customer-service tool (the channel decides whether it is enabled).

Message formats: developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/mp-message-management/customer-message/
api_send_msg_custom.html. Quotas (发送客服消息 rules for mini-programs): 5 messages within 48 h after a user
message; 1 message within 1 minute after the user opens the conversation (``user_enter_tempsession``).
"""
from __future__ import annotations

import html
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from bot.texts import CHANNEL_TEXTS_DIR
from bot.texts import channel_texts as read_channel_texts

logger = logging.getLogger(__name__)

TEXTS_CHANNEL = "wechat"
"""The channel's name in ``data/channels/`` (``bot.texts.channel_texts``)."""

TEXTS_FILE = CHANNEL_TEXTS_DIR / f"{TEXTS_CHANNEL}.yml"
"""The channel's own texts (not domain responses: a domain file would be a training input)."""

QUOTA_AFTER_MESSAGE = 5
"""Customer-service messages allowed after one user message (within 48 hours)."""

QUOTA_AFTER_ENTER_SESSION = 1
"""Customer-service messages allowed after the user opens the conversation (within 1 minute)."""

MAX_TEXT_BYTES = 2000
"""Largest ``text`` message sent, in UTF-8 bytes. The mini-program docs give no limit; the official-account
docs cap text replies at 2,048 bytes, so longer texts are split at paragraph or line boundaries."""

_WEB_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)
_PAGE_PATH = re.compile(r"^/?pages/[\w\-./?=&%]+$")


@dataclass(frozen=True)
class ChannelTexts:
    """The channel's own texts from data/channels/wechat.yml (Chinese, no digits)."""

    text_only: str
    """The answer to a picture, a mini-program card or any other message that is not text."""
    options_intro: str
    """The line before the numbered options."""
    transfer_started: str
    """Sent after a hand-over when transfers to WeChat's customer-service tool are on."""

    @classmethod
    def from_texts(cls, texts: Mapping[str, str], source: str = TEXTS_FILE.name) -> ChannelTexts:
        """The three texts from ``texts`` (key -> text, as ``bot.texts.channel_texts`` returns them).

        Raises ValueError naming ``source`` and the key if a text is missing or empty.
        """
        values = {}
        for name in ("text_only", "options_intro", "transfer_started"):
            value = texts.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{source}: {name}: a non-empty text is required")
            values[name] = value.strip()
        return cls(**values)

    @classmethod
    def load(cls) -> ChannelTexts:
        """The project's texts, read through ``bot.texts.channel_texts("wechat")`` (which caches the file).

        Raises bot.texts.TextsError (a ValueError) if the file is missing or not a mapping of non-empty texts,
        ValueError if one of the three texts is missing.
        """
        return cls.from_texts(read_channel_texts(TEXTS_CHANNEL))


def channel_texts() -> ChannelTexts:
    """The project's channel texts (see :meth:`ChannelTexts.load`)."""
    return ChannelTexts.load()


@dataclass(frozen=True)
class RenderOptions:
    """What rendering needs from the settings."""

    appid: str = ""
    link_thumb_url: str = ""
    page_thumb_media_id: str = ""
    transfer_to_kf: bool = False
    max_text_bytes: int = MAX_TEXT_BYTES


@dataclass
class RenderedTurn:
    """The send API bodies for one turn (without ``touser``) and what the channel must remember."""

    messages: List[Dict[str, Any]] = field(default_factory=list)
    options: List[str] = field(default_factory=list)
    """Payloads of the numbered options shown: option n is ``options[n-1]``."""
    transfer: bool = False
    """The turn handed the user to a human (``handoff``/``queued``) and transfers are enabled."""
    dropped: int = 0
    """Messages left out because the quota was reached (logged by the caller)."""
    failed: int = 0
    """Messages that could not be sent (no openid, an API error), counted by the delivery."""


@dataclass(frozen=True)
class _Card:
    message: Dict[str, Any]
    as_text: str


_Item = Union[str, _Card]


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _split_long(text: str, limit: int) -> List[str]:
    """``text`` in pieces of at most ``limit`` bytes, cut at line breaks where possible."""
    pieces: List[str] = []
    current = ""
    for line in text.split("\n"):
        while _utf8_len(line) > limit:  # one line longer than a message: cut it by characters
            cut = len(line.encode("utf-8")[:limit].decode("utf-8", "ignore"))
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:cut])
            line = line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if _utf8_len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def _pack_texts(blocks: Iterable[str], limit: int) -> List[str]:
    """Join text blocks with blank lines into as few texts of at most ``limit`` bytes as possible."""
    packed: List[str] = []
    current = ""
    for block in blocks:
        for piece in _split_long(block, limit) if _utf8_len(block) > limit else [block]:
            candidate = f"{current}\n\n{piece}" if current else piece
            if _utf8_len(candidate) > limit:
                packed.append(current)
                current = piece
            else:
                current = candidate
    if current:
        packed.append(current)
    return packed


def _url_card(title: str, url: str, description: str, options: RenderOptions) -> _Card:
    as_text = f"{title}：{url}" if title else url
    if _PAGE_PATH.match(url):
        path = url.lstrip("/")
        as_text = (f'<a data-miniprogram-appid="{html.escape(options.appid)}" '
                   f'data-miniprogram-path="{html.escape(path)}">{html.escape(title or path)}</a>')
        if options.page_thumb_media_id:
            return _Card({"msgtype": "miniprogrampage",
                          "miniprogrampage": {"title": title or path, "pagepath": path,
                                              "thumb_media_id": options.page_thumb_media_id}}, as_text)
        return _Card({}, as_text)
    if options.link_thumb_url:
        return _Card({"msgtype": "link",
                      "link": {"title": title or url, "description": description or title or url, "url": url,
                               "thumb_url": options.link_thumb_url}}, as_text)
    return _Card({}, as_text)


def _button_url(button: Dict[str, Any]) -> Optional[str]:
    for candidate in (button.get("url"), button.get("payload")):
        if isinstance(candidate, str) and (_WEB_URL.match(candidate) or _PAGE_PATH.match(candidate)):
            return candidate
    return None


def _items(bot_messages: Sequence[Dict[str, Any]], options: RenderOptions, texts: ChannelTexts,
           turn: RenderedTurn) -> List[_Item]:
    items: List[_Item] = []
    for message in bot_messages:
        raw_text = message.get("text")
        text: str = raw_text if isinstance(raw_text, str) else ""
        custom = message.get("custom")
        if isinstance(custom, dict):
            if custom.get("type") == "handoff" and custom.get("status") == "queued" and options.transfer_to_kf:
                turn.transfer = True
            elif not text.strip() and isinstance(custom.get("fallback_text"), str):
                text = custom["fallback_text"]
        lines = [text.strip()] if text.strip() else []
        cards: List[_Card] = []
        numbered: List[str] = []
        for button in (message.get("buttons") or message.get("quick_replies") or []):
            if not isinstance(button, dict):
                continue
            title = str(button.get("title") or "").strip()
            url = _button_url(button)
            if url:
                cards.append(_url_card(title, url, text.strip()[:120], options))
                continue
            payload = button.get("payload")
            if not isinstance(payload, str) or not payload or not title:
                continue
            turn.options.append(payload)
            numbered.append(f"{len(turn.options)}. {title}")
        if numbered:
            lines += [texts.options_intro, *numbered]
        for key in ("image", "attachment"):
            value = message.get(key)
            if isinstance(value, str) and _WEB_URL.match(value):
                lines.append(value)
        if message.get("elements"):
            logger.debug("Skipped carousel elements: the WeChat channel renders text, buttons and links only.")
        if lines:
            items.append("\n".join(lines))
        for card in cards:
            items.append(card if card.message else card.as_text)
    if turn.transfer:
        items.append(texts.transfer_started)
    return items


def _messages(items: Sequence[_Item], limit: int) -> List[Dict[str, Any]]:
    messages: List[Dict[str, Any]] = []
    pending: List[str] = []
    for item in [*items, None]:  # None: flush the texts still pending
        if isinstance(item, str):
            pending.append(item)
            continue
        messages += [{"msgtype": "text", "text": {"content": text}} for text in _pack_texts(pending, limit)]
        pending = []
        if isinstance(item, _Card):
            messages.append(item.message)
    return messages


def render_turn(bot_messages: Sequence[Dict[str, Any]], quota: int, options: RenderOptions,
                texts: Optional[ChannelTexts] = None) -> RenderedTurn:
    """Render one turn's bot messages into at most ``quota`` send API bodies (see the module docstring).

    If the cards do not fit the quota they are sent as text lines instead; if even the texts do not fit,
    the last ones are left out and counted in ``dropped``.
    """
    texts = texts or channel_texts()
    turn = RenderedTurn()
    items = _items(bot_messages, options, texts, turn)
    messages = _messages(items, options.max_text_bytes)
    if len(messages) > quota:
        as_text = [item.as_text if isinstance(item, _Card) else item for item in items]
        messages = _messages(as_text, options.max_text_bytes)
    if len(messages) > quota:
        turn.dropped = len(messages) - quota
        messages = messages[:quota]
    turn.messages = messages
    return turn


def selected_payload(text: str, options: Sequence[str]) -> Optional[str]:
    """The payload of option ``text`` ("2", "２", "2." ...) if it names one of ``options``, else None."""
    normalised = unicodedata.normalize("NFKC", text or "").strip().strip(".。、)）(（ ")
    if not normalised.isdigit() or len(normalised) > 2:
        return None
    number = int(normalised)
    if 1 <= number <= len(options):
        return options[number - 1]
    return None
