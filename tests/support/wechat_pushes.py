"""Build signed (and, in safe or compatible mode, encrypted) WeChat pushes, as WeChat would send them.

Used by the tests and, from the command line, to replay a push against a local server::

    python -m tests.support.wechat_pushes --text "有人说交钱能帮我征信修复"          # print a curl command
    python -m tests.support.wechat_pushes --text "你好" --send                      # send it and print the answer
    python -m tests.support.wechat_pushes --event user_enter_tempsession --send

The settings are the server's (``WECHAT_TOKEN``, ``WECHAT_APPID``, ``WECHAT_ENCODING_AES_KEY``,
``WECHAT_MODE``, ``WECHAT_DATA_FORMAT`` from the environment), so the request passes its checks. The
signature includes the current time: a printed request is accepted for five minutes.
"""
from __future__ import annotations

import argparse
import json
import secrets
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Optional, Tuple

import xmltodict

from bot.channels.wechat.security import PushCrypto, sign
from bot.channels.wechat.settings import WeChatSettings

SAMPLE_OPENID = "oSample-openid-0000000000000"
"""A made-up openid (real ones are 28 characters of base64url)."""

SAMPLE_ORIGINAL_ID = "gh_0000sample"
"""A made-up mini-program original id (``ToUserName`` of every push)."""


def text_message(openid: str, content: str, msg_id: Optional[int] = None,
                 create_time: Optional[int] = None) -> Dict[str, Any]:
    """A ``text`` push (fields as in WeChat's documentation)."""
    return {"ToUserName": SAMPLE_ORIGINAL_ID, "FromUserName": openid,
            "CreateTime": create_time or int(time.time()), "MsgType": "text", "Content": content,
            "MsgId": msg_id if msg_id is not None else secrets.randbits(62)}


def event_message(openid: str, event: str = "user_enter_tempsession", create_time: Optional[int] = None,
                  **extra: Any) -> Dict[str, Any]:
    """An ``event`` push, by default the one sent when the user opens the conversation."""
    return {"ToUserName": SAMPLE_ORIGINAL_ID, "FromUserName": openid,
            "CreateTime": create_time or int(time.time()), "MsgType": "event", "Event": event,
            "SessionFrom": "", **extra}


def media_message(openid: str, msg_type: str = "image", msg_id: Optional[int] = None) -> Dict[str, Any]:
    """An ``image`` or ``miniprogrampage`` push."""
    fields: Dict[str, Any] = {"PicUrl": "https://example.invalid/p.jpg", "MediaId": "sample-media"}
    if msg_type == "miniprogrampage":
        fields = {"Title": "sample", "AppId": "wx0000sample", "PagePath": "pages/index/index",
                  "ThumbUrl": "", "ThumbMediaId": "sample-media"}
    return {"ToUserName": SAMPLE_ORIGINAL_ID, "FromUserName": openid, "CreateTime": int(time.time()),
            "MsgType": msg_type, "MsgId": msg_id if msg_id is not None else secrets.randbits(62), **fields}


def encode(document: Dict[str, Any], data_format: str) -> str:
    """``document`` as a JSON object or an ``<xml>`` document."""
    if data_format == "xml":
        return xmltodict.unparse({"xml": document}, full_document=False)
    return json.dumps(document, ensure_ascii=False)


def signed_request(settings: WeChatSettings, document: Dict[str, Any], encrypt: Optional[bool] = None,
                   timestamp: Optional[int] = None, nonce: Optional[str] = None) -> Tuple[Dict[str, str], bytes]:
    """The query parameters and body of a push of ``document``, signed with ``settings.token``.

    ``encrypt``: default True unless the mode is plaintext. An encrypted push carries ``Encrypt`` (plus the
    plaintext fields in compatible mode) and ``encrypt_type=aes`` / ``msg_signature``, as WeChat sends it.
    """
    timestamp_text = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**9))
    params = {"signature": sign(settings.token, timestamp_text, nonce), "timestamp": timestamp_text,
              "nonce": nonce, "openid": str(document.get("FromUserName", ""))}
    if encrypt is None:
        encrypt = settings.mode != "plaintext"
    if not encrypt:
        return params, encode(document, settings.data_format).encode("utf-8")
    crypto = PushCrypto(settings.token, settings.encoding_aes_key, settings.appid)
    ciphertext = crypto.encrypt(encode(document, settings.data_format))
    outer: Dict[str, Any] = {"ToUserName": document.get("ToUserName", SAMPLE_ORIGINAL_ID), "Encrypt": ciphertext}
    if settings.mode == "compatible":
        outer = {**document, "Encrypt": ciphertext}
    params.update(encrypt_type="aes", msg_signature=sign(settings.token, timestamp_text, nonce, ciphertext))
    return params, encode(outer, settings.data_format).encode("utf-8")


def signed_verification(settings: WeChatSettings, echostr: str = "sample-echostr",
                        timestamp: Optional[int] = None) -> Dict[str, str]:
    """Query parameters of the console's URL verification GET."""
    timestamp_text = str(timestamp if timestamp is not None else int(time.time()))
    nonce = str(secrets.randbelow(10**9))
    return {"signature": sign(settings.token, timestamp_text, nonce), "timestamp": timestamp_text,
            "nonce": nonce, "echostr": echostr}


def main(argv: Optional[list] = None) -> int:
    """Print (or send) one signed push for the server configured by the ``WECHAT_*`` environment."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.wechat_pushes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:5005/webhooks/wechat_miniprogram/webhook")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--text", help="a text message (default: 你好)")
    kind.add_argument("--event", help="an event, e.g. user_enter_tempsession")
    kind.add_argument("--image", action="store_true", help="an image message")
    parser.add_argument("--openid", default=SAMPLE_OPENID)
    parser.add_argument("--send", action="store_true", help="send it and print the answer")
    args = parser.parse_args(argv)
    settings = WeChatSettings.from_env()
    if not settings.token or (settings.mode != "plaintext" and not (settings.encoding_aes_key and settings.appid)):
        print("Set WECHAT_TOKEN (and, unless WECHAT_MODE=plaintext, WECHAT_APPID and WECHAT_ENCODING_AES_KEY) "
              "to the server's values.", file=sys.stderr)
        return 2
    if args.event:
        document = event_message(args.openid, args.event)
    elif args.image:
        document = media_message(args.openid)
    else:
        document = text_message(args.openid, args.text or "你好")
    params, body = signed_request(settings, document)
    url = f"{args.url}?{urllib.parse.urlencode(params)}"
    if settings.id_hash_key:
        from bot.channels.wechat.security import user_id

        print(f"# Rasa sender id of {args.openid}: {user_id(args.openid, settings.id_hash_key)}", file=sys.stderr)
    content_type = "application/json" if settings.data_format == "json" else "text/xml"
    if not args.send:
        print(f"curl -s -XPOST {shlex.quote(url)} -H 'Content-Type: {content_type}' "
              f"--data-binary {shlex.quote(body.decode('utf-8'))}")
        return 0
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            print(answer.status, answer.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        print(err.code, err.read().decode("utf-8"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
