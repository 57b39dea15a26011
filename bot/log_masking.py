"""Personal data masked in Rasa's own structured log lines.

Rasa 3.6 renders its structured log events through structlog processors, the first being
``rasa.utils.log_utils._anonymizer``, which passes the values under keys such as ``text``, ``user_text`` and
``tracker_latest_message`` to an anonymisation pipeline, if a plugin provides one. The channels already hand the
dialogue masked text (bot.channels.guard), but on a failure path Rasa logs the request's own copy: the REST
channel's ``rest.message.received.failure`` and ``.timeout`` events carry the text as it arrived, e.g. when the
tracker or the lock store fails.

:func:`register` (``bot.ops.rasa_launcher`` calls it before Rasa configures its logging) puts
:func:`mask_log_values` in that processor's place. It does not provide a plugin pipeline: Rasa's processor would
then read the whole tracker again on every message to feed it the new events (rasa/core/processor.py
``run_anonymization_pipeline``), which the masked text makes pointless.
"""
from __future__ import annotations

from typing import Any, Dict

from bot.privacy import mask_pii

LOGGED_TEXT_KEYS = frozenset({
    "text", "response_text", "user_text", "slot_values", "parse_data_text", "parse_data_entities",
    "prediction_events", "tracker_latest_message", "prefilled_slots", "message", "response", "slot_candidates",
    "rasa_event", "rasa_events", "tracker_states", "current_states", "old_states", "successes",
    "current_entity", "next_entity", "states", "entity", "token_text", "user_message", "json_message",
})
"""The event keys Rasa 3.6's ``_anonymizer`` treats as user content (rasa/utils/log_utils.py)."""


def masked(value: Any) -> Any:
    """``value`` with every string in it masked (``bot.privacy.mask_pii``), through dicts, lists and tuples."""
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(masked(item) for item in value)
    return value


def mask_log_values(_logger: Any, _method: str, event_dict: Dict[str, Any]) -> Dict[str, Any]:
    """A structlog processor: the values under LOGGED_TEXT_KEYS masked, everything else as it is."""
    for key in LOGGED_TEXT_KEYS.intersection(event_dict):
        event_dict[key] = masked(event_dict[key])
    return event_dict


def register() -> None:
    """Use :func:`mask_log_values` as Rasa's log anonymiser (idempotent). Call before Rasa's
    ``configure_structlog``, which reads the name when it builds the processor chain."""
    import rasa.utils.log_utils as log_utils

    log_utils._anonymizer = mask_log_values
