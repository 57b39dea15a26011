"""Render the NLU figures in ``reports/nlu/*.json`` as ``reports/nlu/README.md``, so that no figure is typed twice.

``python -m bot evaluate`` writes ``evaluation.json`` (held-out file, baseline, cross-validation) and
``python -m bot tune-blend`` writes ``blend_tuning.json`` (the cross-validated grid); both then call
:func:`write_report`, and ``python -m bot nlu-report`` renders again from the files as they are.
``tests/unit/test_nlu_report.py`` fails when the committed README.md is not the rendering of the committed JSON.
The method behind the figures is in ``docs/nlu-evaluation.md``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from bot import PROJECT_ROOT
from bot.intents import RISK_INTENTS

REPORT_DIR = PROJECT_ROOT / "reports" / "nlu"
"""Where the figures are (``evaluation.json``, ``blend_tuning.json``) and where README.md is written."""

REPORT_FILE = "README.md"
"""The rendered report's file name inside REPORT_DIR."""


def _recall(summary: Mapping[str, Any], intent: str) -> str:
    scores = summary["per_intent"].get(intent, {})
    support = int(scores.get("support", 0))
    recall = float(scores.get("recall", 0.0))
    return f"{recall:.3f} ({round(recall * support)}/{support})"


def _pooled(summary: Mapping[str, Any]) -> str:
    support = sum(int(summary["per_intent"].get(i, {}).get("support", 0)) for i in RISK_INTENTS)
    pooled = float(summary["risk_recall_pooled"])
    return f"{pooled:.3f} ({round(pooled * support)}/{support})"


def _setting(row: Mapping[str, Any]) -> str:
    exempt = ", risk intents exempt from the fallback" if row.get("risk_exempt") else ""
    risk = f", risk intents ×{row['risk_weight']:g}" if float(row["risk_weight"]) != 1.0 else ""
    if float(row["diet_weight"]) == 1.0:
        blend = "DIET alone"
    elif float(row["diet_weight"]) == 0.0:
        blend = f"char n-gram model alone (C={row['C']:g})"
    else:
        blend = f"DIET {row['diet_weight']:g} + char n-gram {1 - float(row['diet_weight']):g} (C={row['C']:g})"
    return f"{blend}{risk}{exempt}, fallback below {row['threshold']:g}"


def _grid_rows(tuning: Mapping[str, Any]) -> List[List[str]]:
    rows: List[Mapping[str, Any]] = tuning["rows"]
    picks: List[tuple] = [("recommended (config.yml)", tuning["recommended"])]

    def best(label: str, candidates: List[Mapping[str, Any]], key: str) -> None:
        if candidates:
            picks.append((label, max(candidates, key=lambda r: (r[key], r["macro_f1"]))))

    best("best macro-F1", rows, "macro_f1")
    best("best pooled risk recall", rows, "risk_recall_pooled")
    best("best of DIET alone", [r for r in rows if float(r["diet_weight"]) == 1.0], "macro_f1")
    best("best of the char model alone", [r for r in rows if float(r["diet_weight"]) == 0.0], "macro_f1")
    return [[label, _setting(row), f"{row['macro_f1']:.3f}", f"{row['risk_recall_pooled']:.3f}", str(row["fallbacks"])]
            for label, row in picks]


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def render_report(evaluation: Mapping[str, Any], tuning: Optional[Mapping[str, Any]] = None,
                  crisis: Optional[Mapping[str, Any]] = None) -> str:
    """The Markdown report for the figures of ``evaluation.json`` (and ``blend_tuning.json`` and
    ``crisis.json``, when given).

    Raises KeyError if a file lacks a field the report shows (a file from an older evaluation).
    """
    pipeline, baseline = evaluation["pipeline"], evaluation["baseline"]
    targets = evaluation["targets"]
    paired = evaluation["pipeline_vs_baseline"]
    lines = [
        "# NLU figures",
        "",
        "Rendered by `python -m bot nlu-report` from `evaluation.json` and `blend_tuning.json` in this folder; do "
        "not edit by hand. How they are measured: [docs/nlu-evaluation.md](../../docs/nlu-evaluation.md).",
        "",
        f"Measured on {evaluation['measured']} at commit {evaluation['commit']}: "
        f"{evaluation['holdout_examples']:,} held-out messages (`tests/data/nlu_holdout.yml`), "
        f"{evaluation['training_examples']:,} training examples.",
        "",
        "## Held-out file",
        "",
    ]
    rows = [["macro-F1", f"**{pipeline['macro_f1']:.3f}**", f"{baseline['macro_f1']:.3f}",
             f"≥ {targets['macro_f1']}, ahead of the baseline"]]
    rows += [[f"recall {intent}", _recall(pipeline, intent), _recall(baseline, intent), f"≥ {targets['risk_recall']}"]
             for intent in RISK_INTENTS]
    rows.append(["pooled risk-intent recall", f"**{_pooled(pipeline)}**", _pooled(baseline), "ahead of the baseline"])
    route = evaluation["risk_route_recall"]
    rows.append(["risk answer given (intent or tactics lexicon)", f"{route['pipeline_plus_lexicon']:.3f}",
                 f"{route['baseline_plus_lexicon']:.3f}", ""])
    for scope, label in (("all_messages", "messages"), ("risk_intent_messages", "risk-intent messages")):
        pair = paired[scope]
        rows.append([f"{label} only this one gets right", str(pair["only_first_right"]),
                     str(pair["only_second_right"]), f"McNemar exact p = {pair['p_value']:.3g}"])
    rows.append(["fallbacks (asked to rephrase, counted as misses)", str(evaluation["pipeline_fallbacks"]), "0", ""])
    lines += _table(["", "pipeline", "baseline (char TF-IDF + LR)", "target"], rows)
    cv = evaluation.get("cross_validation")
    if cv:
        lines += ["", f"## {cv['folds']}-fold cross-validation on the training data", ""]
        lines += _table(["", "pipeline", "baseline"], [
            ["macro-F1", f"{cv['pipeline']['macro_f1']:.3f}", f"{cv['baseline']['macro_f1']:.3f}"],
            ["pooled risk-intent recall", f"{cv['pipeline']['risk_recall_pooled']:.3f}",
             f"{cv['baseline']['risk_recall_pooled']:.3f}"]])
    lines += ["", "## Per intent on the held-out file (precision / recall / F1)", ""]
    per_intent = []
    for intent, scores in sorted(pipeline["per_intent"].items()):
        other = baseline["per_intent"].get(intent, {})
        triple = lambda s: f"{s.get('precision', 0):.2f} / {s.get('recall', 0):.2f} / {s.get('f1-score', 0):.2f}"  # noqa: E731
        per_intent.append([intent, str(int(scores.get("support", 0))), triple(scores), triple(other)])
    lines += _table(["intent", "messages", "pipeline", "baseline"], per_intent)
    entities = evaluation.get("entities")
    if entities:
        lines += ["", "## Entities on the held-out file (same type, exact span)", ""]
        lines += _table(["entity", "annotated", "precision", "recall", "F1"], [
            [name, str(scores["support"]), f"{scores['precision']:.3f}", f"{scores['recall']:.3f}",
             f"{scores['f1-score']:.3f}"] for name, scores in entities.items()])
    if tuning:
        lines += ["", f"## Blend settings ({tuning['folds']}-fold cross-validation on the training data only)", "",
                  f"`python -m bot tune-blend` recommends the highest pooled risk-intent recall among the settings "
                  f"within {tuning['macro_f1_tolerance']} of the best macro-F1; fallbacks count as misses.", ""]
        lines += _table(["row", "setting", "macro-F1", "pooled risk recall", "fallbacks"], _grid_rows(tuning))
    if crisis:
        from bot.nlu.crisis_answers import summary_rows

        sections = crisis["sections"]
        lines += ["", "## Crisis answers (`tests/data/crisis_holdout.yml`)", "",
                  f"Measured on {crisis['measured']} at commit {crisis['commit']} by `python -m bot crisis-answers`: "
                  f"{sections['danger']['messages']} danger, {sections['stress']['messages']} stress and "
                  f"{sections['hardship']['messages']} hardship messages, written fresh. \"Rules before\" is the "
                  "dialogue before the crisis lexicon (express_distress always the crisis answer and always out of "
                  "the form), on the same parses.", ""]
        lines += _table(["", "now", "rules before"], [list(row) for row in summary_rows(sections)])
    lines += ["", "Confusion matrices: [pipeline](pipeline_confusion_matrix.png), "
              "[baseline](baseline_confusion_matrix.png).", ""]
    return "\n".join(lines)


def _load(path: Path) -> Optional[Dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def rendered_from_files(directory: Path = REPORT_DIR) -> str:
    """The report for the JSON files in ``directory``. Raises FileNotFoundError without ``evaluation.json``."""
    evaluation = _load(directory / "evaluation.json")
    if evaluation is None:
        raise FileNotFoundError(f"{directory / 'evaluation.json'}: run `python -m bot evaluate` first")
    return render_report(evaluation, _load(directory / "blend_tuning.json"), _load(directory / "crisis.json"))


def write_report(directory: Path = REPORT_DIR) -> Path:
    """Render the report from the JSON files in ``directory`` into its README.md; returns the file written."""
    target = directory / REPORT_FILE
    target.write_text(rendered_from_files(directory), encoding="utf-8")
    return target
