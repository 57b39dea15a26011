"""What a bank's backend does to let its customers and its own systems reach the assistant (docs/bank-signing.md).

Runnable: ``python docs/examples/bank_backend.py --rasa http://127.0.0.1:5005 --key "$BANK_SIGNING_KEY"
--customer C123 --message "信用卡还不上了怎么办"`` prints a customer token for the widget, then sends one signed
REST message and prints the answer. Needs only the standard library and PyJWT (``pip install PyJWT``).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import time
import urllib.request

import jwt

AUDIENCE = "debt-help-widget"
"""The ``aud`` the assistant requires of a customer token."""


def customer_token(key: str, customer_id: str, lifetime_seconds: int = 600) -> str:
    """A token for the widget's ``customerToken`` option: HS256 JWT, ``sub`` the bank's customer id, ``aud``
    AUDIENCE, ``iat`` now and ``exp`` at most one hour later. The assistant never stores the id itself."""
    now = int(time.time())
    claims = {"aud": AUDIENCE, "sub": customer_id, "iat": now, "exp": now + lifetime_seconds}
    return jwt.encode(claims, key, algorithm="HS256")


def signed_rest_headers(key: str, sender: str, body: bytes) -> dict:
    """The headers of one signed REST request: timestamp (Unix s), a new nonce, and ``sha256=`` + hex
    HMAC-SHA256 over ``debt-help-rest-v1``, timestamp, nonce and sender, one per line, then the raw body."""
    timestamp, nonce = str(int(time.time())), secrets.token_urlsafe(24)
    message = b"\n".join([b"debt-help-rest-v1", timestamp.encode(), nonce.encode(), sender.encode("utf-8"), body])
    signature = "sha256=" + hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return {"X-Signature-Timestamp": timestamp, "X-Signature-Nonce": nonce, "X-Signature": signature}


def send_rest_message(rasa_url: str, key: str, sender: str, text: str) -> list:
    """POST one signed message to the REST channel; returns the bot's messages. Raises urllib's HTTPError
    (401 for a refused signature, 403 for a widget or WeChat sender)."""
    body = json.dumps({"sender": sender, "message": text}, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(f"{rasa_url}/webhooks/rest/webhook", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **signed_rest_headers(key, sender, body)})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def main() -> None:
    """Command line: print a customer token, then send one signed REST message and print the answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rasa", default="http://127.0.0.1:5005")
    parser.add_argument("--key", required=True, help="BANK_SIGNING_KEY, shared with the assistant")
    parser.add_argument("--customer", default="C123", help="the bank's customer id")
    parser.add_argument("--sender", default="crm-C123", help="the REST sender id of the bank's own system")
    parser.add_argument("--message", default="信用卡还不上了怎么办")
    args = parser.parse_args()
    print("customerToken for the widget:", customer_token(args.key, args.customer))
    for message in send_rest_message(args.rasa, args.key, args.sender, args.message):
        print(message.get("text", message))


if __name__ == "__main__":
    main()
