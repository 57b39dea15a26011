"""Referral counting reads a real Rasa SQL tracker store."""
from __future__ import annotations

import asyncio

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.referral_report import count_referrals


def test_latest_referrals_per_conversation_are_counted(tmp_path):
    db = tmp_path / "tracker.db"
    domain = Domain.from_yaml("slots:\n  referrals:\n    type: list\n    mappings:\n      - type: custom\n")
    store = SQLTrackerStore(domain, dialect="sqlite", db=str(db))
    for sender, values in {
        "a": [["nfra_hotline:complaint"], ["nfra_hotline:complaint", "招商银行:hardship_plan"]],
        "b": [["nfra_hotline:hardship_plan_refused"]],
        "c": [],
    }.items():
        tracker = DialogueStateTracker(sender, domain.slots)
        tracker.update(UserUttered("hi"))
        for value in values:
            tracker.update(SlotSet("referrals", value))
        asyncio.run(store.save(tracker))
    per_channel, per_reason = count_referrals(f"sqlite:///{db}")
    assert per_channel == {"nfra_hotline": 2, "招商银行": 1}
    assert per_reason[("nfra_hotline", "complaint")] == 1
    assert per_reason[("nfra_hotline", "hardship_plan_refused")] == 1
