"""Choose CharNgramIntentBlender's settings by cross-validation on the training data only.

``python -m bot tune-blend`` (docs/nlu-evaluation.md):

1. splits ``data/nlu`` into 5 stratified folds (seeded);
2. for each fold trains the NLU pipeline of config.yml WITHOUT the blender (DIET's full ranking is kept) and
   parses the fold's held-back messages (about 4 minutes per fold on 2 cores); when config.yml has no intent
   classifier before the blender (has_prior_intent_classifier), nothing is trained and only diet_weight 0 is
   scored;
3. fits the char n-gram logistic regression on the same fold for each ``C``;
4. scores every combination of DIET weight, ``C``, risk-intent weight, fallback threshold and whether a risk
   intent is exempt from the fallback exactly as the pipeline would decide (blend, weight, renormalise,
   fallback below the threshold or within 0.05 of the runner-up), and prints macro-F1 and pooled
   risk-intent recall (diet_weight 0 is the char model alone);
5. names the recommended row (``choose``): the highest pooled risk-intent recall among the rows within
   MACRO_F1_TOLERANCE of the best macro-F1, because missing a risk intent is the worst failure (docs/nlu-evaluation.md).

The held-out file is never read. Figures go to ``reports/nlu/blend_tuning.json``.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

from bot import PROJECT_ROOT
from bot.intents import RISK_INTENTS
from bot.nlu.evaluation import _report, _summary
from bot.nlu.report import REPORT_DIR, write_report

Ranking = List[Tuple[str, float]]
"""An intent ranking: (intent, confidence) pairs."""

AMBIGUITY_THRESHOLD = 0.05
"""FallbackClassifier's ambiguity_threshold in config.yml (top two closer than this: nlu_fallback)."""

MACRO_F1_TOLERANCE = 0.015
"""How much macro-F1 (absolute) ``choose`` gives up, at most, for pooled risk-intent recall."""

GRID = {"diet_weight": (1.0, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0), "C": (10.0, 30.0, 100.0),
        "risk_weight": (1.0, 1.5, 2.0), "threshold": (0.3, 0.2), "risk_exempt": (False, True)}
"""The settings tried (diet_weight 1.0 is DIET alone, 0.0 the char model alone; risk_exempt True is
bot.nlu.risk_fallback.RiskAwareFallbackClassifier with the risk intents exempt, False Rasa's FallbackClassifier)."""


def decide(diet: Ranking, char: Mapping[str, float], diet_weight: float, risk_weight: float,
           threshold: float, risk_exempt: bool = False) -> str:
    """The intent the pipeline would predict from DIET's ranking and the char model's probabilities.

    Mirrors CharNgramIntentBlender.blend (ties ranked by intent name) followed by the fallback classifier:
    returns ``nlu_fallback`` when the top confidence is below ``threshold`` or within AMBIGUITY_THRESHOLD of
    the second, unless ``risk_exempt`` and the top intent is a risk intent (RiskAwareFallbackClassifier).
    RiskAwareFallbackClassifier's rule for a text with nothing to read is not mirrored (no text is passed):
    no training line is of that kind.
    """
    blended: Dict[str, float] = {name: (1.0 - diet_weight) * p for name, p in char.items()}
    for name, confidence in diet:
        blended[name] = blended.get(name, 0.0) + diet_weight * confidence
    blended = {name: p * (risk_weight if name in RISK_INTENTS else 1.0) for name, p in blended.items()}
    total = sum(blended.values()) or 1.0
    ranked = sorted(((p / total, name) for name, p in blended.items()), key=lambda item: (-item[0], item[1]))
    if not ranked:
        return "nlu_fallback"
    top, runner_up = ranked[0][0], (ranked[1][0] if len(ranked) > 1 else 0.0)
    if risk_exempt and ranked[0][1] in RISK_INTENTS:
        return ranked[0][1]
    return ranked[0][1] if top >= threshold and top - runner_up >= AMBIGUITY_THRESHOLD else "nlu_fallback"


def score_grid(labels: Sequence[str], diet: Sequence[Ranking], char_by_c: Mapping[float, Sequence[Mapping[str, float]]],
               grid: Mapping[str, Iterable[Any]] = GRID) -> List[Dict[str, Any]]:
    """Macro-F1 and pooled risk-intent recall for each combination of settings, best macro-F1 first.

    ``labels[i]`` is the true intent of message i, ``diet[i]`` DIET's ranking for it and ``char_by_c[C][i]``
    the char model's probabilities (fitted with that C) for it, all from folds that did not train on it.
    """
    rows = []
    for weight, c, risk, threshold, exempt in itertools.product(
            grid["diet_weight"], grid["C"], grid["risk_weight"], grid["threshold"], grid.get("risk_exempt", (False,))):
        predicted = [decide(d, p, weight, risk, threshold, exempt) for d, p in zip(diet, char_by_c[c], strict=True)]
        summary = _summary(_report(labels, predicted))
        rows.append({"diet_weight": weight, "C": c, "risk_weight": risk, "threshold": threshold, "risk_exempt": exempt,
                     "macro_f1": summary["macro_f1"], "risk_recall_pooled": summary["risk_recall_pooled"],
                     "fallbacks": predicted.count("nlu_fallback")})
    return sorted(rows, key=lambda row: (-row["macro_f1"], -row["risk_recall_pooled"]))


def choose(rows: Sequence[Mapping[str, Any]], tolerance: float = MACRO_F1_TOLERANCE) -> Mapping[str, Any]:
    """The recommended row of ``score_grid``'s output.

    Among rows whose macro-F1 is at least (best macro-F1 - ``tolerance``), the one with the highest pooled
    risk-intent recall; ties go to the higher macro-F1, then to fewer fallbacks.

    Raises:
        ValueError: ``rows`` is empty.
    """
    if not rows:
        raise ValueError("no rows to choose from")
    best_f1 = max(float(row["macro_f1"]) for row in rows)
    eligible = [row for row in rows if float(row["macro_f1"]) >= best_f1 - tolerance - 1e-12]
    return max(eligible, key=lambda row: (float(row["risk_recall_pooled"]), float(row["macro_f1"]),
                                          -int(row["fallbacks"])))


def _format_row(row: Mapping[str, Any]) -> str:
    return (f"{row['diet_weight']:>11.1f} {row['C']:>5.0f} {row['risk_weight']:>11.1f} {row['threshold']:>9.1f} "
            f"{str(row.get('risk_exempt', False)):>11s} "
            f"{row['macro_f1']:>8.3f} {row['risk_recall_pooled']:>11.3f} {row['fallbacks']:>9d}")


PRIOR_INTENT_CLASSIFIERS = frozenset({"DIETClassifier", "SklearnIntentClassifier", "LogisticRegressionClassifier",
                                      "KeywordIntentClassifier", "MitieIntentClassifier"})
"""Rasa's intent classifiers whose ranking the blender can take; without one the char model stands alone."""


def has_prior_intent_classifier(pipeline: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a pipeline (config.yml's list of ``{"name": ...}`` entries) has one of PRIOR_INTENT_CLASSIFIERS."""
    return any(str(component.get("name")) in PRIOR_INTENT_CLASSIFIERS for component in pipeline)


def _fold_rankings(folds: int) -> Tuple[List[str], List[str], List[Ranking], List[Tuple[List[int], List[int]]]]:
    import asyncio
    import logging
    import tempfile

    import yaml
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData
    from rasa.utils.log_utils import configure_structlog
    from sklearn.model_selection import StratifiedKFold

    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8"))
    config["pipeline"] = [c for c in config["pipeline"] if not c["name"].endswith("CharNgramIntentBlender")]
    config["policies"] = []
    data = load_data(str(PROJECT_ROOT / "data" / "nlu"))
    examples = data.intent_examples
    texts = [m.get("text") for m in examples]
    labels = [m.get("intent") for m in examples]
    diet: List[Ranking] = [[] for _ in examples]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=20261130)
    if not has_prior_intent_classifier(config["pipeline"]):
        print("config.yml has no intent classifier before the blender: only the char model is scored", flush=True)
        return texts, labels, diet, [(list(a), list(b)) for a, b in splitter.split(texts, labels)]
    splits = []
    with tempfile.TemporaryDirectory() as work:
        config_path = Path(work) / "config.yml"
        config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        for number, (train_index, test_index) in enumerate(splitter.split(texts, labels)):
            fold_data = TrainingData([examples[i] for i in train_index], entity_synonyms=data.entity_synonyms,
                                     lookup_tables=data.lookup_tables)
            nlu_path = Path(work) / f"fold{number}.yml"
            nlu_path.write_text(fold_data.nlu_as_yaml(), encoding="utf-8")
            print(f"fold {number + 1}/{folds}: training DIET without the blender...", flush=True)
            model = train_nlu(str(config_path), str(nlu_path), work, fixed_model_name=f"fold{number}")
            configure_structlog(logging.WARNING)
            logging.getLogger("rasa").setLevel(logging.WARNING)
            agent = Agent.load(model)

            async def parse_all(indices: Sequence[int], loaded: Agent = agent) -> List[dict]:
                return [await loaded.parse_message(texts[i]) for i in indices]

            for i, parsed in zip(test_index, asyncio.run(parse_all(test_index)), strict=True):
                diet[i] = [(r["name"], r["confidence"]) for r in parsed["intent_ranking"]
                           if r["name"] != "nlu_fallback"]
            splits.append((list(train_index), list(test_index)))
    return texts, labels, diet, splits


def _char_probabilities(texts: Sequence[str], labels: Sequence[str], splits, c: float) -> List[Dict[str, float]]:
    from bot.nlu.intent_blend import char_ngram_classifier
    from bot.text_normalisation import normalise_text

    probabilities: List[Dict[str, float]] = [{} for _ in texts]
    for train_index, test_index in splits:
        model = char_ngram_classifier(c, preprocessor=normalise_text)
        model.fit([texts[i] for i in train_index], [labels[i] for i in train_index])
        for i, row in zip(test_index, model.predict_proba([texts[i] for i in test_index]), strict=True):
            probabilities[i] = {str(name): float(p) for name, p in zip(model.classes_, row, strict=True)}
    return probabilities


def tune(folds: int = 5) -> List[Dict[str, Any]]:
    """Run the cross-validated grid (trains ``folds`` NLU models if the pipeline has a prior intent classifier),
    print the best rows, write the JSON."""
    texts, labels, diet, splits = _fold_rankings(folds)
    char_by_c = {c: _char_probabilities(texts, labels, splits, c) for c in GRID["C"]}
    grid = GRID if any(diet) else {**GRID, "diet_weight": (0.0,)}
    rows = score_grid(labels, diet, char_by_c, grid)
    print(f"{'diet_weight':>11s} {'C':>5s} {'risk_weight':>11s} {'threshold':>9s} {'risk_exempt':>11s} "
          f"{'macro-F1':>8s} {'risk recall':>11s} {'fallbacks':>9s}")
    for row in rows[:15]:
        print(_format_row(row))
    chosen = choose(rows)
    print(f"\nRecommended (highest pooled risk recall within {MACRO_F1_TOLERANCE} of the best macro-F1):")
    print(_format_row(chosen))
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "blend_tuning.json").write_text(
        json.dumps({"folds": folds, "macro_f1_tolerance": MACRO_F1_TOLERANCE, "recommended": chosen, "rows": rows},
                   indent=2) + "\n")
    written = [str(REPORT_DIR / "blend_tuning.json")]
    if (REPORT_DIR / "evaluation.json").exists():
        written.append(str(write_report()))
    print(f"\nWritten: {', '.join(written)}")
    return rows
