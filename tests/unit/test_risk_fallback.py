"""RiskAwareFallbackClassifier (bot/nlu/risk_fallback.py) on hand-made predictions, without a Rasa server."""
from __future__ import annotations

import pytest
import yaml
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot import PROJECT_ROOT
from bot.intents import RISK_INTENTS
from bot.nlu.blend_tuning import decide
from bot.nlu.risk_fallback import RiskAwareFallbackClassifier

RISK = ["seek_credit_repair", "express_distress"]


def _classifier(tmp_path, **config) -> RiskAwareFallbackClassifier:
    return RiskAwareFallbackClassifier.create(
        {**RiskAwareFallbackClassifier.get_default_config(), "threshold": 0.2, "ambiguity_threshold": 0.05,
         **config},
        LocalModelStorage(tmp_path), Resource("fallback"), ExecutionContext(GraphSchema({}), "test-model"))


def _message(*ranking, text: str = "征信能洗白吗") -> Message:
    intents = [{"name": name, "confidence": confidence} for name, confidence in ranking]
    return Message(data={TEXT: text, INTENT: dict(intents[0]), INTENT_RANKING_KEY: intents})


def _intent(classifier, message) -> str:
    return classifier.process([message])[0].get(INTENT)["name"]


def test_a_bad_exempt_intents_setting_is_refused_at_load_time(tmp_path):
    for bad in ("seek_credit_repair", None, [""], [3]):
        with pytest.raises(InvalidConfigException, match="exempt_intents"):
            _classifier(tmp_path, exempt_intents=bad)


def test_a_tie_is_ambiguous_but_an_exempt_intent_ranked_first_is_kept(tmp_path):
    plain = _classifier(tmp_path)
    exempt = _classifier(tmp_path, exempt_intents=RISK)
    assert _intent(plain, _message(("express_distress", 0.4), ("thank", 0.4))) == "nlu_fallback"
    assert _intent(exempt, _message(("express_distress", 0.4), ("thank", 0.4))) == "express_distress"
    assert decide([], {"express_distress": 0.4, "thank": 0.4, "greet": 0.2}, 0.0, 1.0, 0.2, True) == "express_distress"
    assert decide([], {"ask_evade_debt": 0.4, "greet": 0.4, "thank": 0.2}, 0.0, 1.0, 0.2, True) == "ask_evade_debt"


def test_config_exempts_exactly_the_risk_intents_and_they_are_domain_intents(domain):
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8"))
    [fallback] = [c for c in config["pipeline"] if c["name"].endswith("RiskAwareFallbackClassifier")]
    assert set(fallback["exempt_intents"]) == set(RISK_INTENTS)
    assert set(fallback["exempt_intents"]) <= set(domain["intents"])


def test_without_exempt_intents_it_falls_back_like_rasa(tmp_path):
    classifier = _classifier(tmp_path)
    assert _intent(classifier, _message(("seek_credit_repair", 0.15), ("greet", 0.1))) == "nlu_fallback"
    assert _intent(classifier, _message(("seek_credit_repair", 0.42), ("ask_credit_record", 0.40))) == "nlu_fallback"
    assert _intent(classifier, _message(("seek_credit_repair", 0.6), ("greet", 0.1))) == "seek_credit_repair"


def test_an_exempt_risk_intent_is_kept_when_unsure_or_ambiguous(tmp_path):
    classifier = _classifier(tmp_path, exempt_intents=RISK)
    low = _message(("express_distress", 0.15), ("out_of_scope", 0.12))
    ambiguous = _message(("seek_credit_repair", 0.42), ("ask_credit_record", 0.40))
    assert _intent(classifier, low) == "express_distress"
    assert _intent(classifier, ambiguous) == "seek_credit_repair"
    assert ambiguous.get(INTENT_RANKING_KEY)[0]["name"] == "seek_credit_repair"  # no nlu_fallback inserted


def test_other_intents_still_fall_back_when_unsure_or_ambiguous(tmp_path):
    classifier = _classifier(tmp_path, exempt_intents=RISK)
    low = _message(("ask_credit_record", 0.15), ("seek_credit_repair", 0.12))
    ambiguous = _message(("greet", 0.45), ("thank", 0.43))
    assert _intent(classifier, low) == "nlu_fallback"
    assert _intent(classifier, ambiguous) == "nlu_fallback"
    assert ambiguous.get(INTENT_RANKING_KEY)[1]["name"] == "greet"  # the ranking is kept behind the fallback


def test_a_message_with_nothing_to_read_falls_back_even_when_sure_or_exempt(tmp_path):
    classifier = _classifier(tmp_path, exempt_intents=RISK)
    for text in ("？？？", "   ", "😀😀😀", "", "。！…"):
        message = _message(("express_distress", 0.9), ("greet", 0.05), text=text)
        assert _intent(classifier, message) == "nlu_fallback", text
    assert _intent(classifier, _message(("greet", 0.9), ("thank", 0.05), text="hi")) == "greet"
    assert _intent(classifier, _message(("affirm", 0.9), ("deny", 0.05), text="嗯？")) == "affirm"
