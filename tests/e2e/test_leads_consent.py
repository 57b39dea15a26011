"""The consent dialogue of seller leads over the real servers (REST): the bot asks once whether the seller's
details may be passed on; only a yes stores them (the seller's, not the user's) in the leads store; a refusal or
no answer keeps nothing; the tracker holds only the masked text; a leads officer exports them with the CLI,
audited."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa

from bot import PROJECT_ROOT
from bot.db import make_engine
from bot.leads.schema import leads, reads
from tests.support.servers import (
    TEST_TOKEN,
    joined_text,
    request_json,
    rest_say,
    start_test_servers,
    write_sqlite_endpoints,
)

pytestmark = pytest.mark.e2e

PENDING_TTL = 8
"""Seconds a candidate waits for the answer on these servers."""

SELLER_PHONE = "13812345678"
USER_PHONE = "13987654321"
USER_ID = "110101199003077777"
SELLER_MESSAGE = (f"有个中介电话{SELLER_PHONE}，说交三千块服务费就能帮我停息挂账，我的手机是{USER_PHONE}，"
                  f"身份证{USER_ID}也发给他们了，靠谱吗")
QUESTION = "是否同意把这个商家的信息交给银行"


@pytest.fixture(scope="module")
def lead_servers(trained_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("leads")
    env = {"LEADS_DATABASE_URL": f"sqlite:///{directory / 'leads.db'}",
           "LEADS_PENDING_TTL_SECONDS": str(PENDING_TTL)}
    running = start_test_servers(trained_model, directory, write_sqlite_endpoints(directory), extra_env=env)
    engine = make_engine(env["LEADS_DATABASE_URL"])
    yield running, engine, directory, env
    engine.dispose()
    running.stop()


def _sender(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _rows(engine):
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sa.select(leads).order_by(leads.c.id))]
    except sa.exc.OperationalError:  # no table yet: the store is created at the first consent
        return []


def _asks(messages):
    question = [m for m in messages if QUESTION in m.get("text", "")]
    assert len(question) <= 1
    if not question:
        return False
    assert [b["payload"] for b in question[0]["buttons"]] == ["/lead_consent_yes", "/lead_consent_no"]
    assert [b["title"] for b in question[0]["buttons"]] == ["同意", "不同意"]
    return True


def _tracker_text(servers, sender):
    status, tracker = request_json("GET", f"{servers.rasa_url}/conversations/{sender}/tracker?token={TEST_TOKEN}")
    assert status == 200
    return json.dumps(tracker, ensure_ascii=False)


def test_a_yes_stores_only_the_sellers_details_and_the_tracker_only_masked_text(lead_servers):
    servers, engine, directory, env = lead_servers
    before = len(_rows(engine))
    sender = _sender("lead-yes")
    first = rest_say(servers, sender, SELLER_MESSAGE)
    assert "收费中介" in joined_text(first)  # the warning itself still comes first
    assert _asks(first) and len(_rows(engine)) == before  # asked, nothing stored yet
    thanks = joined_text(rest_say(servers, sender, "/lead_consent_yes"))
    assert "已经记下" in thanks
    rows = _rows(engine)
    assert len(rows) == before + 1
    lead = rows[-1]
    assert json.loads(lead["phones"]) == [SELLER_PHONE] and "3000元" in json.loads(lead["fees"])
    assert lead["channel"] == "rest" and json.loads(lead["red_flags"])
    stored = json.dumps(lead, ensure_ascii=False)
    assert USER_PHONE not in stored and USER_ID not in stored and sender not in stored
    tracker = _tracker_text(servers, sender)
    assert SELLER_PHONE not in tracker and USER_PHONE not in tracker and USER_ID not in tracker
    assert "EXTERNAL_lead_candidate" in tracker and "[手机号已隐藏]" in tracker
    # once per conversation: another seller's details later get no second question
    again = rest_say(servers, sender, "还有个微信群的群主微信是shangan888，也说能帮我停息挂账")
    assert not _asks(again)
    assert len(_rows(engine)) == before + 1


def test_a_refusal_keeps_nothing(lead_servers):
    servers, engine, _, _ = lead_servers
    before = len(_rows(engine))
    sender = _sender("lead-no")
    assert _asks(rest_say(servers, sender, SELLER_MESSAGE))
    assert "不会被保存" in joined_text(rest_say(servers, sender, "/lead_consent_no"))
    assert len(_rows(engine)) == before
    # a yes tapped afterwards finds nothing held, and the bot says so
    assert "没有被保存" in joined_text(rest_say(servers, sender, "/lead_consent_yes"))
    assert len(_rows(engine)) == before


def test_no_answer_keeps_nothing(lead_servers):
    servers, engine, _, _ = lead_servers
    before = len(_rows(engine))
    sender = _sender("lead-silent")
    assert _asks(rest_say(servers, sender, SELLER_MESSAGE))
    time.sleep(PENDING_TTL + 1)
    assert "没有被保存" in joined_text(rest_say(servers, sender, "/lead_consent_yes"))
    assert len(_rows(engine)) == before


def test_no_question_for_the_users_own_number_or_an_ordinary_question(lead_servers):
    servers, _, _, _ = lead_servers
    assert not _asks(rest_say(servers, _sender("lead-own"), f"我的手机号是{USER_PHONE}，有人说交钱能帮我停息挂账"))
    assert not _asks(rest_say(servers, _sender("lead-plain"), "信用卡逾期三个月了想自己跟银行协商分期"))


def test_a_leads_officer_exports_them_with_the_cli_and_the_read_is_audited(lead_servers):
    servers, engine, directory, env = lead_servers
    sender = _sender("lead-cli")
    assert _asks(rest_say(servers, sender, SELLER_MESSAGE))
    rest_say(servers, sender, "/lead_consent_yes")
    cli_env = {**os.environ, **env, "HANDOFF_DATABASE_URL": f"sqlite:///{directory / 'cli-handoff.db'}"}

    def bot(*args, token=None):
        run_env = {**cli_env, **({"LEADS_TOKEN": token} if token else {})}
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=PROJECT_ROOT, env=run_env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    issued = bot("agents", "issue", "officer", "--role", "leads")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip().splitlines()[-1]
    agent = bot("agents", "issue", "agent1").stdout.strip().splitlines()[-1]
    exported = bot("leads", "export", "--format", "json", token=token)
    assert exported.returncode == 0, exported.stderr
    assert SELLER_PHONE in {phone for lead in json.loads(exported.stdout) for phone in lead["phones"]}
    refused = bot("leads", "list", token=agent)
    assert refused.returncode == 1 and "Refused" in refused.stderr and SELLER_PHONE not in refused.stdout
    with engine.connect() as connection:
        audit = [(row.reader, row.action, row.outcome) for row in connection.execute(sa.select(reads))]
    assert ("officer", "export", "ok") in audit and ("agent1", "list", "refused: role agent") in audit
