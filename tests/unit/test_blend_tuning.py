"""bot.nlu.blend_tuning's decision rule and grid scoring, on hand-made rankings (no model is trained)."""
from __future__ import annotations

import pytest

from bot.nlu.blend_tuning import choose, decide, score_grid

DIET = [("greet", 0.7), ("ask_evade_debt", 0.3)]
CHAR = {"greet": 0.4, "ask_evade_debt": 0.6}


def test_decide_blends_weights_and_prefers_a_close_risk_intent():
    assert decide(DIET, CHAR, diet_weight=1.0, risk_weight=1.0, threshold=0.2) == "greet"
    assert decide(DIET, CHAR, diet_weight=0.0, risk_weight=1.0, threshold=0.2) == "ask_evade_debt"
    # 0.5 * 0.7 + 0.5 * 0.4 = 0.55 against 0.45: greet, until the risk intent's weight tips it.
    assert decide(DIET, CHAR, diet_weight=0.5, risk_weight=1.0, threshold=0.2) == "greet"
    assert decide(DIET, CHAR, diet_weight=0.5, risk_weight=1.5, threshold=0.2) == "ask_evade_debt"


def test_decide_falls_back_when_unsure_or_ambiguous():
    assert decide([], {"greet": 0.26, "thank": 0.25, "deny": 0.49}, 0.0, 1.0, 0.5) == "nlu_fallback"
    assert decide([], {"greet": 0.51, "thank": 0.49}, 0.0, 1.0, 0.2) == "nlu_fallback"
    assert decide([], {}, 0.5, 1.0, 0.2) == "nlu_fallback"


def test_decide_keeps_an_unsure_risk_intent_only_when_risk_intents_are_exempt():
    unsure = {"ask_evade_debt": 0.18, "greet": 0.17, "thank": 0.65 / 2, "deny": 0.65 / 2}
    assert decide([], {"ask_evade_debt": 0.34, "greet": 0.33, "thank": 0.33}, 0.0, 1.0, 0.2) == "nlu_fallback"
    assert decide([], {"ask_evade_debt": 0.34, "greet": 0.33, "thank": 0.33}, 0.0, 1.0, 0.2, True) == "ask_evade_debt"
    assert decide([], {"greet": 0.34, "ask_evade_debt": 0.33, "thank": 0.33}, 0.0, 1.0, 0.2, True) == "nlu_fallback"
    assert decide([], unsure, 0.0, 1.0, 0.5, True) == "nlu_fallback"  # thank/deny outrank it: not a risk top


def test_score_grid_ranks_settings_by_macro_f1():
    labels = ["greet", "ask_evade_debt"]
    diet = [[("greet", 0.9), ("ask_evade_debt", 0.1)], [("greet", 0.8), ("ask_evade_debt", 0.2)]]
    char = {1.0: [{"greet": 0.8, "ask_evade_debt": 0.2}, {"greet": 0.1, "ask_evade_debt": 0.9}]}
    grid = {"diet_weight": (1.0, 0.0), "C": (1.0,), "risk_weight": (1.0,), "threshold": (0.2,)}
    rows = score_grid(labels, diet, char, grid)
    assert [row["diet_weight"] for row in rows] == [0.0, 1.0]
    assert rows[0]["macro_f1"] == pytest.approx(1.0)
    assert rows[0]["risk_recall_pooled"] == pytest.approx(1.0)
    assert rows[1]["risk_recall_pooled"] == pytest.approx(0.0)


def _row(f1, recall, fallbacks=0, weight=0.0):
    return {"diet_weight": weight, "macro_f1": f1, "risk_recall_pooled": recall, "fallbacks": fallbacks}


def test_choose_trades_a_little_macro_f1_for_risk_recall_but_not_more():
    rows = [_row(0.874, 0.941, weight=0.1), _row(0.861, 0.953, weight=0.2), _row(0.850, 0.957, weight=0.3)]
    assert choose(rows, tolerance=0.015)["diet_weight"] == 0.2
    assert choose(rows, tolerance=0.03)["diet_weight"] == 0.3
    assert choose(rows, tolerance=0.0)["diet_weight"] == 0.1


def test_choose_breaks_ties_by_macro_f1_then_fewer_fallbacks():
    assert choose([_row(0.86, 0.95, weight=1), _row(0.87, 0.95, weight=2)])["diet_weight"] == 2
    assert choose([_row(0.87, 0.95, 9, weight=1), _row(0.87, 0.95, 3, weight=2)])["diet_weight"] == 2


def test_choose_refuses_an_empty_grid():
    with pytest.raises(ValueError):
        choose([])


def test_a_pipeline_without_an_intent_classifier_before_the_blender_is_scored_as_the_char_model_alone():
    from bot.nlu.blend_tuning import has_prior_intent_classifier

    assert has_prior_intent_classifier([{"name": "JiebaTokenizer"}, {"name": "DIETClassifier"}])
    assert not has_prior_intent_classifier([{"name": "JiebaTokenizer"}, {"name": "CRFEntityExtractor"},
                                            {"name": "bot.nlu.intent_blend.CharNgramIntentBlender"}])
