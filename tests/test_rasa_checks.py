"""Rasa's own checks on the project: data validation, test stories, and the held-out NLU evaluation."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rasa.shared.nlu.training_data.loading import load_data

from bot import PROJECT_ROOT

CORE_INTENTS = [
    "seek_debt_agency", "seek_credit_repair", "agency_victim", "ask_evade_debt", "ask_legal_risk",
    "ask_hardship_plan", "report_collection_abuse", "ask_credit_record", "ask_complaint_channel",
    "express_distress", "request_human",
]
HOLDOUT = PROJECT_ROOT / "tests" / "nlu_holdout.yml"
MACRO_F1_GATE = 0.85
"""Issue 2's gate on the held-out file."""


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
    result = _rasa("test", "core", "--model", str(trained_model), "--stories", "tests/test_stories.yml",
                   "--fail-on-prediction-errors", "--out", str(tmp_path / "core"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def holdout_report(trained_model, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("nlu")
    result = _rasa("test", "nlu", "--model", str(trained_model), "--nlu", str(HOLDOUT), "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "intent_report.json").read_text())


def test_holdout_macro_f1_meets_the_gate(holdout_report):
    macro_f1 = holdout_report["macro avg"]["f1-score"]
    assert macro_f1 >= MACRO_F1_GATE, f"macro-F1 {macro_f1:.3f} < {MACRO_F1_GATE}"
