"""Personal data masked in Rasa's own structured log lines, through Rasa's anonymisation hook.

Rasa 3.6 passes the values of its structured log events under keys such as ``text``, ``user_text`` and
``tracker_latest_message`` through the pipeline that a plugin returns from the ``get_anonymization_pipeline``
hook (rasa/utils/log_utils.py ``_anonymizer``, rasa/plugin.py). The channels already hand the dialogue masked
text (bot.channels.guard), but on a failure path Rasa logs the request's own copy: the REST channel's
``rest.message.received.failure`` and ``.timeout`` events carry the text as it arrived, e.g. when the tracker or
the lock store fails. :func:`register` adds this module as a Rasa plugin (``bot.ops.rasa_launcher`` does it
before Rasa starts), so those values are masked with ``bot.privacy`` before any log handler sees them.
"""
from __future__ import annotations

from typing import Any

import pluggy

from bot.privacy import mask_pii

hookimpl = pluggy.HookimplMarker("rasa")


def masked(value: Any) -> Any:
    """``value`` with every string in it masked (``bot.privacy.mask_pii``), through dicts, lists and tuples."""
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(masked(item) for item in value)
    return value


class MaskingPipeline:
    """What Rasa's ``_anonymizer`` calls: ``log_run(value)`` returns the value to log."""

    def log_run(self, value: Any) -> Any:
        """``value`` masked (see :func:`masked`)."""
        return masked(value)


PIPELINE = MaskingPipeline()


@hookimpl
def get_anonymization_pipeline() -> MaskingPipeline:
    """Rasa's hook: the pipeline that masks log values."""
    return PIPELINE


def register() -> None:
    """Register this module with Rasa's plugin manager (once)."""
    import sys

    from rasa.plugin import plugin_manager

    manager = plugin_manager()
    module = sys.modules[__name__]
    if not manager.is_registered(module):
        manager.register(module)
