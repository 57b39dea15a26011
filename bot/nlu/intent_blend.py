"""A Rasa intent classifier: a character n-gram logistic regression, optionally blended with a previous
classifier's (DIET's) intent ranking, with cost-sensitive weights for the risk intents.

Why: a character n-gram model is robust to the typos, pinyin initials and unseen word boundaries of colloquial
Chinese (停息挂帐, 征xin, zx). It was blended with DIET (a classic soft-voting ensemble); cross-validation on the
training data later showed DIET's share bought about half a point of macro-F1 for most of the training time, so
config.yml now runs it alone (``diet_weight: 0``, docs/nlu-evaluation.md).

With ``diet_weight`` above 0 it comes after DIETClassifier (whose ``ranking_length`` should be 0, so that every
intent has a confidence); either way it comes before the fallback classifier, which judges its confidences.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

MODEL_FILE = "char_ngram_intent_model.skops"
"""File name of the fitted scikit-learn pipeline inside the component's model storage."""

TRUSTED_TYPES = frozenset({"scipy.sparse._csr.csr_matrix"})
"""The only types outside skops' default trust that a fitted model file holds (TfidfVectorizer's IDF matrix).
A file naming any other untrusted type (builtins.eval, say) is refused: only a tampered file would. skops 0.9
(pinned with Rasa 3.6) has known bypasses of this check (CVE-2025-54412, CVE-2025-54413), so model archives
must still come from the project's own training, as for Rasa's SklearnIntentClassifier."""


def char_ngram_classifier(C: float, min_ngram: int = 1, max_ngram: int = 4,
                          preprocessor: Optional[Callable[[str], str]] = None,
                          random_state: int = 20261130) -> Any:
    """An unfitted scikit-learn pipeline: TF-IDF over ``char_wb`` n-grams (min_ngram..max_ngram characters,
    sublinear tf) and a logistic regression with inverse regularisation ``C``.

    The blender, the evaluation baseline and bot.nlu.blend_tuning all use this one model. ``preprocessor`` (e.g.
    bot.text_normalisation.normalise_text) is for callers whose text is not yet normalised; the blender gets
    text TextNormaliser already normalised and must not pass one, since a stored function would be refused
    on load.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(min_ngram, max_ngram), preprocessor=preprocessor,
                        sublinear_tf=True),
        LogisticRegression(max_iter=3000, C=C, random_state=random_state),
    )


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class CharNgramIntentBlender(GraphComponent, IntentClassifier):
    """Blend the previous intent classifier's ranking with a char n-gram TF-IDF + logistic regression model.

    For each message: ``p(intent) = diet_weight * p_DIET(intent) + (1 - diet_weight) * p_LR(intent)``, where
    p_DIET comes from the message's ``intent_ranking`` (intents absent from it count as 0) and p_LR from the
    logistic regression over character n-grams (``char_wb``, ``min_ngram``..``max_ngram``) of the normalised
    text. Then each intent named in ``intent_weights`` has its probability multiplied by its weight, and the
    result is always renormalised to sum to 1 (DIET's ranking may be empty or truncated): the weighting is a
    cost-sensitive decision (Elkan, "The Foundations of Cost-Sensitive
    Learning", IJCAI 2001) that prefers an intent whose miss costs more, here the risk intents, when it is
    nearly as likely as another. The ranking (descending, at most ``ranking_length`` entries, 0 = all)
    replaces ``intent`` and ``intent_ranking``. Confidences are in [0, 1] and the full ranking sums to 1.
    Keep ``ranking_length`` at 0 or at least 2: Rasa's FallbackClassifier checks ambiguity only when the
    ranking has two entries, and bot.nlu.blend_tuning assumes the full ranking.

    Config (defaults in get_default_config): ``diet_weight`` in [0, 1]; ``min_ngram``/``max_ngram`` in
    characters; ``C`` the inverse regularisation strength; ``random_state`` the seed; ``ranking_length``;
    ``intent_weights`` a mapping of intent name to a positive, finite factor (default none).
    Raises ValueError from ``create`` when ``diet_weight`` is outside [0, 1], the n-gram range is empty or an
    intent weight is not a positive number.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Defaults: equal weights, char 1-4-grams, C=10, the project's seed, the full ranking."""
        return {"diet_weight": 0.5, "min_ngram": 1, "max_ngram": 4, "C": 10.0, "random_state": 20261130,
                "ranking_length": 0, "intent_weights": {}}

    @staticmethod
    def required_packages() -> List[Text]:
        """scikit-learn fits the model; skops stores it without pickle."""
        return ["sklearn", "skops"]

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 model: Optional[Any] = None) -> None:
        """Hold the configuration and, once trained or loaded, the fitted scikit-learn pipeline."""
        self._config = {**self.get_default_config(), **config}
        weight = float(self._config["diet_weight"])
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"CharNgramIntentBlender: diet_weight must be in [0, 1], got {weight}")
        if int(self._config["min_ngram"]) < 1 or int(self._config["max_ngram"]) < int(self._config["min_ngram"]):
            raise ValueError("CharNgramIntentBlender: need 1 <= min_ngram <= max_ngram")
        weights = self._config.get("intent_weights") or {}
        if not isinstance(weights, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            for v in weights.values()):
            raise ValueError(f"CharNgramIntentBlender: intent_weights must map intents to positive numbers, "
                             f"got {weights!r}")
        self._intent_weights = {str(k): float(v) for k, v in weights.items()}
        self._model_storage = model_storage
        self._resource = resource
        self._model = model

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> CharNgramIntentBlender:
        """Rasa's factory for an untrained component."""
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        """Fit the logistic regression on the intent examples (text as normalised by TextNormaliser).

        With fewer than two intents nothing is fitted and messages pass through unchanged.
        """
        examples = [m for m in training_data.intent_examples if m.get(TEXT)]
        labels = [m.get(INTENT) for m in examples]
        if len(set(labels)) < 2:
            logger.warning("CharNgramIntentBlender: fewer than two intents to train on; not blending.")
            return self._resource
        self._model = char_ngram_classifier(float(self._config["C"]), int(self._config["min_ngram"]),
                                            int(self._config["max_ngram"]),
                                            random_state=int(self._config["random_state"]))
        self._model.fit([m.get(TEXT) for m in examples], labels)
        self.persist()
        return self._resource

    def persist(self) -> None:
        """Write the fitted pipeline with skops into the component's model storage."""
        import skops.io as sio

        if self._model is None:
            return
        with self._model_storage.write_to(self._resource) as directory:
            sio.dump(self._model, directory / MODEL_FILE)

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> CharNgramIntentBlender:
        """Load the fitted pipeline; an untrained component (no file) passes messages through.

        Raises ValueError when the file holds untrusted types other than TRUSTED_TYPES.
        """
        import skops.io as sio

        model = None
        refused: List[str] = []
        try:
            with model_storage.read_from(resource) as directory:
                path = directory / MODEL_FILE
                if path.exists():
                    untrusted = sio.get_untrusted_types(file=path)
                    refused = [t for t in untrusted if t not in TRUSTED_TYPES]
                    if not refused:
                        model = sio.load(path, trusted=untrusted)
        except ValueError:  # Rasa's error for a resource that was never persisted (fewer than two intents)
            logger.warning("CharNgramIntentBlender: no trained model found; messages pass through unchanged.")
        if refused:
            raise ValueError(f"CharNgramIntentBlender: refusing to load untrusted types {refused}")
        return cls(config, model_storage, resource, model)

    def blend(self, text: Text, diet_ranking: List[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
        """The blended ranking for one text: a list of ``{"name", "confidence"}``, highest first.

        ``diet_ranking`` is the previous classifier's ranking (may be empty). Without a fitted model it is
        returned unchanged.
        """
        if self._model is None:
            return list(diet_ranking)
        weight = float(self._config["diet_weight"])
        probabilities = self._model.predict_proba([text or ""])[0]
        blended = {str(name): (1.0 - weight) * float(p)
                   for name, p in zip(self._model.classes_, probabilities, strict=True)}
        for entry in diet_ranking:
            name = entry.get("name")
            if name:
                blended[name] = blended.get(name, 0.0) + weight * float(entry.get("confidence") or 0.0)
        blended = {name: p * self._intent_weights.get(name, 1.0) for name, p in blended.items()}
        total = sum(blended.values())
        if total > 0:
            blended = {name: p / total for name, p in blended.items()}
        ranking = [{"name": name, "confidence": confidence}
                   for name, confidence in sorted(blended.items(), key=lambda item: (-item[1], item[0]))]
        length = int(self._config["ranking_length"])
        return ranking[:length] if length > 0 else ranking

    def process(self, messages: List[Message]) -> List[Message]:
        """Replace ``intent`` and ``intent_ranking`` of each message with the blended ones; returns the list."""
        for message in messages:
            if self._model is None:
                continue
            ranking = self.blend(message.get(TEXT) or "", message.get(INTENT_RANKING_KEY) or [])
            message.set(INTENT, dict(ranking[0]) if ranking else {"name": None, "confidence": 0.0},
                        add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
