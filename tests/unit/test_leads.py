"""Consent-based seller leads without a server: what is extracted (the seller's details, never the user's own),
that a lead is stored only after a yes and nothing is kept after a refusal or no answer, who may read the leads
(and that every read is audited), and their retention."""
from __future__ import annotations

import asyncio
import json
import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.db import make_engine, upgrade_database
from bot.handoff.credentials import CredentialStore
from bot.leads import consent
from bot.leads.consent import CONSENT_EXPIRED, CONSENT_NO, CONSENT_YES, OFFER_INTENT, LeadGate, PendingLeads
from bot.leads.extract import LeadCandidate, extract_candidate
from bot.leads.store import (
    DAY_SECONDS,
    LeadAccessRefused,
    LeadReader,
    LeadRetention,
    apply_retention,
    count_leads,
    open_store,
    reads_audit,
    record_lead,
)
from bot.privacy import detection_view, find_pii_spans, mask_pii_with_counts

SELLER_PHONE = "13812345678"
USER_PHONE = "13987654321"
USER_ID = "110101199003077777"  # valid GB 11643 check digit
USER_CARD = "6222021234567890123"


def _values(candidate):
    return [] if candidate is None else [v for values in candidate.as_dict().values() for v in values]


# ---------- extraction: the seller's details, never the user's own ----------

@pytest.mark.parametrize("text, field, value", [
    (f"有个中介电话{SELLER_PHONE}说交三千块服务费就能停息挂账，靠谱吗", "phones", SELLER_PHONE),
    ("对方的微信是shangan888，说能帮我征信修复", "wechat_ids", "shangan888"),
    ("客服QQ 123456789，让我先交定金", "qq_ids", "123456789"),
    (f"{SELLER_PHONE}打给我的，说能帮我征信修复", "phones", SELLER_PHONE),
    ("他们拉我进了一个叫上岸互助的群，群主说包上岸", "groups", "上岸互助"),
    ("在抖音上看到“金盾法务”这个平台，说能停息挂账", "organisations", "金盾法务"),
    ("深圳前海某某信息咨询有限公司说能帮我停息挂账，交了2万", "organisations", "深圳前海某某信息咨询有限公司"),
    ("群主的微信 jindun2024，收我欠款的6%", "fees", "6%"),
    (f"中介电话{SELLER_PHONE}，要我交三千块服务费", "fees", "3000元"),
    (f"他们给我的电话是{SELLER_PHONE}", "phones", SELLER_PHONE),
])
def test_a_detail_the_user_attributes_to_the_seller_is_extracted(text, field, value):
    candidate = extract_candidate(text)
    assert candidate is not None and value in getattr(candidate, field), candidate


@pytest.mark.parametrize("text", [
    f"我的手机号是{USER_PHONE}，他们要我交5000定金",         # the user's own phone
    f"我身份证{USER_ID}给了他们，卡号{USER_CARD}",            # the user's ID and card, even handed to the seller
    f"催收的电话{USER_PHONE}天天打给我",                      # a collector is not a seller
    f"银行客服电话{USER_PHONE}",                               # nor the bank
    f"我电话{USER_PHONE}，有人说能帮我停息挂账",               # no attribution: not guessed
    f"有人说能帮我停息挂账，联系方式{SELLER_PHONE}",           # no owner at all: not guessed
    "我在一家叫华为的公司上班，欠了信用卡",                    # the user's employer
    "信用卡公司让我还钱",                                      # a generic word is no name
    "他们说交三千块服务费就能停息挂账",                         # a fee alone identifies nobody
    f"我老婆的电话{USER_PHONE}也被他们打了",                    # family
])
def test_the_users_own_data_and_unattributed_details_are_not_extracted(text):
    assert extract_candidate(text) is None


def test_only_the_seller_s_number_is_taken_beside_the_user_s_own():
    text = f"他电话是{SELLER_PHONE}，我的是{USER_PHONE}，我身份证{USER_ID}也发给他了"
    candidate = extract_candidate(text)
    assert candidate is not None and candidate.phones == (SELLER_PHONE,)
    values = " ".join(_values(candidate))
    assert USER_PHONE not in values and USER_ID not in values


def test_a_number_typed_with_separators_or_chinese_numerals_is_read_as_digits():
    candidate = extract_candidate("对方电话是138-1234-5678，微信号是一三八一二三四五六七八吗")
    assert candidate is not None and candidate.phones == (SELLER_PHONE,)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 -他我的电话微信是vxabc，。客服身份证卡号13")), max_size=60))
def test_extraction_never_raises_and_takes_only_contacts_that_masking_hides(text):
    """Every number taken is a phone or QQ span that the masking removes from the stored text, never an ID,
    card or long number, whoever it belongs to."""
    candidate = extract_candidate(text)
    contacts = {re.sub(r"\D", "", detection_view(text[start:end])[0]): kind
                for start, end, kind in find_pii_spans(text)}
    for value in (candidate.phones + candidate.qq_ids) if candidate else ():
        assert contacts.get(value.lstrip("+")) in ("mobile", "landline", "qq"), (text, value)


def test_find_pii_spans_covers_exactly_what_is_masked():
    text = f"他电话{SELLER_PHONE}，我的卡号{USER_CARD}，邮箱a.b@163.com"
    spans = find_pii_spans(text)
    assert [kind for _, _, kind in spans] == ["mobile", "long_number", "email"]
    masked, counts = mask_pii_with_counts(text)
    assert sum(counts.values()) == len(spans)
    assert all(text[s:e] not in masked for s, e, _ in spans)


# ---------- the consent gate: stored only after a yes ----------

class FakeLock:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


class FakeTracker:
    def __init__(self, slots, paused=False, active_loop=None):
        self.slots, self.paused, self.active_loop_name = slots, paused, active_loop

    def get_slot(self, name):
        return self.slots.get(name)

    def is_paused(self):
        return self.paused


class FakeAgent:
    """Just what LeadGate.offer uses of Rasa's Agent: the lock store, the tracker store, the processor."""

    def __init__(self, tracker):
        self.tracker, self.triggered = tracker, []
        self.lock_store = SimpleNamespace(lock=lambda sender: FakeLock())
        self.tracker_store = SimpleNamespace(retrieve=self._retrieve)
        self.processor = SimpleNamespace(fetch_tracker_with_initial_session=self._fetch,
                                         trigger_external_user_uttered=self._trigger)

    async def _retrieve(self, sender):
        return self.tracker

    async def _fetch(self, sender, output_channel):
        return self.tracker

    async def _trigger(self, intent, entities, tracker, output_channel):
        self.triggered.append(intent)
        tracker.slots[consent.ASKED_SLOT] = True  # what the domain's from_intent mapping does


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


def _message(text, sender="s1"):
    return SimpleNamespace(text=text, sender_id=sender, input_channel="rest", output_channel=object())


@pytest.fixture()
def leads_engine(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'leads.db'}")
    yield engine
    engine.dispose()


def _gate(leads_engine, tracker, clock, ttl=60.0):
    agent = FakeAgent(tracker)
    gate = LeadGate(pending=PendingLeads(ttl=ttl, clock=clock), store=lambda: leads_engine, agent=lambda: agent)
    return gate, agent


SELLER_MESSAGE = f"有个中介电话{SELLER_PHONE}说交三千块服务费就能停息挂账，我的手机是{USER_PHONE}"


async def _describe_seller(gate, sender="s1"):
    candidate = gate.observe(SELLER_MESSAGE)
    await gate.offer(_message("masked", sender), candidate, SELLER_MESSAGE)


def test_a_lead_is_stored_only_after_the_user_agrees(leads_engine):
    clock = Clock()
    gate, agent = _gate(leads_engine, FakeTracker({"red_flags": ["upfront_fee"]}), clock)
    asyncio.run(_describe_seller(gate))
    assert agent.triggered == [OFFER_INTENT]
    assert count_leads(leads_engine) == 0 and len(gate.pending) == 1  # held in memory, not stored
    answer = _message(CONSENT_YES)
    asyncio.run(gate.answer(answer))
    assert answer.text == CONSENT_YES and len(gate.pending) == 0
    with leads_engine.connect() as connection:
        [row] = connection.exec_driver_sql("SELECT * FROM leads").mappings().all()
    assert json.loads(row["phones"]) == [SELLER_PHONE] and json.loads(row["fees"]) == ["3000元"]
    assert json.loads(row["red_flags"]) == ["upfront_fee"] and row["channel"] == "rest"
    assert USER_PHONE not in json.dumps(dict(row), ensure_ascii=False)


def test_nothing_is_kept_after_a_refusal(leads_engine):
    gate, agent = _gate(leads_engine, FakeTracker({"red_flags": ["upfront_fee"]}), Clock())
    asyncio.run(_describe_seller(gate))
    asyncio.run(gate.answer(_message(CONSENT_NO)))
    assert len(gate.pending) == 0 and count_leads(leads_engine) == 0
    late_yes = _message(CONSENT_YES)  # a yes tapped after the no finds nothing to store
    asyncio.run(gate.answer(late_yes))
    assert late_yes.text == CONSENT_EXPIRED and count_leads(leads_engine) == 0


def test_nothing_is_kept_without_an_answer(leads_engine):
    clock = Clock()
    gate, _ = _gate(leads_engine, FakeTracker({"red_flags": ["upfront_fee"]}), clock, ttl=60)
    asyncio.run(_describe_seller(gate))
    clock.now += 61
    assert len(gate.pending) == 0
    answer = _message(CONSENT_YES)
    asyncio.run(gate.answer(answer))
    assert answer.text == CONSENT_EXPIRED and count_leads(leads_engine) == 0


@pytest.mark.parametrize("typed", ["同意", "我同意。", " 可以的！", "同 意"])
def test_a_typed_yes_while_the_question_waits_counts_as_the_button(leads_engine, typed):
    gate, _ = _gate(leads_engine, FakeTracker({"red_flags": ["upfront_fee"]}), Clock())
    asyncio.run(_describe_seller(gate))
    answer = _message(typed)
    asyncio.run(gate.answer(answer))
    assert answer.text == CONSENT_YES and count_leads(leads_engine) == 1


@pytest.mark.parametrize("typed", ["不同意", "不行", "算了。"])
def test_a_typed_no_while_the_question_waits_keeps_nothing(leads_engine, typed):
    gate, _ = _gate(leads_engine, FakeTracker({"red_flags": ["upfront_fee"]}), Clock())
    asyncio.run(_describe_seller(gate))
    answer = _message(typed)
    asyncio.run(gate.answer(answer))
    assert answer.text == CONSENT_NO and count_leads(leads_engine) == 0 and len(gate.pending) == 0


@pytest.mark.parametrize("typed", ["同意是同意，但是我还想问问利息", "可以帮我查一下征信吗", "好"])
def test_anything_but_a_plain_answer_is_left_to_the_dialogue(leads_engine, typed):
    gate, _ = _gate(leads_engine, FakeTracker({"red_flags": ["upfront_fee"]}), Clock())
    asyncio.run(_describe_seller(gate))
    answer = _message(typed)
    asyncio.run(gate.answer(answer))
    assert answer.text == typed and count_leads(leads_engine) == 0 and len(gate.pending) == 1


def test_a_typed_yes_with_no_question_waiting_is_an_ordinary_message(leads_engine):
    gate, _ = _gate(leads_engine, FakeTracker({"red_flags": ["upfront_fee"]}), Clock())
    answer = _message("同意")
    asyncio.run(gate.answer(answer))
    assert answer.text == "同意" and count_leads(leads_engine) == 0


def test_the_question_is_asked_once_per_conversation(leads_engine):
    tracker = FakeTracker({"red_flags": ["upfront_fee"]})
    gate, agent = _gate(leads_engine, tracker, Clock())
    asyncio.run(_describe_seller(gate))
    asyncio.run(gate.answer(_message(CONSENT_NO)))
    asyncio.run(_describe_seller(gate))
    assert agent.triggered == [OFFER_INTENT] and len(gate.pending) == 0


@pytest.mark.parametrize("tracker", [
    FakeTracker({"red_flags": []}),                                    # not a grey-industry conversation
    FakeTracker({"red_flags": ["upfront_fee"]}, paused=True),          # with a human agent
    FakeTracker({"red_flags": ["upfront_fee"]}, active_loop="hardship_plan_form"),
])
def test_no_question_outside_a_grey_industry_conversation_or_while_busy(leads_engine, tracker):
    gate, agent = _gate(leads_engine, tracker, Clock())
    asyncio.run(_describe_seller(gate))
    assert agent.triggered == [] and len(gate.pending) == 0


def test_no_question_when_the_message_reads_as_danger(leads_engine):
    gate, agent = _gate(leads_engine, FakeTracker({"red_flags": ["upfront_fee"]}), Clock())
    text = f"中介电话{SELLER_PHONE}骗了我三千块，我真的不想活了"
    asyncio.run(gate.offer(_message("masked"), gate.observe(text), text))
    assert agent.triggered == [] and len(gate.pending) == 0


def test_a_failed_question_keeps_nothing(leads_engine):
    gate, agent = _gate(leads_engine, FakeTracker({"red_flags": ["upfront_fee"]}), Clock())

    async def broken(*args):
        raise RuntimeError("action server gone")

    agent.processor.trigger_external_user_uttered = broken
    asyncio.run(_describe_seller(gate))
    assert len(gate.pending) == 0


def test_payloads_and_messages_without_a_seller_are_not_candidates():
    assert LeadGate.observe(CONSENT_YES) is None
    assert LeadGate.observe("你好") is None


# ---------- reading: the leads role only, every read audited ----------

@pytest.fixture()
def credentials(tmp_path):
    url = f"sqlite:///{tmp_path / 'handoff.db'}"
    upgrade_database(url, "handoff")
    engine = make_engine(url)
    yield CredentialStore(engine)
    engine.dispose()


def _store_lead(engine, now, phone=SELLER_PHONE):
    return record_lead(engine, LeadCandidate(phones=(phone,), groups=("上岸互助",)), asked_at=now - 5,
                       channel="rest", red_flags=["upfront_fee"], now=now)


def test_only_a_leads_credential_reads_and_every_read_is_audited(leads_engine, credentials):
    lead_id = _store_lead(leads_engine, 1_800_000_000.0)
    leads_token, _ = credentials.issue("officer", "leads")
    agent_token, _ = credentials.issue("agent1", "agent")
    compliance_token, _ = credentials.issue("auditor", "compliance")
    reader = LeadReader(leads_engine, credentials, clock=lambda: 1_800_000_100.0)
    [lead] = reader.list(leads_token)
    assert lead.id == lead_id and lead.details.phones == (SELLER_PHONE,)
    exported = reader.export(leads_token, "csv")
    assert SELLER_PHONE in exported and "上岸互助" in exported.splitlines()[1]
    assert json.loads(reader.export(leads_token, "json"))[0]["groups"] == ["上岸互助"]
    for token in (agent_token, compliance_token, "dhk_not-a-real-token-at-all-000000000"):
        with pytest.raises(LeadAccessRefused):
            reader.list(token)
    credentials.revoke(agent="officer")
    with pytest.raises(LeadAccessRefused):
        reader.export(leads_token)
    audit = [(row["reader"], row["action"], row["outcome"], row["lead_ids"]) for row in reads_audit(leads_engine)]
    assert audit == [
        ("officer", "list", "ok", [lead_id]),
        ("officer", "export", "ok", [lead_id]),
        ("officer", "export", "ok", [lead_id]),
        ("agent1", "list", "refused: role agent", []),
        ("auditor", "list", "refused: role compliance", []),
        ("unknown", "list", "refused: unknown credential", []),
        ("officer", "export", "refused: revoked credential", []),
    ]


def test_listing_by_date(leads_engine, credentials):
    day = 1_800_000_000.0
    first = _store_lead(leads_engine, day)
    second = _store_lead(leads_engine, day + 3 * DAY_SECONDS, phone="13700000000")
    token, _ = credentials.issue("officer", "leads")
    reader = LeadReader(leads_engine, credentials)
    assert [lead.id for lead in reader.list(token, since=day + DAY_SECONDS)] == [second]
    assert [lead.id for lead in reader.list(token, until=day + DAY_SECONDS)] == [first]


def test_retention_deletes_exactly_the_leads_past_their_date(leads_engine, credentials):
    now = 1_800_000_000.0
    old = _store_lead(leads_engine, now - 91 * DAY_SECONDS)
    kept = _store_lead(leads_engine, now - 89 * DAY_SECONDS)
    token, _ = credentials.issue("officer", "leads")
    LeadReader(leads_engine, credentials, clock=lambda: now - 1200 * DAY_SECONDS).list(token)
    LeadReader(leads_engine, credentials, clock=lambda: now).list(token)
    deleted = apply_retention(leads_engine, LeadRetention(lead_days=90), now=now)
    assert deleted == {"leads": 1, "lead_reads": 1}
    assert [lead.id for lead in LeadReader(leads_engine, credentials).list(token)] == [kept]
    assert old != kept


def test_retention_settings(monkeypatch):
    monkeypatch.setenv("LEADS_RETENTION_DAYS", "30")
    assert LeadRetention.from_env().lead_days == 30
    assert LeadRetention.from_env(7).lead_days == 7
    monkeypatch.setenv("LEADS_RETENTION_DAYS", "soon")
    with pytest.raises(ValueError, match="LEADS_RETENTION_DAYS"):
        LeadRetention.from_env()
    with pytest.raises(ValueError):
        LeadRetention(lead_days=0)


def test_the_lead_tables_come_from_their_own_migration_branch(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    upgrade_database(url, "compliance")
    upgrade_database(url, "leads")
    engine = make_engine(url)
    with engine.connect() as connection:
        versions = {row[0] for row in connection.exec_driver_sql("SELECT version_num FROM bot_alembic_version")}
        tables = {row[0] for row in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
    engine.dispose()
    assert "0001_leads_store" in versions and any("compliance" in version for version in versions), versions
    assert len(versions) == 2, "one head per branch"
    assert {"leads", "lead_reads", "compliance_turns"} <= tables


def test_retention_apply_deletes_leads_and_says_so(tmp_path):
    """``python -m bot retention apply`` covers the leads store too and prints what it deleted."""
    import subprocess
    import sys
    import time

    from bot import PROJECT_ROOT

    leads_url = f"sqlite:///{tmp_path / 'leads.db'}"
    engine = open_store(leads_url)
    now = time.time()
    _store_lead(engine, now - 40 * DAY_SECONDS)
    kept = _store_lead(engine, now - 10 * DAY_SECONDS)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "retention", "apply", "--db", f"sqlite:///{tmp_path / 'compliance.db'}",
         "--leads-db", leads_url, "--lead-days", "30"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "seller leads older than 30 days deleted: 1" in result.stdout
    with engine.connect() as connection:
        assert [row[0] for row in connection.exec_driver_sql("SELECT id FROM leads")] == [kept]
    engine.dispose()
