"""The desk's timers: unclaimed tickets hand the conversation back to the bot; silent agents are released.

Run periodically by the desk (bot.handoff.desk.background):

* a **queued** ticket nobody claims within ``claim_timeout_seconds`` of entering the queue becomes a follow-up
  record and the conversation is resumed with an honest message (``utter_handoff_returned_to_bot``, status
  ``returned_to_bot``; for a distress ticket the crisis hotlines follow): the user is never left waiting in
  silence for a person who is not coming;
* a **claimed** ticket whose agent has sent nothing for ``agent_silence_seconds`` (since the claim or their
  last reply) goes back to the queue and the user is told (``utter_handoff_released``); the unclaimed timer
  then starts again.

Each change and its message are one transaction (bot.handoff.store): when Rasa does not answer, the change is
rolled back and retried on the next round; when only the user's channel cannot deliver the message (the widget
is closed), the state still changes and the message waits in the transcript
(bot.handoff.rasa_client.RasaClient.append_state_events).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List

from bot.handoff.decision import channel_can_receive_agent
from bot.handoff.messages import bot_event, released_event, render, resume_events
from bot.handoff.priority import PRIORITY_DISTRESS
from bot.handoff.rasa_client import RasaClient, RasaUnavailable
from bot.handoff.store import SYSTEM_AGENT, HandoffStoreError, Ticket, TicketStore

logger = logging.getLogger(__name__)


def returned_events(ticket: Ticket) -> List[Dict[str, Any]]:
    """The events that hand an unclaimed ``ticket``'s conversation back to the bot: resume, listen, the honest
    message and, for a distress ticket, the crisis hotlines."""
    events = resume_events(render("utter_handoff_returned_to_bot", ticket_id=ticket.id), ticket.id,
                           "returned_to_bot")
    if ticket.priority == PRIORITY_DISTRESS:
        events.append(bot_event(render("utter_handoff_distress_reminder"), ticket.id, "returned_to_bot"))
    return events


def return_unclaimed(store: TicketStore, rasa: RasaClient, timeout_seconds: int) -> int:
    """Hand back the conversations of queued tickets unclaimed for ``timeout_seconds``. Returns how many."""
    returned = 0
    for ticket in store.tickets_due_for_return(timeout_seconds):
        try:
            if store.return_to_bot(ticket.id,
                                   lambda t: rasa.append_state_events(t.sender_id, returned_events(t))):
                returned += 1
        except RasaUnavailable as err:
            logger.warning("Could not hand ticket %s back to the bot: %s", ticket.id, err)
    return returned


def release_silent(store: TicketStore, rasa: RasaClient, silence_seconds: int) -> int:
    """Release claimed tickets whose agent has been silent for ``silence_seconds``. Returns how many."""
    released = 0
    for ticket in store.tickets_due_for_release(silence_seconds):
        def tell(t: Ticket) -> None:
            if channel_can_receive_agent(t.channel):
                rasa.append_state_events(t.sender_id, [released_event(t.id, t.claimed_by)])

        try:
            store.release(ticket.id, SYSTEM_AGENT, "silence", ticket.claimed_by, tell)
            released += 1
        except HandoffStoreError:
            continue  # replied to, closed or released meanwhile
        except RasaUnavailable as err:
            logger.warning("Could not tell the user of ticket %s about the release: %s", ticket.id, err)
    return released


def run_timers(store: TicketStore, rasa: RasaClient, claim_timeout_seconds: int, silence_seconds: int) -> int:
    """One round of both timers (silence first, so a released ticket starts its queue time afresh). Returns
    how many tickets changed."""
    return release_silent(store, rasa, silence_seconds) + return_unclaimed(store, rasa, claim_timeout_seconds)
