"""bot/crisis_reminder.py: when a turn after the crisis answer needs the hotline reminder."""
from __future__ import annotations

from typing import Any, Dict, List

from bot.crisis_reminder import REMINDER_USER_TURNS, reminder_due

HOTLINE = "12356"


def _user(text: str = "嗯") -> Dict[str, Any]:
    return {"event": "user", "text": text}


def _bot(text: str, action: str = "", kind: str = "") -> Dict[str, Any]:
    metadata: Dict[str, Any] = {"utter_action": action} if action else {}
    if kind:
        metadata["handoff"] = {"kind": kind, "ticket_id": "t1"}
    return {"event": "bot", "text": text, "metadata": metadata}


CRISIS: List[Dict[str, Any]] = [_user("我不想活了"), _bot("……请拨打12356……", "utter_support_distress")]


def test_a_later_turn_without_the_hotline_is_reminded() -> None:
    assert reminder_due([*CRISIS, _user("招商银行的"), _bot("是哪一类欠款？")], ["是哪一类欠款？"], HOTLINE)


def test_a_turn_that_names_the_hotline_is_not() -> None:
    assert not reminder_due([*CRISIS, _user()], ["请拨打12356"], HOTLINE)


def test_the_crisis_turn_itself_is_not() -> None:
    assert not reminder_due([_user("我不想活了"), _bot("好的", "utter_support_distress")], ["好的"], HOTLINE)


def test_an_agent_who_joined_ends_the_reminders() -> None:
    events = [*CRISIS, _bot("人工客服小王已接入", kind="agent_joined"), _user("你好")]
    assert not reminder_due(events, [], HOTLINE)


def test_reminders_stop_after_the_counted_turns() -> None:
    later = [event for _ in range(REMINDER_USER_TURNS) for event in (_user(), _bot("好的"))]
    assert reminder_due([*CRISIS, *later], ["好的"], HOTLINE)
    assert not reminder_due([*CRISIS, *later, _user(), _bot("好的")], ["好的"], HOTLINE)


def test_a_conversation_without_a_crisis_answer_is_never_reminded() -> None:
    assert not reminder_due([_user("你好"), _bot("您好")], ["您好"], HOTLINE)
