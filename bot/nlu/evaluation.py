"""Honest NLU evaluation: the project's pipeline against a baseline, on a held-out file never trained on.

``python -m bot evaluate`` (docs/nlu-evaluation.md):

1. trains the model if its inputs changed (bot.ops.model_store);
2. evaluates it on ``tests/data/nlu_holdout.yml``: every held-out message parsed by the trained model, scored with
   scikit-learn exactly as the baseline is (per-intent precision, recall, F1; confusion matrix PNG);
3. trains and evaluates a baseline on the same split: character n-gram (char_wb 1-4) TF-IDF plus logistic
   regression (scikit-learn), on the same normalised training text;
4. reports, for both, macro-F1 and the recall of the risk intents, plus a product-level figure: the share of
   held-out risk-intent messages that get a risk answer from the intent OR from the tactics lexicon, and a
   message-by-message comparison of the two (McNemar's exact test) that says whether the file can tell
   them apart;
5. optionally (``--cross-validation``, on by default) 5-fold cross-validation on the training data for both
   (Rasa trains five NLU models: about half an hour on 2 cores).

Figures are printed and written to ``reports/nlu/evaluation.json`` (rendered as ``reports/nlu/README.md`` by
bot.nlu.report); confusion matrices to ``reports/nlu/*.png``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from bot import PROJECT_ROOT
from bot.intents import RISK_INTENTS
from bot.nlu.report import REPORT_DIR, write_report

HOLDOUT = PROJECT_ROOT / "tests" / "data" / "nlu_holdout.yml"
"""The held-out evaluation file (never trained on; a test checks that no example leaks into training)."""



TARGETS = {"macro_f1": 0.92, "risk_recall": 0.97}
"""The targets on the held-out file (docs/nlu-evaluation.md): macro-F1, and recall of each risk intent."""


def _examples(path: Path) -> Tuple[List[str], List[str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return [m.get("text") for m in data.intent_examples], [m.get("intent") for m in data.intent_examples]


def _report(true: Sequence[str], predicted: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Per-intent scores over the intents of the evaluated file (a prediction of another label, such as
    nlu_fallback, counts as a miss of the true intent, not as a class of its own)."""
    from sklearn.metrics import classification_report

    return classification_report(true, predicted, labels=sorted(set(true)), output_dict=True, zero_division=0)


def _summary(report: Dict[str, Dict[str, float]]) -> Dict[str, Any]:
    """Macro-F1, recall of each risk intent, pooled risk recall (share of all risk-intent messages recognised)
    and per-intent scores, rounded to 4 places, from a scikit-learn classification report dict."""
    per_intent = {name: {k: round(v, 4) for k, v in scores.items() if isinstance(v, (int, float))}
                  for name, scores in report.items()
                  if isinstance(scores, dict) and name not in ("macro avg", "weighted avg", "micro avg")}
    risk = [report[intent] for intent in RISK_INTENTS if isinstance(report.get(intent), dict)]
    support = sum(scores["support"] for scores in risk)
    return {
        "macro_f1": round(report["macro avg"]["f1-score"], 4),
        "risk_recall": {intent: round(report.get(intent, {}).get("recall", 0.0), 4) for intent in RISK_INTENTS},
        "risk_recall_pooled": round(sum(s["recall"] * s["support"] for s in risk) / support, 4) if support else 0.0,
        "per_intent": per_intent,
    }


def paired_comparison(true: Sequence[str], first: Sequence[str], second: Sequence[str],
                      only: Sequence[str] = ()) -> Dict[str, float]:
    """Message-by-message comparison of two classifiers on the same messages (McNemar's exact test).

    ``true``, ``first`` and ``second`` are parallel lists of intents (true, first's and second's prediction);
    ``only``, if given, restricts the count to messages whose true intent is in it. Returns counts of messages
    ``only_first_right``, ``only_second_right``, ``both_right`` and ``both_wrong``, and ``p_value``: the
    two-sided exact binomial probability of a split at least this uneven among the messages where exactly one
    is right, if both were equally good (McNemar 1947; scipy.stats.binomtest). A p_value near 1 means the
    file cannot tell the two apart.

    Raises:
        ValueError: the three lists differ in length.
    """
    from scipy.stats import binomtest

    if not len(true) == len(first) == len(second):
        raise ValueError("true, first and second must be parallel lists")
    counts = {"only_first_right": 0, "only_second_right": 0, "both_right": 0, "both_wrong": 0}
    for label, a, b in zip(true, first, second, strict=True):
        if only and label not in only:
            continue
        key = {(True, True): "both_right", (True, False): "only_first_right",
               (False, True): "only_second_right", (False, False): "both_wrong"}[(a == label, b == label)]
        counts[key] += 1
    discordant = counts["only_first_right"] + counts["only_second_right"]
    p_value = binomtest(counts["only_first_right"], discordant, 0.5).pvalue if discordant else 1.0
    return {**counts, "p_value": round(float(p_value), 4)}


def baseline_predictions(train_texts: Sequence[str], train_labels: Sequence[str],
                         test_texts: Sequence[str]) -> List[str]:
    """Char n-gram TF-IDF + logistic regression trained on the training data; predictions for test_texts."""
    from bot.nlu.intent_blend import char_ngram_classifier
    from bot.text_normalisation import normalise_text

    model = char_ngram_classifier(10.0, preprocessor=normalise_text)
    model.fit(list(train_texts), list(train_labels))
    return list(model.predict(list(test_texts)))


def baseline_cross_validation(texts: Sequence[str], labels: Sequence[str], folds: int = 5) -> Dict[str, Any]:
    """Stratified k-fold cross-validation of the baseline on the training data (seeded)."""
    from sklearn.model_selection import StratifiedKFold

    true: List[str] = []
    predicted: List[str] = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=20261130)
    for train_index, test_index in splitter.split(texts, labels):
        predicted += baseline_predictions([texts[i] for i in train_index], [labels[i] for i in train_index],
                                          [texts[i] for i in test_index])
        true += [labels[i] for i in test_index]
    return _summary(_report(true, predicted))


def _rasa(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "rasa", *args], cwd=PROJECT_ROOT, check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, stdout=subprocess.DEVNULL)


def pipeline_predictions(model: Path, texts: Sequence[str]) -> List[str]:
    """The trained model's intent for each text (``nlu_fallback`` where the bot would ask to clarify)."""
    return [parsed["intent"]["name"] for parsed in pipeline_parses(model, texts)]


Span = Tuple[str, int, int]
"""An entity occurrence: (entity type, start, end), character offsets into the message."""


def entity_scores(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> Dict[str, Dict[str, float]]:
    """Precision, recall and F1 of entity extraction per entity type and over all types (key ``all``).

    ``gold[i]`` and ``predicted[i]`` are the spans annotated in and extracted from message i. A prediction
    counts only with the same type and the exact same span (the CoNLL-2003 convention, Tjong Kim Sang and
    De Meulder 2003); values are not compared, since QuantityNormaliser rewrites them (两万 -> 20000).
    Each score dict has ``precision``, ``recall``, ``f1-score`` (in [0, 1], 4 places) and ``support`` (gold spans).

    Raises:
        ValueError: the two lists differ in length.
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted must be parallel lists")
    counts: Dict[str, Dict[str, int]] = {}
    for gold_spans, predicted_spans in zip(gold, predicted, strict=True):
        wanted, found = set(gold_spans), set(predicted_spans)
        for span in wanted | found:
            row = counts.setdefault(span[0], {"tp": 0, "fp": 0, "fn": 0})
            row["tp" if span in wanted and span in found else "fn" if span in wanted else "fp"] += 1
    counts["all"] = {key: sum(row[key] for row in counts.values()) for key in ("tp", "fp", "fn")}

    def scores(row: Dict[str, int]) -> Dict[str, float]:
        precision = row["tp"] / (row["tp"] + row["fp"]) if row["tp"] + row["fp"] else 0.0
        recall = row["tp"] / (row["tp"] + row["fn"]) if row["tp"] + row["fn"] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f1-score": round(f1, 4),
                "support": row["tp"] + row["fn"]}

    return {name: scores(row) for name, row in sorted(counts.items())}


def _gold_spans(path: Path) -> Tuple[List[str], List[List[Span]]]:
    from rasa.shared.nlu.training_data.loading import load_data

    examples = load_data(str(path)).intent_examples
    return ([m.get("text") for m in examples],
            [[(e["entity"], int(e["start"]), int(e["end"])) for e in m.get("entities") or []] for m in examples])


def pipeline_parses(model: Path, texts: Sequence[str]) -> List[Dict[str, Any]]:
    """The trained model's parse (Rasa's ``parse_message`` dict: intent, entities, ranking) of each text."""
    import asyncio
    import logging

    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # Rasa otherwise logs every parse at debug level
    logging.getLogger("rasa").setLevel(logging.WARNING)
    agent = Agent.load(str(model))

    async def parse_all() -> List[Dict[str, Any]]:
        return [await agent.parse_message(text) for text in texts]

    return asyncio.run(parse_all())


def pipeline_cross_validation(out: Path, folds: int = 5) -> Dict[str, Any]:
    """``rasa test nlu --cross-validation`` on the training data (trains ``folds`` NLU models)."""
    _rasa("test", "nlu", "--nlu", "data/nlu", "--config", "config.yml", "--cross-validation",
          "--folds", str(folds), "--out", str(out))
    report = json.loads((out / "intent_report.json").read_text())
    return _summary({k: v for k, v in report.items() if k != "accuracy"})


def risk_route_recall(texts: Sequence[str], labels: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of held-out risk-intent messages that get a risk answer: a risk intent predicted, or a red flag
    found by the tactics lexicon (which the guidance answers whatever the intent)."""
    from bot.risk import default_risk_engine

    engine = default_risk_engine()
    relevant = [(t, p) for t, label, p in zip(texts, labels, predicted, strict=True) if label in RISK_INTENTS]
    caught = sum(1 for t, p in relevant if p in RISK_INTENTS or engine.find_flags(t))
    return round(caught / len(relevant), 4) if relevant else 0.0


def _confusion_png(true: Sequence[str], predicted: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = sorted(set(true) | set(predicted))
    figure, axes = plt.subplots(figsize=(12, 12))
    ConfusionMatrixDisplay.from_predictions(true, predicted, labels=labels, ax=axes, xticks_rotation="vertical",
                                            colorbar=False)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _recall_with_counts(summary: Dict[str, Any], intent: str) -> str:
    """'0.967 (145/150)': recall to three places with the messages behind it, so that a figure just under a
    target is not printed rounded up to it."""
    scores = summary["per_intent"].get(intent, {})
    support = int(scores.get("support", 0))
    recall = float(scores.get("recall", 0.0))
    return f"{recall:.3f} ({round(recall * support)}/{support})"


def _print_table(pipeline: Dict[str, Any], baseline: Dict[str, Any]) -> None:
    print(f"{'intent':26s} {'pipeline P/R/F1':>22s}   {'baseline P/R/F1':>22s}")
    for intent, scores in sorted(pipeline["per_intent"].items()):
        other = baseline["per_intent"].get(intent, {})
        row = lambda s: f"{s.get('precision', 0):.2f}/{s.get('recall', 0):.2f}/{s.get('f1-score', 0):.2f}"  # noqa: E731
        print(f"{intent:26s} {row(scores):>22s}   {row(other):>22s}")


def evaluate(cross_validation: bool = True, folds: int = 5) -> Dict[str, Any]:
    """Run the whole evaluation, print the figures, write reports/nlu/; returns the figures as a dict."""
    from bot.ops.model_store import ensure_model

    model = ensure_model()
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    train_texts, train_labels = _examples(PROJECT_ROOT / "data" / "nlu")
    test_texts, test_labels = _examples(HOLDOUT)
    parses = pipeline_parses(model, test_texts)
    predicted = [parsed["intent"]["name"] for parsed in parses]
    entity_texts, gold_spans = _gold_spans(HOLDOUT)
    if entity_texts != list(test_texts):
        raise ValueError("the held-out file's intent examples and entity examples differ")
    entities = entity_scores(gold_spans, [[(e["entity"], int(e["start"]), int(e["end"]))
                                           for e in parsed.get("entities") or []] for parsed in parses])
    pipeline = _summary(_report(test_labels, predicted))
    _confusion_png(test_labels, predicted, REPORT_DIR / "pipeline_confusion_matrix.png",
                   "project pipeline (char n-gram model, risk weights, fallback) on the held-out file")
    baseline_predicted = baseline_predictions(train_texts, train_labels, test_texts)
    baseline = _summary(_report(test_labels, baseline_predicted))
    _confusion_png(test_labels, baseline_predicted, REPORT_DIR / "baseline_confusion_matrix.png",
                   "baseline (char TF-IDF + logistic regression) on the held-out file")
    figures: Dict[str, Any] = {
        "measured": dt.date.today().isoformat(),
        "commit": _git_commit(),
        "holdout_examples": len(test_texts),
        "training_examples": len(train_texts),
        "pipeline": pipeline,
        "baseline": baseline,
        "risk_route_recall": {
            "pipeline_plus_lexicon": risk_route_recall(test_texts, test_labels, predicted),
            "baseline_plus_lexicon": risk_route_recall(test_texts, test_labels, baseline_predicted),
        },
        "pipeline_fallbacks": predicted.count("nlu_fallback"),
        "entities": entities,
        "pipeline_vs_baseline": {
            "all_messages": paired_comparison(test_labels, predicted, baseline_predicted),
            "risk_intent_messages": paired_comparison(test_labels, predicted, baseline_predicted, RISK_INTENTS),
        },
        "targets": TARGETS,
    }
    _print_table(pipeline, baseline)
    print(f"\nmacro-F1 on the held-out file: pipeline {pipeline['macro_f1']:.3f}, baseline {baseline['macro_f1']:.3f}"
          f" (target >= {TARGETS['macro_f1']})")
    for intent in RISK_INTENTS:
        print(f"recall {intent:22s} pipeline {_recall_with_counts(pipeline, intent)}  "
              f"baseline {_recall_with_counts(baseline, intent)}  (target >= {TARGETS['risk_recall']})")
    print(f"pooled risk-intent recall: pipeline {pipeline['risk_recall_pooled']:.3f}, "
          f"baseline {baseline['risk_recall_pooled']:.3f}")
    print(f"risk answer given (intent or lexicon): {figures['risk_route_recall']}")
    print(f"pipeline fallbacks (asked to rephrase, counted as misses): {figures['pipeline_fallbacks']}")
    for name, scores in entities.items():
        print(f"entity {name:18s} P {scores['precision']:.3f}  R {scores['recall']:.3f}  F1 {scores['f1-score']:.3f}"
              f"  ({scores['support']} annotated)")
    for scope, pair in figures["pipeline_vs_baseline"].items():
        print(f"pipeline vs baseline, {scope.replace('_', ' ')}: only pipeline right {pair['only_first_right']}, "
              f"only baseline right {pair['only_second_right']}, McNemar exact p = {pair['p_value']:.3f}")
    if cross_validation:
        figures["cross_validation"] = {
            "folds": folds,
            "pipeline": pipeline_cross_validation(REPORT_DIR / "rasa-cv", folds),
            "baseline": baseline_cross_validation(train_texts, train_labels, folds),
        }
        cv = figures["cross_validation"]
        print(f"{folds}-fold cross-validation macro-F1: pipeline {cv['pipeline']['macro_f1']:.3f}, "
              f"baseline {cv['baseline']['macro_f1']:.3f}; pooled risk-intent recall: pipeline "
              f"{cv['pipeline']['risk_recall_pooled']:.3f}, baseline {cv['baseline']['risk_recall_pooled']:.3f}")
    (REPORT_DIR / "evaluation.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    print(f"\nWritten: {REPORT_DIR / 'evaluation.json'}, confusion matrices and {write_report()}")
    return figures
