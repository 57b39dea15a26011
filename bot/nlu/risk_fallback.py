"""Rasa's FallbackClassifier, except that a risk intent at the top of the ranking is never replaced, and a
message with nothing to read always is.

Why: missing a request for a grey-industry service, a victim or a person in despair is the assistant's worst
failure. Rasa's FallbackClassifier turns an unsure or ambiguous prediction into ``nlu_fallback`` and the bot
asks the user to rephrase; for a risk intent that throws away the warning the user needed, while answering a
risk intent that was not meant costs one unneeded warning. So when the top intent (after
CharNgramIntentBlender) is one of ``exempt_intents``, this classifier leaves it; every other prediction is
judged exactly as Rasa's FallbackClassifier judges it (``threshold``, ``ambiguity_threshold``).

A message without a single letter, digit or CJK character ("？？？", "😀😀😀", which TextNormaliser turns into
blanks) gives the classifiers nothing to read, and whatever they rank first is noise: such a message always
becomes ``nlu_fallback``, so that the bot asks what the user means instead of, say, answering emoji with a
crisis reply. No training or held-out line is of that kind, so this changes no measured figure.

Whether to use it was decided by cross-validation on the training data only (``python -m bot tune-blend``,
docs/nlu-evaluation.md). It replaces FallbackClassifier in config.yml; it predicts the same ``nlu_fallback``
intent (ranked first, the real ranking kept behind it), which is what Rasa's fallback rules and
``rasa test``'s fallback handling look for.
"""
from __future__ import annotations

from typing import Any, Dict, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

EXEMPT_INTENTS_KEY = "exempt_intents"
"""Config key: the intents that are never replaced by ``nlu_fallback`` when they rank first."""


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class RiskAwareFallbackClassifier(FallbackClassifier):
    """FallbackClassifier that never falls back from an intent in ``exempt_intents`` (a list of intent names,
    default empty) and always falls back on a message without any letter, digit or CJK character; any other
    message is judged as Rasa's FallbackClassifier judges it.

    Raises:
        InvalidConfigException: ``exempt_intents`` is not a list of intent names (a misspelt name cannot be
            caught here, the component does not see the domain; tests/unit/test_risk_fallback.py checks
            config.yml's list against the domain).
    """

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Keeps the config after checking ``exempt_intents`` (see the class docstring)."""
        exempt = config.get(EXEMPT_INTENTS_KEY, [])
        if not isinstance(exempt, list) or not all(isinstance(name, str) and name for name in exempt):
            raise InvalidConfigException(
                f"{type(self).__name__}: '{EXEMPT_INTENTS_KEY}' must be a list of intent names, got {exempt!r}")
        super().__init__(config)

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Rasa's FallbackClassifier defaults plus ``exempt_intents: []``."""
        return {**FallbackClassifier.get_default_config(), EXEMPT_INTENTS_KEY: []}

    def _should_fallback(self, message: Message) -> bool:
        """True when the text has nothing to read (no letter, digit or CJK character); False when the message's
        top intent is exempt; otherwise FallbackClassifier's decision (confidence below ``threshold``, or the
        top two closer than ``ambiguity_threshold``)."""
        if not any(character.isalnum() for character in message.get(TEXT) or ""):
            return True
        intent_name = (message.data.get(INTENT) or {}).get(INTENT_NAME_KEY)
        if intent_name in self.component_config.get(EXEMPT_INTENTS_KEY, []):
            return False
        return super()._should_fallback(message)
