"""Referral taps (bot.referral_taps): only a reason a card carries and a number the bot states are recorded, named
as the referrals slot names its entries; the compliance record and report count them per route."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from bot.compliance.record import Recorder
from bot.compliance.report import build, to_csv, to_table
from bot.compliance.schema import conversations
from bot.compliance.store import open_store
from bot.directory import bank_channel_card
from bot.knowledge import CHINA_TIME, default_knowledge
from bot.referral_taps import CARD_REASONS, TAP_SLOT, tap_entry
from bot.risk import default_risk_engine

KNOWLEDGE = default_knowledge()


def _numbered_institution():
    return next(i for i in KNOWLEDGE.institutions if i.credit_card_number or i.service_number)


def test_every_number_on_a_card_the_bot_builds_is_a_tap_it_records():
    institution = _numbered_institution()
    card = bank_channel_card([institution], KNOWLEDGE, reason="hardship_plan")
    entries = [tap_entry({"reason": card["reason"], "number": channel["number"]}, KNOWLEDGE)
               for channel in card["channels"]]
    assert entries[-1] == "nfra_hotline:hardship_plan", "the regulator closes every card"
    assert entries[:-1] and all(entry == f"{institution.name}:hardship_plan" for entry in entries[:-1])


def test_a_number_is_matched_by_its_digits_whatever_the_separators():
    hotline = KNOWLEDGE.fact("nfra_hotline").value
    spaced = " ".join(hotline)
    assert tap_entry({"reason": "complaint", "number": spaced}, KNOWLEDGE) == "nfra_hotline:complaint"


@pytest.mark.parametrize("data", [
    {"reason": "hardship_plan", "number": "13800138000"},  # a number the bot never gives
    {"reason": "hardship_plan", "number": ""},
    {"reason": "make_money", "number": "12378"},  # not a card's reason
    {"number": "12378"},
    "hardship_plan:12378",
    None,
    ["hardship_plan", "12378"],
])
def test_anything_else_is_refused(data):
    assert tap_entry(data, KNOWLEDGE) is None


def test_the_reasons_are_the_documented_ones():
    from bot import PROJECT_ROOT

    payloads = (PROJECT_ROOT / "docs/channels/payloads.md").read_text(encoding="utf-8")
    assert all(f"`{reason}`" in payloads for reason in CARD_REASONS)


def test_the_record_keeps_each_tap_once_and_the_report_counts_them_by_route(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'compliance.db'}")
    recorder = Recorder(default_risk_engine())
    now = dt.datetime.now(CHINA_TIME).timestamp()
    events = [
        {"event": "user", "sender_id": "t1", "timestamp": now, "text": "想跟银行协商分期", "input_channel": "socketio",
         "parse_data": {"intent": {"name": "ask_hardship_plan", "confidence": 0.9}}},
        {"event": "slot", "sender_id": "t1", "timestamp": now + 1, "name": "referrals",
         "value": ["nfra_hotline:ask_hardship_plan"]},
        {"event": "action", "sender_id": "t1", "timestamp": now + 2, "name": "action_listen"},
        {"event": "slot", "sender_id": "t1", "timestamp": now + 10, "name": TAP_SLOT,
         "value": "nfra_hotline:hardship_plan"},
        {"event": "slot", "sender_id": "t1", "timestamp": now + 11, "name": TAP_SLOT,
         "value": "nfra_hotline:hardship_plan"},  # tapped again: the same referral acted on
        {"event": "slot", "sender_id": "t1", "timestamp": now + 12, "name": TAP_SLOT,
         "value": "招商银行:hardship_plan"},
    ]
    with engine.begin() as connection:
        for event in events:
            recorder.apply_event(connection, event)
    with engine.connect() as db:
        taps = json.loads(db.execute(sa.select(conversations.c.taps)).scalar_one())
    assert taps == ["nfra_hotline:hardship_plan", "招商银行:hardship_plan"]
    today = dt.datetime.now(CHINA_TIME).date()
    report = build(engine, today - dt.timedelta(days=1), today, "channel")
    (group,) = report.groups
    assert dict(group.taps) == {"nfra_hotline": 1, "招商银行": 1}
    header = to_csv(report).splitlines()[0].split(",")
    assert "taps:nfra_hotline" in header and "taps:招商银行" in header
    assert "Call buttons tapped by route" in to_table(report)
    engine.dispose()
