"""The handoff's messages to the user, rendered from ``domain/handoff.yml`` for the desk.

The action server sends these responses through Rasa's NLG; the desk, which talks to Rasa over its HTTP
API, renders the same responses here and appends them as ``BotUttered`` events. Both fill placeholders the
way Rasa does (``rasa.core.nlg.interpolator``): knowledge facts plus the handoff variables (opening hours,
ticket id, agent name).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from bot.knowledge import default_knowledge
from bot.texts import render_response


def render(name: str, **variables: str) -> Dict[str, Any]:
    """The first variant of response ``name`` with placeholders filled from the knowledge facts and
    ``variables``: ``{"text": ..., "custom": ...}`` (``custom`` only if the response has one).

    Raises KeyError for an unknown response.
    """
    return render_response(name, {**default_knowledge().template_values(), **variables})


def bot_event(message: Dict[str, Any], ticket_id: str, kind: str, agent: Optional[str] = None) -> Dict[str, Any]:
    """A ``BotUttered`` event (Rasa's JSON form) carrying ``message``'s text and custom payload.

    ``metadata.handoff`` records the ticket, the kind (agent_joined, agent_message, timeout, closed) and the
    agent, so the transcript can tell agent messages from the bot's.
    """
    data = {"custom": message["custom"]} if message.get("custom") else {}
    handoff: Dict[str, Any] = {"ticket_id": ticket_id, "kind": kind}
    if agent:
        handoff["agent"] = agent
    return {"event": "bot", "text": message.get("text", ""), "data": data, "metadata": {"handoff": handoff}}


def agent_message_event(text: str, agent: str, ticket_id: str) -> Dict[str, Any]:
    """The ``BotUttered`` event for an agent's reply: the text, and the ``handoff`` payload with status
    ``agent_message``, ``text`` and ``agent_name`` (docs/channels/payloads.md)."""
    custom = {"type": "handoff", "status": "agent_message", "ticket_id": ticket_id, "text": text,
              "agent_name": agent}
    return bot_event({"text": text, "custom": custom}, ticket_id, "agent_message", agent)


def released_event(ticket_id: str, holder: Optional[str]) -> Dict[str, Any]:
    """The BotUttered event telling the user that ``holder`` (the agent who had the ticket) gave it back to the
    queue (status ``released``)."""
    message = render("utter_handoff_released", ticket_id=ticket_id, agent_name=holder or "")
    return bot_event(message, ticket_id, "released", holder)


def resume_events(message: Dict[str, Any], ticket_id: str, kind: str, agent: Optional[str] = None) -> list:
    """``ConversationResumed``, ``action_listen`` and the rendered ``message``: the bot answers again from the
    user's next message, predicted from the rules as at the start of a turn."""
    return [{"event": "resume"}, {"event": "action", "name": "action_listen", "policy": "handoff_desk"},
            bot_event(message, ticket_id, kind, agent)]
