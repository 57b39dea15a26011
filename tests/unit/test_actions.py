"""The custom actions send the planned responses and set the resolved bank, without a Rasa server."""
from __future__ import annotations

import asyncio

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.guidance_actions import GUIDANCE_ACTIONS


def _tracker(text: str, intent: str, **slots) -> Tracker:
    return Tracker(
        sender_id="test-user",
        slots={"bank": None, "debt_type": None, **slots},
        latest_message={"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def _action(name: str):
    from actions.guidance_actions import ActionClarifyOrAnswerRisk

    return next(cls() for cls in [*GUIDANCE_ACTIONS, ActionClarifyOrAnswerRisk] if cls().name() == name)


def _run(name: str, tracker: Tracker):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(_action(name).run(dispatcher, tracker, {}))
    return dispatcher.messages, events


def test_agency_warning_action_sends_warning_case_and_official_channel():
    messages, events = _run("action_warn_debt_agency", _tracker("有公司说能帮我停息挂账", "seek_debt_agency"))
    assert [m["response"] for m in messages] == [
        "utter_warn_debt_agency", "utter_segment_misled", "utter_official_channel_card_issuer"]
    assert messages[-1]["nfra_hotline"] == "12378"
    # the case and the criminal risk are one button away (bot.details), after the turn's last message
    assert {b["title"] for b in messages[-1]["buttons"]} >= {"为什么有风险", "怎么跟银行谈", "我该打哪个电话"}
    assert events == [SlotSet("referrals", ["nfra_hotline:seek_debt_agency"]), SlotSet("risk_level", "medium"),
                      SlotSet("red_flags", ["agency_offer"]), SlotSet("user_segment", "misled")]


def test_complaint_action_resolves_the_bank_and_sets_the_slot():
    tracker = _tracker("建行信用卡乱收费怎么投诉", "ask_complaint_channel")
    messages, events = _run("action_list_complaint_channels", tracker)
    assert messages[-1]["response"] == "utter_bank_channel"
    assert messages[-1]["bank_numbers"] == "95533"
    assert SlotSet("bank", "中国建设银行") in events
    assert SlotSet("user_segment", "rational") in events
    referrals = next(e["value"] for e in events if e["name"] == "referrals")
    assert "nfra_hotline:ask_complaint_channel" in referrals and "中国建设银行:ask_complaint_channel" in referrals


def test_victim_flag_from_an_earlier_turn_changes_a_later_answer():
    tracker = _tracker("那我现在怎么跟银行协商", "ask_hardship_plan", red_flags=["fee_paid"],
                       risk_level="high", user_segment="victim")
    messages, events = _run("action_guide_hardship_plan", tracker)
    assert [m["response"] for m in messages] == ["utter_hardship_intro", "utter_segment_victim_paid"]
    assert SlotSet("risk_level", "high") in events and SlotSet("user_segment", "victim") in events


def test_distress_action_offers_help_with_the_sourced_hotline():
    messages, _ = _run("action_support_distress", _tracker("我真的不想活了", "express_distress"))
    assert messages[0]["response"] == "utter_support_distress"
    assert messages[0]["psychological_hotline"] == "12356"


def test_unsure_nlu_still_answers_red_flags():
    messages, events = _run("action_clarify_or_answer_risk", _tracker("那个老师说先交押金就能上岸", "nlu_fallback"))
    assert messages[0]["response"] == "utter_warn_debt_agency"
    assert SlotSet("risk_level", "medium") in events


def test_unsure_nlu_without_red_flags_asks_to_clarify():
    messages, events = _run("action_clarify_or_answer_risk", _tracker("嗯嗯那个", "nlu_fallback"))
    assert [m["response"] for m in messages] == ["utter_clarify"] and events == []
    messages, _ = _run("action_clarify_or_answer_risk", _tracker("今天天气如何", "out_of_scope"))
    assert [m["response"] for m in messages] == ["utter_out_of_scope"]
