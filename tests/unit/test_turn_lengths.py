"""Short turns, details on request (bot/details.py, issue 19 part 3): every turn the actions can compose keeps the
limits, urgent safety content is never behind a button, and what a turn moved out comes back on its button."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.details import (
    FIRST_BUBBLE_CHARS,
    TURN_BUBBLES,
    TURN_CHARS,
    DetailsError,
    default_details,
    detail_button,
    fit_action_turn,
    fit_turn,
    load_details,
    pending_value,
    plan_detail,
    rendered_length,
    template_length,
)
from bot.guidance import ConversationState, plan_guidance
from bot.replies import ReplyInstruction
from bot.risk import default_risk_engine
from bot.turn_catalogue import CARD, Catalogue, Turn, sent_alone, summary


@pytest.fixture(scope="module")
def catalogue(knowledge):
    return Catalogue(knowledge, default_risk_engine(), default_details())


@pytest.fixture(scope="module")
def turns(catalogue):
    return catalogue.all_turns(sent_alone())


def test_every_planned_turn_keeps_the_limits(turns):
    broken = [f"{turn.label}: {', '.join(turn.problems())} {turn.names}" for turn in turns if turn.problems()]
    assert not broken, "\n".join(broken[:30])


def test_the_catalogue_covers_every_kind_of_turn(turns, catalogue):
    labels = " ".join(turn.label for turn in turns)
    for kind in ("seek_debt_agency", "agency_victim", "express_distress", "hardship plan", "request_human",
                 "nlu_fallback", "detail agency_risk", "response utter_greet", "on_duty=True", "on_duty=None"):
        assert kind in labels, kind
    assert len(turns) > 1000
    # the catalogue really has long content to cut: without the fitting, turns would break the limits
    assert any(turn.buttons for turn in turns)
    assert catalogue.pending  # and some turns did move content behind a button


def test_the_limit_check_itself_fails_on_a_long_turn():
    long = Turn("x", ("字" * (FIRST_BUBBLE_CHARS + 1), "字" * 200, "字" * 100, "字"), ("a", "b", "c", "d"), ())
    assert set(long.problems()) == {"4 bubbles", f"first bubble {FIRST_BUBBLE_CHARS + 1} chars",
                                    f"{FIRST_BUBBLE_CHARS + 302} chars"}
    assert Turn("ok", ("字" * 50, CARD), ("a", "card"), ()).problems() == []


def _turns_for(turns, prefix):
    return [turn for turn in turns if turn.label.startswith(prefix)]


def test_the_crisis_answer_names_the_hotlines_in_the_first_turn(turns, knowledge):
    facts = knowledge.template_values()
    crisis = [t for t in _turns_for(turns, "express_distress | 我真的不想活了")]
    assert crisis
    for turn in crisis:
        text = "".join(turn.bubbles)
        for key in ("psychological_hotline", "police_hotline", "medical_emergency_hotline"):
            assert facts[key] in text, (turn.label, key)
        assert turn.names[0] == "utter_support_distress"
        assert any(name.startswith("utter_handoff") for name in turn.names), turn.label  # the hand-over fits too


def test_a_victim_gets_the_protective_steps_in_the_first_turn(turns, knowledge):
    police = knowledge.template_values()["police_hotline"]
    victims = _turns_for(turns, "agency_victim | 交了服务费，还把身份证给了他们")
    assert victims
    for turn in victims:
        text = "".join(turn.bubbles)
        assert "密码" in text and "挂失" in text and police in text, turn.label
        assert len(turn.bubbles) - (turn.names[-1] == "utter_crisis_reminder") <= TURN_BUBBLES


def test_a_question_gets_a_short_direct_answer_first(turns):
    agency = _turns_for(turns, "seek_debt_agency | 有人说能帮我停息挂账，靠谱吗 | None | None")[0]
    assert agency.names[0] == "utter_warn_debt_agency"
    assert "为什么有风险" in agency.buttons and "怎么跟银行谈" in agency.buttons
    assert "刑法" not in agency.bubbles[0]  # the criminal-risk paragraph is behind the button now


def test_urgent_replies_are_never_deferred(knowledge):
    details = default_details()
    facts = knowledge.template_values()
    filler = [ReplyInstruction("utter_detail_agency_risk", facts), ReplyInstruction("utter_agency_case", facts)]
    urgent = [ReplyInstruction(name, facts) for name in ("utter_flag_fee_paid", "utter_flag_data_handed_over")]
    fitted = fit_turn([*filler, *urgent], details, rendered_length)
    names = [reply.response for reply in fitted.replies]
    assert "utter_flag_fee_paid" in names and "utter_flag_data_handed_over" in names
    assert "agency_risk" in fitted.deferred  # the case made room for them
    assert not any(item.response in details.urgent for group in fitted.deferred.values() for item in group)


def test_room_is_kept_for_the_hand_over_and_the_reminder(knowledge):
    facts = knowledge.template_values()
    replies = [ReplyInstruction(n, facts) for n in ("utter_warn_debt_agency", "utter_flag_upfront_fee",
                                                    "utter_flag_false_promise")]
    assert len(fit_action_turn(replies, default_details()).replies) == 3
    assert len(fit_action_turn(replies, default_details(), handoff_follows=True).replies) == 2
    assert len(fit_action_turn(replies, default_details(), handoff_follows=True, reminder_follows=True).replies) == 1


def test_a_deferred_reply_comes_back_on_its_button_with_its_planned_values(knowledge):
    state = ConversationState("招商银行的信用卡还不上了，有人说交服务费能帮我停息挂账，不成功不收费，包上岸")
    plan = plan_guidance("seek_debt_agency", state, knowledge, default_risk_engine())
    details = default_details()
    fitted = fit_turn(plan.replies, details, rendered_length)
    assert fitted.deferred, [r.response for r in plan.replies]
    slot = json.loads(json.dumps(pending_value(fitted)))  # the slot survives the tracker's JSON
    payloads = {button["payload"] for button in fitted.replies[-1].buttons}
    for key, deferred in fitted.deferred.items():
        assert detail_button(details.details[key])["payload"] in payloads
        again = plan_detail(key, slot, knowledge, details)
        for reply in deferred:
            [back] = [r for r in again if r.response == reply.response]
            assert rendered_length(back) == rendered_length(reply)


def test_a_button_pressed_later_still_answers_and_an_unknown_one_says_so(knowledge):
    details = default_details()
    replies = plan_detail("agency_risk", None, knowledge, details)
    assert [r.response for r in replies][:2] == ["utter_detail_agency_risk", "utter_agency_case"]
    assert [r.response for r in plan_detail("no_such", {}, knowledge, details)] == ["utter_detail_unknown"]


def test_button_payloads_are_the_ask_detail_intent_with_the_detail_entity():
    for detail in default_details().details.values():
        button = detail_button(detail)
        assert button["payload"].startswith("/ask_detail{")
        assert json.loads(button["payload"][len("/ask_detail"):]) == {"detail": detail.id}
        assert button["title"] and not any(c.isdigit() for c in button["payload"] + button["title"])


def test_the_action_server_counts_characters_as_rasa_renders_them(knowledge):
    """template_length (rasa-sdk only) and rendered_length (Rasa's interpolator) agree on every response an action
    can send. Responses with conditional variants (chosen by Rasa from slots, e.g. a form's question) are left out:
    which variant Rasa picks depends on the tracker, and the action server never measures them."""
    from bot.texts import domain_responses

    values = {**knowledge.template_values(), "bank_name": "招商银行", "bank_numbers": "95555", "lender_name": "x",
              "app_path_hint": "", "hardship_reason": "失业", "opening_hours": "周一", "ticket_id": "t",
              "agent_name": "王敏", "monthly_amount": "1500"}
    for name, variants in domain_responses().items():
        if any(variant.get("condition") for variant in variants):
            continue
        reply = ReplyInstruction(name, values)
        assert template_length(reply) == rendered_length(reply), name


def test_the_details_file_is_checked(tmp_path: Path, domain):
    bad = tmp_path / "details.yml"
    bad.write_text("details:\n  x:\n    title: t\n    responses: [utter_no_such]\n", encoding="utf-8")
    with pytest.raises(DetailsError, match="utter_no_such"):
        load_details(bad, domain["responses"])
    bad.write_text("details:\n  x:\n    title: t\n    responses: [utter_flag_fee_paid]\n"
                   "urgent: [utter_flag_fee_paid]\n", encoding="utf-8")
    with pytest.raises(DetailsError, match="urgent"):
        load_details(bad, domain["responses"])
    bad.write_text("details:\n  x1:\n    title: t\n    responses: [utter_greet]\n", encoding="utf-8")
    with pytest.raises(DetailsError, match="ASCII"):
        load_details(bad, domain["responses"])


def test_the_summary_names_the_longest_turn(turns):
    text = summary(turns)
    longest = max(turns, key=lambda t: t.chars)
    assert f"longest turn: {longest.chars} chars" in text and "turns over a limit: 0" in text
    assert longest.chars <= TURN_CHARS


def _tracker(events, slots=None):
    from rasa_sdk import Tracker

    return Tracker("u1", slots or {}, {"text": "x", "intent": {"name": "agency_victim"}, "entities": []}, events,
                   False, None, {}, "action_listen")


def test_an_action_counts_what_its_turn_already_sent_and_keeps_the_deferred_in_the_slot(knowledge):
    from rasa_sdk.executor import CollectingDispatcher

    from actions.replies import send_replies

    facts = knowledge.template_values()
    replies = [ReplyInstruction(n, facts) for n in ("utter_warn_debt_agency", "utter_flag_upfront_fee",
                                                    "utter_flag_false_promise")]
    alone = CollectingDispatcher()
    assert send_replies(alone, replies, _tracker([{"event": "user", "text": "x"}])) == []
    assert len(alone.messages) == 3
    earlier = [{"event": "user", "text": "x"},
               {"event": "bot", "text": "字" * 100, "metadata": {"utter_action": "utter_support_agency_victim"}},
               {"event": "bot", "text": "字" * 100, "metadata": {"utter_action": "utter_flag_fee_paid"}}]
    later = CollectingDispatcher()
    events = send_replies(later, replies, _tracker(earlier))
    assert [m["response"] for m in later.messages] == ["utter_warn_debt_agency"]
    [slot] = events
    assert slot["name"] == "pending_details" and set(slot["value"]) == {"promises"}
    assert {b["title"] for b in later.messages[-1]["buttons"]} >= {"“包上岸”可信吗", "为什么有风险"}
