"""bot.tracker_store.recent_events: the hotline reminder reads the latest events of a conversation, backwards,
instead of its whole tracker, and decides exactly as it would on the whole tracker."""
from __future__ import annotations

import asyncio

import pytest
from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.crisis_reminder import CRISIS_RESPONSE, REMINDER_USER_TURNS, reminder_due
from bot.tracker_store import recent_events

HOTLINE = "12356"


def _conversation(store, sender, turns_before, turns_after):
    tracker = DialogueStateTracker(sender, [])
    tracker.update(ActionExecuted("action_listen"))
    for i in range(turns_before):
        tracker.update(UserUttered(f"问题{i}"))
        tracker.update(BotUttered("好的", metadata={"utter_action": "utter_ok"}))
        tracker.update(ActionExecuted("action_listen"))
    tracker.update(UserUttered("我不想活了"))
    tracker.update(BotUttered("请拨打热线", metadata={"utter_action": CRISIS_RESPONSE}))
    tracker.update(ActionExecuted("action_listen"))
    for i in range(turns_after):
        tracker.update(UserUttered(f"之后{i}"))
        tracker.update(BotUttered("好的", metadata={"utter_action": "utter_ok"}))
        tracker.update(ActionExecuted("action_listen"))
    asyncio.run(store.save(tracker))
    return [event.as_dict() for event in tracker.events]


@pytest.mark.parametrize("turns_after", [0, 1, REMINDER_USER_TURNS - 1, REMINDER_USER_TURNS, 30])
def test_the_tail_gives_the_same_decision_as_the_whole_tracker(tmp_path, turns_after):
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"))
    whole = _conversation(store, "r1", 40, turns_after)
    tail = recent_events(store, "r1", REMINDER_USER_TURNS, page=7)
    assert tail == whole[-len(tail):]
    assert sum(e["event"] == "user" for e in tail) <= REMINDER_USER_TURNS + 1
    assert reminder_due(tail, ["好的"], HOTLINE) == reminder_due(whole, ["好的"], HOTLINE)


def test_the_tail_stops_at_the_session_start(tmp_path):
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"))
    _conversation(store, "r2", 2, 0)
    tracker = asyncio.run(store.retrieve("r2"))
    for event in (ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"),
                  UserUttered("新的一天")):
        tracker.update(event)
    asyncio.run(store.save(tracker))
    tail = recent_events(store, "r2", REMINDER_USER_TURNS)
    assert [e["event"] for e in tail] == ["session_started", "action", "user"]
    assert not reminder_due(tail, ["好的"], HOTLINE)


def test_an_unknown_conversation_has_no_events_and_other_stores_cannot_tell(tmp_path):
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"))
    assert recent_events(store, "nobody", REMINDER_USER_TURNS) == []
    assert recent_events(InMemoryTrackerStore(Domain.empty()), "nobody", REMINDER_USER_TURNS) is None
