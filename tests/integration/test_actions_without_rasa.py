"""The action server runs with rasa-sdk alone: ``python -m rasa_sdk --actions actions`` in an interpreter that
refuses to import ``rasa``, ``sqlalchemy``, ``alembic`` and ``tensorflow`` (as in the slim image built from
requirements/actions.in), started in a folder that holds only the files that file's recipe copies into the image
(IMAGE_FILES), and called over its real ``/webhook`` as the Rasa server calls it, for every custom action.

The refusal is a ``sitecustomize`` module on PYTHONPATH that puts a finder first on ``sys.meta_path`` and
records every refused name (so an import that was caught and tolerated is still seen). The venv has no
sitecustomize of its own; if one appears, ours runs it after installing the finder. Each answer is compared
with the same action run here, in the full environment.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot import PROJECT_ROOT
from bot.ops.servers import LOOPBACK, free_port
from tests.support.handoff import INTAKE_TOKEN
from tests.support.servers import request_json

BLOCKED = ("rasa", "sqlalchemy", "alembic", "tensorflow")

IMAGE_FILES = ("actions", "bot", "data/knowledge", "data/crisis", "data/subtopics", "data/details.yml", "domain")
"""What requirements/actions.in says to copy into the image, besides the packages."""

SITECUSTOMIZE = textwrap.dedent('''
    """Refuse the packages the slim action-server image lacks (tests/integration/test_actions_without_rasa.py)."""
    import importlib.abc
    import importlib.machinery
    import importlib.util
    import os
    import sys

    BLOCKED = {blocked!r}
    LOG = os.environ["REFUSED_IMPORTS_LOG"]


    def _record(name):
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(name + "\\n")


    class RefuseHeavyPackages(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                _record(name)
                raise ModuleNotFoundError(f"No module named {{name!r}} (refused: not in the slim image)", name=name)
            return None


    for _name in list(sys.modules):  # nothing may have slipped in before us (.pth files)
        if _name.partition(".")[0] in BLOCKED:
            _record("preloaded:" + _name)
    sys.meta_path.insert(0, RefuseHeavyPackages())

    _here = os.path.dirname(os.path.abspath(__file__))
    _spec = importlib.machinery.PathFinder.find_spec(
        "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here])
    if _spec is not None and _spec.loader is not None:  # the environment's own sitecustomize, if any
        _module = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_module)
''').format(blocked=set(BLOCKED))

SLOTS = {"bank": "招商银行", "debt_type": "信用卡", "hardship_reason": "失业", "monthly_repayment_capacity": "2000",
         "already_overdue": "no", "red_flags": None, "risk_level": None, "user_segment": None, "referrals": None,
         "hardship_form_retries": None, "amount": None, "overdue_duration": None, "requested_slot": None}


def _tracker(sender: str, intent: str, text: str) -> dict:
    user = {"event": "user", "text": text, "timestamp": 1_780_000_000.0, "input_channel": "rest",
            "parse_data": {"intent": {"name": intent, "confidence": 0.99}, "entities": [], "text": text}}
    return {"sender_id": sender, "slots": SLOTS, "latest_message": user["parse_data"],
            "events": [{"event": "action", "name": "action_listen"}, user], "paused": False,
            "followup_action": None, "active_loop": {}, "latest_action_name": "action_listen",
            "latest_input_channel": "rest"}


CALLS = {
    "action_warn_debt_agency": ("seek_debt_agency", "有人说交钱就能帮我停息挂账，靠谱吗"),
    "action_warn_credit_repair": ("seek_credit_repair", "交五千能把征信洗白吗"),
    "action_support_agency_victim": ("agency_victim", "交了两千服务费，人找不到了"),
    "action_explain_evasion_risk": ("ask_evade_debt", "换个号码是不是就不用还了"),
    "action_explain_legal_risk": ("ask_legal_risk", "信用卡还不上会坐牢吗"),
    "action_guide_hardship_plan": ("ask_hardship_plan", "想跟银行协商分期"),
    "action_guide_collection_complaint": ("report_collection_abuse", "催收天天打电话骂我"),
    "action_answer_credit_record": ("ask_credit_record", "逾期记录多久能消"),
    "action_list_complaint_channels": ("ask_complaint_channel", "去哪里投诉银行"),
    "action_support_distress": ("express_distress", "我真的撑不下去了"),
    "action_clarify_or_answer_risk": ("nlu_fallback", "嗯嗯那个"),
    "action_give_hardship_plan": ("inform", "没有逾期"),
    "action_stop_hardship_form": ("stop", "算了"),
    "action_handoff": ("request_human", "转人工"),
}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A folder holding only what the slim image holds (IMAGE_FILES, copied from the project)."""
    folder = tmp_path_factory.mktemp("image")
    for name in IMAGE_FILES:
        if (PROJECT_ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, folder / name)
            continue
        shutil.copytree(PROJECT_ROOT / name, folder / name,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "migrations"))
    return folder


def test_the_recipe_copies_what_the_test_image_holds():
    recipe = (PROJECT_ROOT / "requirements" / "actions.in").read_text(encoding="utf-8")
    copied = re.search(r"copy (.+?) into the image", recipe, re.S)
    assert copied, "requirements/actions.in no longer says what to copy"
    named = [name.rstrip("/") for name in re.findall(r"[a-z_/]+\.yml|[a-z_/]+/", copied.group(1))]
    assert sorted(named) == sorted(IMAGE_FILES)


@pytest.fixture(scope="module")
def slim_env(tmp_path_factory, image):
    """The environment of an interpreter without the heavy packages, and the file naming what it refused."""
    folder = tmp_path_factory.mktemp("slim")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    refused = folder / "refused.log"
    refused.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HANDOFF_", "RASA_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(folder), str(image)]), REFUSED_IMPORTS_LOG=str(refused),
               SANIC_HOST=LOOPBACK, PYTHONUNBUFFERED="1",
               # A desk that is not running: the action must answer honestly that no agent can be reached.
               HANDOFF_DESK_URL=f"http://{LOOPBACK}:{free_port()}", HANDOFF_INTAKE_TOKEN=INTAKE_TOKEN)
    return env, refused, image


def test_the_blocker_refuses_the_heavy_packages(slim_env):
    env, refused, image = slim_env
    for package in BLOCKED:
        result = subprocess.run([sys.executable, "-c", f"import {package}"], env=env, cwd=image,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and "refused: not in the slim image" in result.stderr, package
    assert set(refused.read_text().split()) == set(BLOCKED)
    refused.write_text("")


@pytest.fixture(scope="module")
def slim_action_server(slim_env, tmp_path_factory):
    env, refused, image = slim_env
    port = free_port()
    log = tmp_path_factory.mktemp("slim-log") / "action-server.log"
    with log.open("wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
                                   cwd=image, env=env, stdout=handle, stderr=subprocess.STDOUT)
        url = f"http://{LOOPBACK}:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, f"the action server exited: {log.read_text()[-3000:]}"
                try:
                    with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"the action server did not start: {log.read_text()[-3000:]}"
                time.sleep(0.3)
            yield url, refused, log
        finally:
            process.terminate()
            process.wait(timeout=30)


def _run_here(action_name: str, tracker: dict, domain: dict) -> dict:
    """The same action in this (full) interpreter, as rasa_sdk would answer it."""
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    action = executor.actions[action_name]
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action(dispatcher, Tracker.from_dict(tracker), domain))
    return {"events": events, "responses": dispatcher.messages}


def test_actions_lists_every_custom_action_of_the_domain(slim_action_server, domain):
    url, refused, _ = slim_action_server
    status, listed = request_json("GET", url + "/actions")
    assert status == 200
    assert set(domain["actions"]) <= {entry["name"] for entry in listed}
    assert refused.read_text() == "", "the action server tried to import a heavy package"


@pytest.mark.parametrize("action_name", list(CALLS))
def test_an_action_call_over_the_webhook_answers_as_in_the_full_environment(slim_action_server, domain, monkeypatch,
                                                                            action_name):
    url, refused, log = slim_action_server
    intent, text = CALLS[action_name]
    tracker = _tracker(f"slim-{action_name}", intent, text)
    call = {"next_action": action_name, "sender_id": tracker["sender_id"], "tracker": tracker, "domain": domain,
            "version": "3.6.21"}
    status, answer = request_json("POST", url + "/webhook", call, timeout=30)
    assert status == 200, (answer, log.read_text()[-3000:])
    assert refused.read_text() == "", "the action server tried to import a heavy package"

    names = [message.get("response") for message in answer["responses"]]
    if action_name == "action_handoff":
        # No desk is listening: the honest answer, the bank's own line, and the bot listens again.
        assert names == ["utter_handoff_unavailable", "utter_bank_channel"]
        assert answer["events"] == [{"event": "followup", "timestamp": None, "name": "action_listen"}]
        assert answer["responses"][1]["bank_name"] == "招商银行"
        deadline = time.monotonic() + 10
        while "is not reachable" not in log.read_text(encoding="utf-8") and time.monotonic() < deadline:
            time.sleep(0.2)
        written = log.read_text(encoding="utf-8")
        assert "is not reachable" in written, written[-2000:]  # it did try the (absent) desk, over HTTP
        assert text not in written, "the user's words reached the log"
    elif action_name == "action_give_hardship_plan":
        assert any(message.get("custom") for message in answer["responses"]), "the channel card is missing"
        assert {"event": "slot", "timestamp": None, "name": "hardship_form_retries", "value": None} in answer["events"]
    elif action_name == "action_stop_hardship_form":
        assert names == ["utter_hardship_form_stopped"]
    else:
        assert names and all(name and name.startswith("utter_") for name in names)

    monkeypatch.delenv("HANDOFF_DESK_URL", raising=False)  # no desk here either
    assert answer == _run_here(action_name, tracker, domain)
