"""The action server needs rasa-sdk and requirements/actions.in, nothing of the Rasa server or the agent desk.

In a fresh interpreter (a subprocess: this one has long imported Rasa), import what ``python -m rasa_sdk``
imports, every module under ``actions/``, and run one action of each kind; then look at ``sys.modules``.
tests/integration/test_actions_without_rasa.py runs the real server with the heavy packages made unimportable.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement

from bot import PROJECT_ROOT

FORBIDDEN_PACKAGES = ("rasa", "sqlalchemy", "alembic", "tensorflow")
"""Top-level packages the slim image does not have."""

DESK_SIDE_MODULES = ("bot.handoff.desk", "bot.handoff.store", "bot.handoff.schema", "bot.handoff.messages",
                     "bot.handoff.timeouts", "bot.handoff.config", "bot.db", "bot.project_files")
"""Our modules that belong to the desk or to Rasa-side tooling (prefixes). bot.texts may load: only its
``render_response`` needs Rasa, and only the desk calls it."""

_PROBE = r'''
import asyncio, importlib, json, os, pkgutil, sys
import rasa_sdk.endpoint, rasa_sdk.__main__  # what python -m rasa_sdk imports
import actions
modules = [m.name for m in pkgutil.walk_packages(actions.__path__, "actions.")]
for name in modules:
    importlib.import_module(name)
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from actions.guidance_actions import ActionWarnDebtAgency
from actions.handoff_actions import ActionHandoff
from actions.hardship_actions import ActionGiveHardshipPlan

slots = {"bank": "招商银行", "debt_type": "信用卡", "hardship_reason": "失业", "monthly_repayment_capacity": "2000",
         "already_overdue": "no"}
ran = {}
for action, intent, text in [(ActionWarnDebtAgency(), "seek_debt_agency", "有人说能帮我停息挂账，靠谱吗"),
                             (ActionGiveHardshipPlan(), "inform", "没有逾期"),
                             (ActionHandoff(), "request_human", "转人工")]:
    tracker = Tracker("probe", slots, {"text": text, "intent": {"name": intent}, "entities": []},
                      [{"event": "user", "text": text, "parse_data": {"intent": {"name": intent}}}], False, None, {},
                      "action_listen")
    dispatcher = CollectingDispatcher()
    asyncio.run(action.run(dispatcher, tracker, {}))
    ran[action.name()] = [m.get("response") for m in dispatcher.messages]
site = [p for p in sys.path if p.endswith("site-packages")]
files = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}
third_party = sorted({name.partition(".")[0] for name, file in files.items()
                      if file and any(file.startswith(s) for s in site)})
print(json.dumps({"modules": sorted(sys.modules), "actions": modules, "ran": ran, "third_party": third_party}))
'''


def _probe() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    result = subprocess.run([sys.executable, "-c", _PROBE], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _requirement_closure(names) -> set:
    """The normalised distribution names of ``names`` and everything they require (no extras), installed here."""
    seen: set = set()
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _listed_in_actions_in() -> list:
    lines = (PROJECT_ROOT / "requirements" / "actions.in").read_text(encoding="utf-8").splitlines()
    return [Requirement(line).name for line in (raw.split("#")[0].strip() for raw in lines) if line]


def test_the_action_server_imports_nothing_of_rasa_or_the_desk():
    probe = _probe()
    assert {"actions.guidance_actions", "actions.handoff_actions", "actions.hardship_actions"} <= set(probe["actions"])
    assert probe["ran"]["action_handoff"] == ["utter_handoff_unavailable", "utter_bank_channel"]  # no desk here
    assert probe["ran"]["action_warn_debt_agency"] and probe["ran"]["action_give_hardship_plan"]
    loaded = probe["modules"]
    assert [m for m in loaded if m.partition(".")[0] in FORBIDDEN_PACKAGES] == []
    assert [m for m in loaded if m.startswith(DESK_SIDE_MODULES)] == []
    assert "bot.handoff.intake" in loaded and "bot.handoff.contract" in loaded


def test_requirements_actions_in_covers_every_package_the_action_server_loads():
    probe = _probe()
    distributions = metadata.packages_distributions()
    used = {re.sub(r"[-_.]+", "-", dist).lower() for module in probe["third_party"]
            for dist in distributions.get(module, [])}
    assert "rasa-sdk" in used and "opencc" in used
    closure = _requirement_closure(_listed_in_actions_in())
    assert used - closure == set(), "add these to requirements/actions.in"
    assert not closure & set(FORBIDDEN_PACKAGES), "the slim image would pull in a heavy package"
