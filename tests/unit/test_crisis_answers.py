"""The crisis-answer measurement's decisions (bot/nlu/crisis_answers.py), on given parses, without a model."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.nlu.crisis_answers import (
    ANSWER,
    CARE,
    CRISIS,
    OTHER,
    form_text_excluded_intents,
    in_form,
    load_holdout,
    outside_form,
    summary_rows,
    tally,
)

EXCLUDED = form_text_excluded_intents()


def test_the_excluded_intents_come_from_the_domain() -> None:
    assert "express_distress" in EXCLUDED and "inform" not in EXCLUDED


@pytest.mark.parametrize("intent,text,outside,form", [
    ("express_distress", "我不想活了", CRISIS, CRISIS),
    ("express_distress", "压力很大", CARE, CARE),
    ("express_distress", "生意赔了", CARE, ANSWER),
    ("ask_evade_debt", "公司倒闭了工资也没发", OTHER, ANSWER),
    ("inform", "被裁员了", OTHER, ANSWER),
    ("seek_debt_agency", "有人说交钱能停息", OTHER, OTHER),
])
def test_what_a_parse_gets(intent: str, text: str, outside: str, form: str) -> None:
    assert outside_form(intent, text) == outside
    assert in_form(intent, text, EXCLUDED) == form


def test_tally_counts_now_and_before_on_the_same_parses() -> None:
    sections = {"danger": ["我不想活了"], "stress": ["压力很大"], "hardship": ["生意赔了", "被裁员了"]}
    intents = {"danger": ["express_distress"], "stress": ["express_distress"],
               "hardship": ["express_distress", "inform"]}
    figures = tally(sections, intents, EXCLUDED)
    assert figures["hardship"]["form"]["now"] == {CRISIS: 0, CARE: 0, ANSWER: 2, OTHER: 0}
    assert figures["hardship"]["form"]["before"][CRISIS] == 1
    assert figures["stress"]["outside"]["before"][CRISIS] == 1
    rows = dict((name, (now, before)) for name, now, before in summary_rows(figures))
    assert rows["crisis answer on danger (recall), outside the form"] == ("1.000 (1/1)", "1.000 (1/1)")
    assert rows["crisis answer on hardship reasons, as the form's answer"] == ("0.000 (0/2)", "0.500 (1/2)")


def test_a_holdout_without_its_sections_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "h.yml"
    bad.write_text("danger: [a]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="sections"):
        load_holdout(bad)


def test_the_committed_holdout_has_its_sections() -> None:
    assert {name: len(texts) >= 100 for name, texts in load_holdout().items()} == {
        "danger": True, "stress": True, "hardship": True}
