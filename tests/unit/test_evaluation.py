"""bot.nlu.evaluation's scoring helpers on hand-made predictions (no model is trained)."""
from __future__ import annotations

import pytest

from bot.nlu.evaluation import _recall_with_counts, _report, _summary, paired_comparison


def test_summary_pools_risk_recall_over_messages_and_counts_a_fallback_as_a_miss():
    true = ["agency_victim"] * 4 + ["express_distress"] * 2 + ["greet"] * 2
    predicted = ["agency_victim"] * 3 + ["nlu_fallback"] + ["express_distress", "ask_evade_debt"] + ["greet"] * 2
    summary = _summary(_report(true, predicted))
    assert summary["risk_recall"]["agency_victim"] == pytest.approx(0.75)
    assert summary["risk_recall"]["express_distress"] == pytest.approx(0.5)
    assert summary["risk_recall_pooled"] == pytest.approx(4 / 6, abs=1e-4)
    assert "nlu_fallback" not in summary["per_intent"]


def test_recall_is_printed_with_its_counts_and_never_rounded_up_to_a_target():
    true = ["seek_credit_repair"] * 150
    predicted = ["seek_credit_repair"] * 145 + ["ask_evade_debt"] * 5
    summary = _summary(_report(true, predicted))
    assert _recall_with_counts(summary, "seek_credit_repair") == "0.967 (145/150)"
    assert _recall_with_counts(summary, "express_distress") == "0.000 (0/0)"


def test_paired_comparison_counts_discordant_messages_and_tests_them():
    true = ["a"] * 12
    first = ["a"] * 12
    second = ["b"] * 10 + ["a"] * 2
    result = paired_comparison(true, first, second)
    assert (result["only_first_right"], result["only_second_right"], result["both_right"],
            result["both_wrong"]) == (10, 0, 2, 0)
    assert result["p_value"] == pytest.approx(2 / 2 ** 10, abs=1e-4)


def test_paired_comparison_cannot_tell_equal_classifiers_apart():
    true = ["a", "a", "b", "b"]
    result = paired_comparison(true, ["a", "x", "b", "b"], ["x", "a", "b", "b"])
    assert result["only_first_right"] == result["only_second_right"] == 1
    assert result["p_value"] == pytest.approx(1.0)
    assert paired_comparison(true, true, true)["p_value"] == 1.0


def test_paired_comparison_can_be_restricted_to_some_intents():
    result = paired_comparison(["a", "b"], ["a", "x"], ["x", "b"], only=("b",))
    assert (result["only_first_right"], result["only_second_right"]) == (0, 1)


def test_paired_comparison_refuses_lists_of_different_length():
    with pytest.raises(ValueError):
        paired_comparison(["a"], ["a", "b"], ["a"])


def test_entity_scores_count_only_the_same_type_on_the_same_span():
    from bot.nlu.evaluation import entity_scores

    gold = [[("bank", 0, 2), ("amount", 5, 7)], [("debt_type", 3, 6)], []]
    predicted = [[("bank", 0, 2), ("amount", 5, 8)], [("bank", 3, 6)], [("amount", 0, 2)]]
    scores = entity_scores(gold, predicted)
    assert scores["bank"] == {"precision": 0.5, "recall": 1.0, "f1-score": 0.6667, "support": 1}
    assert scores["amount"]["precision"] == 0.0 and scores["amount"]["support"] == 1
    assert scores["debt_type"]["recall"] == 0.0
    assert scores["all"] == {"precision": 0.25, "recall": 0.3333, "f1-score": 0.2857, "support": 3}


def test_entity_scores_refuse_lists_of_different_length():
    from bot.nlu.evaluation import entity_scores

    with pytest.raises(ValueError):
        entity_scores([[]], [])
