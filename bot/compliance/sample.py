"""A generated sample of conversations as Rasa events, the shape Rasa publishes to its broker: used by the tests
and by ``python -m bot compliance sample`` (the README's chart, reports/compliance/). Seeded and deterministic.

Every conversation is a ``user`` event (channel, intent, confidence), the slots the actions set (risk level,
segment, red flags, referrals, bank, debt type), one ``bot`` event per response and an ``action_listen``;
some get a hand-over (a queued ticket, then an agent joining a given number of seconds later) or a fallback
turn. :class:`Expected` counts what was generated, so that a test can compare a report with it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from bot.knowledge import CHINA_TIME

SAMPLE_PER_DAY = 10
"""Conversations a day in the committed sample (reports/compliance/)."""

CHANNELS = ("rest", "socketio", "wechat_miniprogram")
PROFILES = [
    # intent, tactic flags, risk level, segment, referrals
    ("seek_credit_repair", ["false_promise"], "high", "misled", ["nfra_hotline:seek_credit_repair"]),
    ("seek_debt_agency", ["upfront_fee", "agency_offer"], "high", "misled",
     ["card_issuer:seek_debt_agency", "nfra_hotline:seek_debt_agency"]),
    ("agency_victim", ["fee_paid"], "high", "victim",
     ["police_hotline:agency_victim", "anti_fraud_hotline:agency_victim"]),
    ("report_collection_abuse", ["collection_abuse"], "medium", "fuzzy", ["nfra_hotline:report_collection_abuse"]),
    ("ask_hardship_plan", [], "none", "rational", ["card_issuer:hardship_plan"]),
    ("greet", [], "none", None, []),
]
BANKS = ("招商银行", "工商银行", "建设银行", None)
DEBT_TYPES = ("信用卡", "网贷", None)


@dataclass
class Expected:
    """What a sample holds: conversations by channel, segment and tactic, risk conversations, referrals by route,
    hand-overs, claims and fallback turns."""

    conversations: int = 0
    by_channel: Counter = field(default_factory=Counter)
    by_segment: Counter = field(default_factory=Counter)
    by_tactic: Counter = field(default_factory=Counter)
    risk: int = 0
    referrals: Counter = field(default_factory=Counter)
    handovers: int = 0
    claimed: int = 0
    turns: int = 0
    fallback_turns: int = 0
    events: int = 0


def _event(kind: str, sender: str, at: float, **fields: Any) -> Dict[str, Any]:
    return {"event": kind, "sender_id": sender, "timestamp": at, **fields}


def conversation_events(sender: str, start: float, channel: str, profile: int, bank: Optional[str],
                        debt_type: Optional[str], handover_claim_seconds: Optional[float] = None,
                        fallback: bool = False) -> List[Dict[str, Any]]:
    """The events of one generated conversation starting at ``start`` (epoch seconds)."""
    intent, flags, level, segment, referrals = PROFILES[profile]
    t = start
    events = [_event("action", sender, t, name="action_session_start"), _event("session_started", sender, t),
              _event("action", sender, t, name="action_listen")]
    t += 1
    events.append(_event("user", sender, t, text="（示例消息）", input_channel=channel,
                         parse_data={"intent": {"name": intent, "confidence": 0.9}, "entities": []}))
    events.append(_event("action", sender, t, name="action_answer_risk"))
    events += [_event("slot", sender, t, name="risk_level", value=level),
               _event("slot", sender, t, name="red_flags", value=flags),
               _event("slot", sender, t, name="user_segment", value=segment)]
    if referrals:
        events.append(_event("slot", sender, t, name="referrals", value=referrals))
    for name, value in (("bank", bank), ("debt_type", debt_type)):
        if value:
            events.append(_event("slot", sender, t, name=name, value=value))
    events.append(_event("bot", sender, t, text="……", metadata={"utter_action": f"utter_{intent}",
                                                                 "knowledge_version": "sample"}))
    events.append(_event("action", sender, t, name="action_listen"))
    if fallback:
        t += 5
        events.append(_event("user", sender, t, text="嗯嗯", input_channel=channel,
                             parse_data={"intent": {"name": "nlu_fallback", "confidence": 0.3}}))
        events.append(_event("bot", sender, t, text="……", metadata={"utter_action": "utter_ask_rephrase"}))
        events.append(_event("action", sender, t, name="action_listen"))
    if handover_claim_seconds is not None:
        t += 5
        ticket = "T" + hashlib.sha256(sender.encode()).hexdigest()[:8]
        events.append(_event("user", sender, t, text="转人工", input_channel=channel,
                             parse_data={"intent": {"name": "request_human", "confidence": 0.95}}))
        events.append(_event("bot", sender, t, text="……", metadata={"utter_action": "utter_handoff_queued",
                                                                     "ticket_id": ticket}))
        events.append(_event("pause", sender, t))
        events.append(_event("bot", sender, t + handover_claim_seconds, text="……",
                             metadata={"handoff": {"ticket_id": ticket, "kind": "agent_joined", "agent": "a"}}))
    return events


def generate(days: int = 28, per_day: int = 30, end: Optional[dt.date] = None, seed: int = 16) -> Iterator[Any]:
    """Yield ``(events, expected)`` once: ``per_day`` conversations a day (varying) over ``days`` days up to
    ``end`` (China time), with a pitch (``upfront_fee``) that rises in the last week."""
    rng = random.Random(seed)
    end = end or dt.date(2026, 11, 30)
    expected = Expected()
    events: List[Dict[str, Any]] = []
    for day_index in range(days):
        day = end - dt.timedelta(days=days - 1 - day_index)
        midnight = dt.datetime.combine(day, dt.time(8), CHINA_TIME).timestamp()
        rising = day_index >= days - 7
        for n in range(per_day + rng.randint(-per_day // 3, per_day // 3)):
            weights = [3, 6 if rising else 1, 1, 2, 3, 2]
            profile = rng.choices(range(len(PROFILES)), weights)[0]
            channel = rng.choice(CHANNELS)
            handover = rng.random() < 0.12
            claim = round(rng.uniform(20, 600), 1) if handover else None
            fallback = rng.random() < 0.1
            sender = f"sample-{day.isoformat()}-{n}"
            conv = conversation_events(sender, midnight + n * 300, channel, profile, rng.choice(BANKS),
                                       rng.choice(DEBT_TYPES), claim, fallback)
            events += conv
            _intent, flags, level, segment, referrals = PROFILES[profile]
            expected.conversations += 1
            expected.by_channel[channel] += 1
            expected.by_segment[segment or "(none)"] += 1
            expected.by_tactic.update(flags or ["(none)"])
            expected.risk += level in ("medium", "high")
            expected.referrals.update({r.split(":", 1)[0] for r in referrals})
            expected.handovers += handover
            expected.claimed += handover
            expected.turns += 1 + fallback + handover
            expected.fallback_turns += fallback
    expected.events = len(events)
    yield events, expected


def write_sample(folder: Path) -> Path:
    """Write the sample's events as JSON lines to ``folder/sample_events.jsonl``; returns the path."""
    events, _ = next(generate(per_day=SAMPLE_PER_DAY))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sample_events.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in events),
                    encoding="utf-8")
    return path


def render_sample(folder: Path) -> List[Path]:
    """Write the sample's events, then load them into a throwaway store and render the weekly report from it
    (``report_by_week.csv``, ``report_by_week.json``, ``conversations.png``, ``referrals.png``) into ``folder``;
    returns the paths written."""
    import tempfile

    from bot.compliance.charts import write_charts
    from bot.compliance.record import Recorder
    from bot.compliance.report import build, to_csv
    from bot.compliance.store import open_store
    from bot.risk import default_risk_engine

    events_path = write_sample(folder)
    events, _ = next(generate(per_day=SAMPLE_PER_DAY))
    end = dt.date(2026, 11, 30)
    with tempfile.TemporaryDirectory() as scratch:
        engine = open_store(f"sqlite:///{Path(scratch) / 'sample.db'}")
        recorder = Recorder(default_risk_engine())
        with engine.begin() as connection:
            for event in events:
                recorder.apply_event(connection, event)
        report = build(engine, end - dt.timedelta(days=27), end, "week")
        engine.dispose()
    csv_path, json_path = folder / "report_by_week.csv", folder / "report_by_week.json"
    csv_path.write_text(to_csv(report), encoding="utf-8")
    json_path.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return [events_path, csv_path, json_path, *write_charts(report, folder)]
