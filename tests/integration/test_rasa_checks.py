"""Rasa's own checks on the project: data validation, test stories, and the held-out NLU evaluation."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rasa.shared.nlu.training_data.loading import load_data

from bot import PROJECT_ROOT
from bot.intents import CORE_INTENTS, RISK_INTENTS

HOLDOUT = PROJECT_ROOT / "tests" / "data" / "nlu_holdout.yml"
MACRO_F1_GATE = 0.94
"""Gate on held-out macro-F1. The target is 0.92; measured 0.981 on the 1,105-message file (reports/nlu/),
so the gate sits under what is measured and above the target."""

RISK_RECALL_GATE = 0.96
"""Gate on each risk intent's held-out recall (88 to 100 messages each, so one message is about 0.01).
The target is 0.97; measured 0.980 (seek_credit_repair, 97 of 99) to 1.000, so the gate sits one or two
messages under the target and fails on a real regression, not on a single message."""

POOLED_RISK_RECALL_GATE = 0.98
"""Gate on the recall over all held-out risk-intent messages together (measured 0.992; 482 of 486)."""

MACRO_F1_MARGIN_TO_BASELINE = 0.01
"""How far the pipeline's held-out macro-F1 may fall below the baseline's before CI fails. Measured 0.001
ahead (0.981 against 0.980; McNemar p = 1.0, so the file cannot tell them apart on all messages): a gate
at "ahead" would fail on noise, this one fails on a real regression."""

ENTITY_RECALL_GATES = {"bank": 0.85, "debt_type": 0.80}
"""Gates on the held-out recall (same type, exact span) of the entities that fill the bank and debt_type
slots: measured 0.887 (115 annotated) and 0.852 (169), so each gate is about four messages under."""


def _rasa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rasa", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def _normalised(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def test_training_data_has_enough_varied_examples_per_core_intent():
    counts = load_data(str(PROJECT_ROOT / "data" / "nlu")).number_of_examples_per_intent
    for intent in CORE_INTENTS:
        assert counts.get(intent, 0) >= 60, intent


def test_holdout_has_enough_examples_and_none_is_in_the_training_data():
    holdout = load_data(str(HOLDOUT))
    counts = holdout.number_of_examples_per_intent
    for intent in CORE_INTENTS:
        assert counts.get(intent, 0) >= 15, intent
    training = {_normalised(m.get("text")) for m in load_data(str(PROJECT_ROOT / "data" / "nlu")).intent_examples}
    leaked = [m.get("text") for m in holdout.intent_examples if _normalised(m.get("text")) in training]
    assert leaked == []


def test_rasa_data_validate_passes():
    result = _rasa("data", "validate", "--data", "data/nlu", "data/dialogue", "--domain", "domain")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_test_stories_are_predicted_without_errors(trained_model, tmp_path):
    result = _rasa("test", "core", "--model", str(trained_model), "--stories", "tests/data/test_stories.yml",
                   "--fail-on-prediction-errors", "--out", str(tmp_path / "core"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def holdout_figures(trained_model) -> dict:
    """The pipeline's and the baseline's scores on the held-out file (bot.nlu.evaluation, as
    `python -m bot evaluate` computes them)."""
    from bot.nlu.evaluation import (
        _examples,
        _gold_spans,
        _report,
        _summary,
        baseline_predictions,
        entity_scores,
        pipeline_parses,
    )

    train_texts, train_labels = _examples(PROJECT_ROOT / "data" / "nlu")
    texts, labels = _examples(HOLDOUT)
    parses = pipeline_parses(trained_model, texts)
    pipeline = _summary(_report(labels, [parsed["intent"]["name"] for parsed in parses]))
    baseline = _summary(_report(labels, baseline_predictions(train_texts, train_labels, texts)))
    _, gold = _gold_spans(HOLDOUT)
    entities = entity_scores(gold, [[(e["entity"], int(e["start"]), int(e["end"])) for e in parsed["entities"]]
                                    for parsed in parses])
    return {"pipeline": pipeline, "baseline": baseline, "entities": entities}


def test_holdout_macro_f1_meets_the_gate(holdout_figures):
    macro_f1 = holdout_figures["pipeline"]["macro_f1"]
    assert macro_f1 >= MACRO_F1_GATE, f"macro-F1 {macro_f1:.3f} < {MACRO_F1_GATE}"


@pytest.mark.parametrize("intent", RISK_INTENTS)
def test_holdout_recall_of_each_risk_intent_meets_the_gate(holdout_figures, intent):
    recall = holdout_figures["pipeline"]["risk_recall"][intent]
    assert recall >= RISK_RECALL_GATE, f"{intent} recall {recall:.3f} < {RISK_RECALL_GATE}"


def test_pooled_risk_recall_meets_the_gate(holdout_figures):
    pooled = holdout_figures["pipeline"]["risk_recall_pooled"]
    assert pooled >= POOLED_RISK_RECALL_GATE, f"pooled risk recall {pooled:.3f}"


def test_pipeline_is_ahead_of_the_baseline_on_pooled_risk_recall(holdout_figures):
    pipeline, baseline = holdout_figures["pipeline"], holdout_figures["baseline"]
    assert pipeline["risk_recall_pooled"] > baseline["risk_recall_pooled"], (pipeline["risk_recall_pooled"],
                                                                              baseline["risk_recall_pooled"])


def test_pipeline_macro_f1_is_not_far_behind_the_baseline(holdout_figures):
    pipeline, baseline = holdout_figures["pipeline"], holdout_figures["baseline"]
    assert pipeline["macro_f1"] >= baseline["macro_f1"] - MACRO_F1_MARGIN_TO_BASELINE, (pipeline["macro_f1"],
                                                                                      baseline["macro_f1"])


@pytest.mark.parametrize("entity", sorted(ENTITY_RECALL_GATES))
def test_holdout_recall_of_slot_entities_meets_the_gate(holdout_figures, entity):
    recall = holdout_figures["entities"][entity]["recall"]
    assert recall >= ENTITY_RECALL_GATES[entity], f"{entity} recall {recall:.3f} < {ENTITY_RECALL_GATES[entity]}"
