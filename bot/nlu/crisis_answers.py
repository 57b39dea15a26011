"""How often the assistant gives the crisis answer: on danger (recall, which must be 1.0), and on stress and
ordinary hardship messages (false alarms), outside the hardship form and as the answer to its question.

``python -m bot crisis-answers`` parses every message of ``tests/data/crisis_holdout.yml`` (written fresh, never
training data) with the trained model and decides, with the dialogue's own functions, what the person would
get: the *crisis* answer (care, 12356 and 110/120, a person: utter_support_distress then action_handoff),
*care* (the stress answer: care and the lawful route), the form taking the message as its *answer*, or
*other* (any other topic's answer). It prints the figures beside those of the dialogue rules before the
crisis lexicon (express_distress always the crisis answer; in the form, express_distress always left the
form), computed on the same parses, and writes ``reports/nlu/crisis.json`` for the rendered report.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import yaml

from bot import PROJECT_ROOT
from bot.crisis import CrisisLevel, reads_as_danger
from bot.guidance import distress_reading
from bot.hardship import answer_despite_intent
from bot.intents import EXPRESS_DISTRESS
from bot.risk import default_risk_engine

HOLDOUT = PROJECT_ROOT / "tests" / "data" / "crisis_holdout.yml"
"""The held-out messages: sections ``danger``, ``stress`` and ``hardship``."""

REPORT = PROJECT_ROOT / "reports" / "nlu" / "crisis.json"
"""Where the figures are written."""

CRISIS, CARE, ANSWER, OTHER = "crisis", "care", "answer", "other"
"""What a message gets (see the module docstring)."""

FORM_QUESTION_SLOT = "hardship_reason"
"""The form question the messages are measured as answers to: "还款困难主要是什么原因？"."""


def form_text_excluded_intents(domain_file: Path = PROJECT_ROOT / "domain" / "hardship.yml") -> frozenset:
    """The intents under which the form's ``from_text`` mapping of FORM_QUESTION_SLOT does not take a message,
    read from the domain (so the measurement follows the domain)."""
    slots = yaml.safe_load(domain_file.read_text(encoding="utf-8"))["slots"]
    mapping = next(m for m in slots[FORM_QUESTION_SLOT]["mappings"] if m["type"] == "from_text")
    return frozenset(mapping.get("not_intent", []))


def outside_form(intent: str, text: str) -> str:
    """What a message with NLU ``intent`` gets outside any form."""
    if intent != EXPRESS_DISTRESS:
        return OTHER
    return CRISIS if distress_reading(text) is CrisisLevel.DANGER else CARE


def in_form(intent: str, text: str, excluded: frozenset) -> str:
    """What a message gets as the answer to the form's reason question (actions/hardship_actions.py and the
    rules of data/dialogue/hardship.yml): danger rejects the form's turn; the form's mapping or
    answer_despite_intent takes an answer; a rejected turn is answered by its intent's rule."""
    if reads_as_danger(text):
        return outside_form(intent, text)
    red_flags = bool(default_risk_engine().find_flags(text))
    if intent not in excluded or answer_despite_intent(FORM_QUESTION_SLOT, text, intent, red_flags) is not None:
        return ANSWER
    return outside_form(intent, text)


def rules_before(intent: str, excluded: frozenset, where: str) -> str:
    """What the same parse got under the rules before the crisis lexicon: express_distress was always the
    crisis answer, and in the form it always left the form."""
    if intent == EXPRESS_DISTRESS:
        return CRISIS
    return ANSWER if where == "form" and intent not in excluded else OTHER


def tally(sections: Mapping[str, Sequence[str]], intents: Mapping[str, Sequence[str]],
          excluded: frozenset) -> Dict[str, Any]:
    """Counts per section, place (``outside``, ``form``) and rules (``now``, ``before``) of each outcome."""
    figures: Dict[str, Any] = {}
    for section, texts in sections.items():
        entry: Dict[str, Any] = {"messages": len(texts)}
        for where in ("outside", "form"):
            now = [outside_form(i, t) if where == "outside" else in_form(i, t, excluded)
                   for i, t in zip(intents[section], texts, strict=True)]
            before = [rules_before(i, excluded, where) for i in intents[section]]
            entry[where] = {"now": {k: now.count(k) for k in (CRISIS, CARE, ANSWER, OTHER)},
                            "before": {k: before.count(k) for k in (CRISIS, CARE, ANSWER, OTHER)}}
        figures[section] = entry
    return figures


def load_holdout(path: Path = HOLDOUT) -> Dict[str, List[str]]:
    """The held-out sections. Raises ValueError for a file without the three sections of strings."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) != {"danger", "stress", "hardship"} or not all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in data.values()):
        raise ValueError(f"{path}: needs the sections danger, stress and hardship, each a list of strings")
    return data


def _rate(count: int, total: int) -> str:
    return f"{count / total:.3f} ({count}/{total})" if total else "n/a"


def summary_rows(figures: Mapping[str, Any]) -> List[Tuple[str, str, str]]:
    """``(figure, now, before)`` rows: crisis recall on danger, crisis answers on stress and hardship."""
    rows = []
    for section, label in (("danger", "crisis answer on danger (recall)"),
                           ("stress", "crisis answer on stress"), ("hardship", "crisis answer on hardship reasons")):
        entry = figures[section]
        for where, place in (("outside", "outside the form"), ("form", "as the form's answer")):
            rows.append((f"{label}, {place}", _rate(entry[where]["now"][CRISIS], entry["messages"]),
                         _rate(entry[where]["before"][CRISIS], entry["messages"])))
    hardship = figures["hardship"]
    rows.append(("hardship reasons the form takes as its answer", _rate(hardship["form"]["now"][ANSWER],
                 hardship["messages"]), _rate(hardship["form"]["before"][ANSWER], hardship["messages"])))
    danger = figures["danger"]
    for where, place in (("outside", "outside the form"), ("form", "as the form's answer")):
        rows.append((f"danger answered with the hotlines (crisis or stress answer), {place}",
                     _rate(danger[where]["now"][CRISIS] + danger[where]["now"][CARE], danger["messages"]),
                     _rate(danger[where]["before"][CRISIS], danger["messages"])))
    stress = figures["stress"]
    rows.append(("stress answered with care (crisis or stress answer), outside the form",
                 _rate(stress["outside"]["now"][CRISIS] + stress["outside"]["now"][CARE], stress["messages"]),
                 _rate(stress["outside"]["before"][CRISIS], stress["messages"])))
    return rows


def measure(model: Path, holdout: Path = HOLDOUT, report: Path = REPORT) -> Dict[str, Any]:
    """Parse the held-out file with ``model``, print the figures and write them to ``report``."""
    from bot.nlu.evaluation import _git_commit, pipeline_predictions

    sections = load_holdout(holdout)
    intents = {name: pipeline_predictions(model, texts) for name, texts in sections.items()}
    figures: Dict[str, Any] = {"measured": dt.date.today().isoformat(), "commit": _git_commit(), "model": model.name,
               "sections": tally(sections, intents, form_text_excluded_intents())}
    report.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"{'figure':<75} {'now':>18} {'rules before':>18}")
    for name, now, before in summary_rows(figures["sections"]):
        print(f"{name:<75} {now:>18} {before:>18}")
    print(f"Written: {report}")
    return figures
