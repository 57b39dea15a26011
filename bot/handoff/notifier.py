"""The optional outgoing webhook: post ticket events to an external customer-service system, signed.

Events are written to the outbox table in the same transaction as the change they describe (see
bot.handoff.store); :meth:`WebhookNotifier.deliver_due` posts the due ones. Each request carries

* ``X-Handoff-Event`` (``ticket.created``, ``ticket.claimed``, ``ticket.replied``, ``ticket.note_added``,
  ``ticket.closed``, ``ticket.timeout``), ``X-Handoff-Delivery`` (the outbox id, stable across retries);
* ``X-Handoff-Timestamp`` (Unix seconds) and ``X-Handoff-Signature: sha256=<hex>``, the HMAC-SHA256 with the
  shared secret of ``"<timestamp>." + body`` (see :func:`signature`; receivers should also reject old
  timestamps).

A 2xx answer is delivered; anything else (or no answer) is retried with doubling delays and, after the
configured number of attempts, marked failed. The attempt count and the last status code or error are stored.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from typing import Optional, Tuple

from bot.handoff.store import Delivery, TicketStore

logger = logging.getLogger(__name__)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``timestamp + "." + body`` keyed with ``secret`` (UTF-8)."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """True if ``header`` is the signature of ``body`` at ``timestamp`` (constant-time comparison)."""
    return hmac.compare_digest(signature(secret, timestamp, body), header or "")


class WebhookNotifier:
    """Deliver the store's due outbox rows to ``url``, signing with ``secret``; ``timeout`` in seconds."""

    def __init__(self, store: TicketStore, url: str, secret: str, max_attempts: int = 5,
                 retry_seconds: int = 10, timeout: float = 10.0) -> None:
        self.store = store
        self.url = url
        self.secret = secret
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.timeout = timeout

    def _post(self, delivery: Delivery) -> Tuple[bool, Optional[int], Optional[str]]:
        body = json.dumps(delivery.payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
        timestamp = str(int(time.time()))
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "X-Handoff-Event": delivery.event,
            "X-Handoff-Delivery": str(delivery.id),
            "X-Handoff-Timestamp": timestamp,
            "X-Handoff-Signature": signature(self.secret, timestamp, body),
        })
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return 200 <= answer.status < 300, answer.status, None
        except urllib.error.HTTPError as err:
            return False, err.code, f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            return False, None, str(getattr(err, "reason", err))

    def deliver_due(self) -> int:
        """Attempt every due delivery once. Returns how many were delivered. Never raises for HTTP errors."""
        delivered = 0
        for delivery in self.store.due_deliveries():
            ok, status_code, error = self._post(delivery)
            status = self.store.record_delivery(delivery.id, ok, status_code, error, self.max_attempts,
                                                self.retry_seconds)
            if ok:
                delivered += 1
            elif status == "failed":
                logger.error("Webhook delivery %s (%s) failed for good: %s", delivery.id, delivery.event, error)
            else:
                logger.warning("Webhook delivery %s (%s) failed, will retry: %s", delivery.id, delivery.event,
                               error)
        return delivered
