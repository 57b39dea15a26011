"""The NLU figures are rendered from reports/nlu/*.json, never typed: the committed report is the rendering."""
from __future__ import annotations

import json

from bot.nlu.report import REPORT_DIR, REPORT_FILE, render_report, rendered_from_files


def test_the_committed_report_is_the_rendering_of_the_committed_figures():
    assert (REPORT_DIR / REPORT_FILE).read_text(encoding="utf-8") == rendered_from_files(), \
        "reports/nlu/README.md is stale: run `python -m bot nlu-report`"


def test_every_risk_intent_figure_comes_from_the_json():
    evaluation = json.loads((REPORT_DIR / "evaluation.json").read_text(encoding="utf-8"))
    evaluation["pipeline"]["per_intent"]["seek_credit_repair"]["recall"] = 0.5
    evaluation["pipeline"]["macro_f1"] = 0.1234
    support = int(evaluation["pipeline"]["per_intent"]["seek_credit_repair"]["support"])
    text = render_report(evaluation)
    assert f"| recall seek_credit_repair | 0.500 ({round(support / 2)}/{support}) |" in text
    assert "| macro-F1 | **0.123** |" in text
    assert "Blend settings" not in text  # no tuning figures given, none shown
