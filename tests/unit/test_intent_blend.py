"""CharNgramIntentBlender (bot/nlu/intent_blend.py) trained, persisted and loaded without a Rasa server."""
from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.intent_blend import CharNgramIntentBlender

TRAINING = {
    "seek_credit_repair": ["征信修复靠谱吗", "能帮我洗白征信吗", "花钱能消除逾期记录吗", "zx修复多少钱"],
    "ask_evade_debt": ["网贷是不是可以不还", "换号能躲催收吗", "怎么把房子转走", "跑路了能找到我吗"],
    "greet": ["你好", "在吗", "hi", "您好呀"],
}


def _training_data() -> TrainingData:
    return TrainingData([Message(data={TEXT: text, INTENT: intent})
                         for intent, texts in TRAINING.items() for text in texts])


@pytest.fixture
def storage(tmp_path) -> LocalModelStorage:
    return LocalModelStorage(tmp_path)


def _context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "test-model")


def _trained(storage, **config) -> CharNgramIntentBlender:
    blender = CharNgramIntentBlender.create({**CharNgramIntentBlender.get_default_config(), **config}, storage,
                                            Resource("blender"), _context())
    blender.train(_training_data())
    return blender


def test_blend_is_the_weighted_average_of_diet_and_the_char_model(storage):
    blender = _trained(storage, diet_weight=0.5)
    only_char = _trained(storage, diet_weight=0.0).blend("征xin能洗白吗", [])
    char = {entry["name"]: entry["confidence"] for entry in only_char}
    diet = [{"name": "greet", "confidence": 0.9}, {"name": "ask_evade_debt", "confidence": 0.1}]
    blended = {entry["name"]: entry["confidence"] for entry in blender.blend("征xin能洗白吗", diet)}
    assert blended["greet"] == pytest.approx(0.5 * 0.9 + 0.5 * char["greet"])
    assert blended["seek_credit_repair"] == pytest.approx(0.5 * char["seek_credit_repair"])
    assert sum(blended.values()) == pytest.approx(1.0)


def test_char_model_catches_a_typo_variant_diet_ranked_low(storage):
    blender = _trained(storage, diet_weight=0.5)
    message = Message(data={TEXT: "征xin修复靠普吗"})
    message.set(INTENT_RANKING_KEY, [{"name": "seek_credit_repair", "confidence": 0.45},
                                     {"name": "greet", "confidence": 0.55}])
    blender.process([message])
    assert message.get(INTENT)["name"] == "seek_credit_repair"
    ranking = message.get(INTENT_RANKING_KEY)
    assert [entry["confidence"] for entry in ranking] == sorted((e["confidence"] for e in ranking), reverse=True)
    assert {entry["name"] for entry in ranking} == set(TRAINING)


def test_persisted_model_loads_and_predicts_the_same(storage):
    trained = _trained(storage)
    loaded = CharNgramIntentBlender.load(CharNgramIntentBlender.get_default_config(), storage,
                                         Resource("blender"), _context())
    diet = [{"name": "greet", "confidence": 1.0}]
    assert loaded.blend("换号能躲过去吗", diet) == trained.blend("换号能躲过去吗", diet)


def test_untrained_component_passes_messages_through(storage):
    blender = CharNgramIntentBlender.load(CharNgramIntentBlender.get_default_config(), storage,
                                          Resource("never-trained"), _context())
    message = Message(data={TEXT: "你好"})
    message.set(INTENT, {"name": "greet", "confidence": 0.8})
    blender.process([message])
    assert message.get(INTENT) == {"name": "greet", "confidence": 0.8}


@pytest.mark.parametrize("text", ["", "！！！", "x" * 10_000, "\x00\x1f控制字符", "🙏🙏"])
def test_bad_input_gets_a_ranking_without_errors(storage, text):
    message = Message(data={TEXT: text})
    _trained(storage).process([message])
    assert message.get(INTENT)["name"] in TRAINING
    assert 0.0 <= message.get(INTENT)["confidence"] <= 1.0


@pytest.mark.parametrize("config", [{"diet_weight": 1.5}, {"diet_weight": -0.1}, {"min_ngram": 3, "max_ngram": 2}])
def test_invalid_configuration_is_refused(storage, config):
    with pytest.raises(ValueError):
        CharNgramIntentBlender.create({**CharNgramIntentBlender.get_default_config(), **config}, storage,
                                      Resource("blender"), _context())


def test_intent_weights_prefer_the_weighted_intent_and_keep_a_distribution(storage):
    plain = _trained(storage, diet_weight=1.0)
    weighted = _trained(storage, diet_weight=1.0, intent_weights={"ask_evade_debt": 2.0})
    diet = [{"name": "greet", "confidence": 0.6}, {"name": "ask_evade_debt", "confidence": 0.4}]
    assert plain.blend("怎么办", diet)[0]["name"] == "greet"
    ranking = {entry["name"]: entry["confidence"] for entry in weighted.blend("怎么办", diet)}
    assert ranking["ask_evade_debt"] == pytest.approx(0.8 / 1.4)
    assert ranking["greet"] == pytest.approx(0.6 / 1.4)
    assert max(ranking, key=ranking.get) == "ask_evade_debt"


@pytest.mark.parametrize("weights", [{"ask_evade_debt": 0}, {"ask_evade_debt": -1.0}, {"ask_evade_debt": "2"},
                                     {"ask_evade_debt": float("inf")}, {"ask_evade_debt": float("nan")},
                                     ["ask_evade_debt"]])
def test_invalid_intent_weights_are_refused(storage, weights):
    with pytest.raises(ValueError):
        CharNgramIntentBlender.create({**CharNgramIntentBlender.get_default_config(), "intent_weights": weights},
                                      storage, Resource("blender"), _context())


def test_blend_is_a_distribution_even_when_diet_ranked_nothing_or_unknown_intents(storage):
    blender = _trained(storage, diet_weight=0.5)
    for diet in ([], [{"name": "unknown_intent", "confidence": 0.3}, {"name": "greet", "confidence": 0.2}]):
        ranking = blender.blend("征信修复靠谱吗", diet)
        assert sum(entry["confidence"] for entry in ranking) == pytest.approx(1.0)
        assert all(0.0 <= entry["confidence"] <= 1.0 for entry in ranking)


def test_a_model_file_with_untrusted_types_is_refused(storage):
    import builtins

    blender = _trained(storage)
    blender._model.steps[0][1].preprocessor = builtins.eval  # what a tampered file could smuggle in
    blender.persist()
    with pytest.raises(ValueError, match="untrusted"):
        CharNgramIntentBlender.load(CharNgramIntentBlender.get_default_config(), storage, Resource("blender"),
                                    _context())
