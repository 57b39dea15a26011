"""Unclaimed tickets: tell the user honestly that nobody has joined yet, once, and keep the ticket queued.

Run periodically by the desk. The message (``utter_handoff_timeout``) names the official channels; for a
distress ticket the crisis hotlines follow (``utter_handoff_distress_reminder``).
"""
from __future__ import annotations

import logging

from bot.handoff.messages import bot_event, render
from bot.handoff.priority import PRIORITY_DISTRESS
from bot.handoff.rasa_client import RasaClient, RasaUnavailable
from bot.handoff.store import Ticket, TicketStore

logger = logging.getLogger(__name__)


def timeout_events(ticket: Ticket) -> list:
    """The BotUttered events sent to the user of an unclaimed ``ticket``."""
    events = [bot_event(render("utter_handoff_timeout", ticket_id=ticket.id), ticket.id, "timeout")]
    if ticket.priority == PRIORITY_DISTRESS:
        events.append(bot_event(render("utter_handoff_distress_reminder"), ticket.id, "timeout"))
    return events


def notify_timeouts(store: TicketStore, rasa: RasaClient, timeout_seconds: int) -> int:
    """Tell the users of queued tickets older than ``timeout_seconds`` that nobody has claimed them yet.

    Each ticket is told at most once; a failed send is rolled back and retried on the next call. Returns
    how many users were told.
    """
    told = 0
    for ticket in store.tickets_due_for_timeout(timeout_seconds):
        try:
            if store.mark_timed_out(ticket.id, lambda t: rasa.append_events(t.sender_id, timeout_events(t))):
                told += 1
        except RasaUnavailable as err:
            logger.warning("Could not tell the user of ticket %s about the wait: %s", ticket.id, err)
    return told
