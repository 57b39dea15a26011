"""Delivery honesty: an agent's message that did not reach the user is reported as not delivered.

A channel's output used outside a user turn (Rasa's HTTP API with ``output_channel=latest``, as the desk sends
agent messages) raises :class:`AgentMessageNotDelivered` when it knows the message did not go out (the
widget's socket is gone; WeChat refused it or the customer-service quota is used up). Rasa then answers the
desk's append with HTTP 500 and does not store the event; the message carries :data:`NOT_DELIVERED_MARKER`, so
the desk's Rasa client tells it apart from Rasa being down (bot.handoff.rasa_client.RasaUndelivered) and the
agent sees "not delivered", never "sent".
"""
from __future__ import annotations

NOT_DELIVERED_MARKER = "handoff-not-delivered"
"""Put in the exception's message; Rasa quotes it in its error answer."""


class AgentMessageNotDelivered(RuntimeError):
    """A bot or agent message could not be delivered to the user; the message says why (no user words)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{NOT_DELIVERED_MARKER}: {reason}")
        self.reason = reason
