"""An intent classifier, last in the pipeline, that makes a message reading as danger ``express_distress``.

Why: a person who writes that they do not want to live must get the care message with the crisis hotlines
at once, wherever the conversation is. The statistical classifiers can rank such a message as ``inform``
inside the hardship form (where it would be taken as the answer to the form's question and the form would go
on) or as any other topic when it is mixed with debt talk. The danger lexicon (bot/crisis.py,
data/crisis/signals.yml) is the rule: a message it matches is ranked ``express_distress`` first, with
confidence 1.0, whatever came before, the earlier ranking kept behind it. Stress alone ("压力很大") and
hardship reasons ("生意赔了") are left to the classifiers. The route that follows is shared/DOMAIN.md §4.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.crisis import reads_as_danger
from bot.intents import EXPRESS_DISTRESS
from bot.nlu.components import ORIGINAL_TEXT


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class DangerSignalClassifier(GraphComponent):
    """Rank ``express_distress`` first (confidence 1.0) for a message whose text reads as danger; leave every
    other message as it is. No configuration."""

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> DangerSignalClassifier:
        """Rasa's factory; the component has no configuration."""
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        """Re-rank each message in place when it reads as danger; returns the same list."""
        for message in messages:
            text = message.get(ORIGINAL_TEXT) or message.get(TEXT)
            if reads_as_danger(text):
                self._rank_distress_first(message)
        return messages

    @staticmethod
    def _rank_distress_first(message: Message) -> None:
        ranking: List[Dict[str, Any]] = [entry for entry in message.get(INTENT_RANKING_KEY) or []
                                         if entry.get(INTENT_NAME_KEY) != EXPRESS_DISTRESS]
        top = {INTENT_NAME_KEY: EXPRESS_DISTRESS, PREDICTED_CONFIDENCE_KEY: 1.0}
        message.set(INTENT, dict(top), add_to_output=True)
        message.set(INTENT_RANKING_KEY, [top, *ranking], add_to_output=True)
