"""Rasa NLU components: text normalisation before tokenisation, and quantity normalisation after the entity extractor.

Both are registered with Rasa's default recipe and named in config.yml by module path.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.quantities import find_quantities, parse_amount_yuan, parse_duration_days
from bot.text_normalisation import normalise_text

ORIGINAL_TEXT = "original_text"
"""Message attribute that keeps the user's text as written, before normalisation."""


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class TextNormaliser(GraphComponent):
    """Put the message text in normal form (bot.text_normalisation) before the tokenizer sees it.

    Length-preserving, so entity offsets of training examples remain valid. The text stored in the tracker
    is the user's own (masked) text; only what the NLU models see is normalised.
    """

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> TextNormaliser:
        """Rasa's factory; the component has no configuration."""
        return cls()

    @staticmethod
    def _normalise(message: Message) -> None:
        text = message.get(TEXT)
        if isinstance(text, str) and text:
            message.set(ORIGINAL_TEXT, text)
            message.set(TEXT, normalise_text(text))

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Normalise every training example in place; returns the same TrainingData."""
        for message in training_data.training_examples:
            self._normalise(message)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Normalise each incoming message in place; returns the same list."""
        for message in messages:
            self._normalise(message)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class QuantityNormaliser(GraphComponent):
    """Give ``amount`` entities a value in yuan and ``overdue_duration`` entities a value in days.

    Entities the entity extractor (config.yml: CRFEntityExtractor) found keep their span and get the normalised
    value (``"20000"`` for 两万); quantities it missed are added from bot.quantities. An entity whose text cannot
    be read keeps the extractor's value.
    """

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> QuantityNormaliser:
        """Rasa's factory; the component has no configuration."""
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        """Normalise quantity entities of each message in place; returns the same list."""
        for message in messages:
            self._normalise(message)
        return messages

    @staticmethod
    def _normalise(message: Message) -> None:
        text = message.get(TEXT) or ""
        entities = list(message.get(ENTITIES) or [])
        for entity in entities:
            if entity.get("entity") == "amount":
                value = parse_amount_yuan(str(entity.get("value", "")))
            elif entity.get("entity") == "overdue_duration":
                value = parse_duration_days(str(entity.get("value", "")))
            else:
                continue
            if value is not None:
                entity["value"] = str(value)
        covered = [(e.get("start", -1), e.get("end", -1)) for e in entities
                   if e.get("entity") in ("amount", "overdue_duration")]
        for quantity in find_quantities(text):
            if any(start < quantity.end and quantity.start < end for start, end in covered):
                continue
            entities.append({"entity": quantity.entity, "start": quantity.start, "end": quantity.end,
                             "value": str(quantity.value), "extractor": "QuantityNormaliser"})
        message.set(ENTITIES, entities, add_to_output=True)
