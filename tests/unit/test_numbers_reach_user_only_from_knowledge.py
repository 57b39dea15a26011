"""No number can reach a user unless it is in data/knowledge/.

Walks every response in the domain (text, button titles and payloads) and every reply the actions can plan,
renders it the way Rasa does (``rasa.core.nlg.interpolator``) with the values the actions pass, and fails on
any digit run that does not occur in a knowledge file, or on a placeholder left unfilled.

One exception, and only for its own value: ``{opening_hours}`` (the human agent desk's hours, used by the
handoff responses in domain/handoff.yml). Opening hours are configuration (config/handoff.yml or
HANDOFF_OPENING_HOURS), not a fact about the world, so they are not in data/knowledge/; the digits of the
configured hours, as bot.handoff.hours renders them, are allowed, and no others. The other handoff variables
carry no digits in the text: ``{ticket_id}`` appears only in the custom payload, ``{agent_name}`` is a name.

A second, for the same reason: the hardship form's summary and script repeat the user's own answers
(``{monthly_repayment_capacity}``, the slot Rasa fills in, and ``{monthly_amount}``, the action's copy). A
number the user gave is not a fact about the world; the digits of the amount the test answers with are
allowed in a response that holds one of those two placeholders, and nowhere else.
"""
from __future__ import annotations

import re
from itertools import product

import pytest
import yaml
from rasa.core.nlg.interpolator import interpolate_text

from bot import PROJECT_ROOT
from bot.directory import institution_numbers
from bot.guidance import TOPIC_RESPONSES, ConversationState, plan_guidance
from bot.handoff.config import load_settings
from bot.hardship import HARDSHIP_REASONS, REASK_RESPONSES, HardshipCase, build_plan
from bot.project_files import dialogue_blocks
from bot.risk import default_risk_engine

_PLACEHOLDER = re.compile(r"{[^{}\n]+}")


def _knowledge_digits(knowledge) -> set:
    return {run for text in knowledge.statable_texts() for run in re.findall(r"\d+", text)}


def _handoff_values() -> dict:
    """The handoff variables as the action and the desk fill them (opening hours from the configuration)."""
    return {"opening_hours": load_settings({}).opening_hours.describe(), "ticket_id": "ticket-id",
            "agent_name": "王敏"}


def _opening_hours_digits() -> set:
    """The allowlist for the configured opening hours only (see the module docstring)."""
    return set(re.findall(r"\d+", _handoff_values()["opening_hours"]))


def _texts_of(variant: dict) -> list:
    texts = [variant.get("text", "")]
    for button in variant.get("buttons", []):
        texts += [button["title"], button["payload"]]
    return texts


def _offending_digits(text: str, allowed: set) -> list:
    return [run for run in re.findall(r"\d+", text) if run not in allowed]


USER_AMOUNT = "2000"
"""The monthly amount the tests answer the hardship form with."""

_USER_ANSWER_PLACEHOLDERS = ("{monthly_repayment_capacity}", "{monthly_amount}")


def _form_answers() -> dict:
    """The hardship form's slots as Rasa fills them into the summary (the user's own answers)."""
    return {"bank": "招商银行", "debt_type": "信用卡", "monthly_repayment_capacity": USER_AMOUNT,
            "already_overdue": "未说明", "monthly_amount": USER_AMOUNT}


def _allowed_in(template: str, allowed: set) -> set:
    """``allowed``, plus the user's own amount in a template that repeats it (see the module docstring)."""
    if any(p in template for p in _USER_ANSWER_PLACEHOLDERS):
        return allowed | {USER_AMOUNT}
    return allowed


def _assert_replies_render_only(replies, domain: dict, allowed: set) -> None:
    """Render each planned reply as Rasa would; fail on an unfilled placeholder or a number not allowed."""
    for reply in replies:
        for variant in domain["responses"][reply.response]:
            for text in _texts_of(variant):
                rendered = interpolate_text(text, {**_form_answers(), **reply.variables})
                assert not _PLACEHOLDER.search(rendered), f"{reply.response}: {rendered!r}"
                assert not _offending_digits(rendered, _allowed_in(text, allowed)), f"{reply.response}: {rendered!r}"


def _rule_and_story_responses() -> set:
    names = set()
    for block in dialogue_blocks():
        names |= {step["action"] for step in block["steps"] if step.get("action", "").startswith("utter_")}
    return names


def test_every_response_renders_only_knowledge_numbers(domain, knowledge):
    allowed = _knowledge_digits(knowledge) | _opening_hours_digits()
    values = {**_form_answers(), **knowledge.template_values(), **_handoff_values()}
    bank_variants = [
        {"bank_name": inst.name, "bank_numbers": "，".join(institution_numbers(inst)), "lender_name": inst.name,
         "app_path_hint": "", "hardship_reason": HARDSHIP_REASONS[i % len(HARDSHIP_REASONS)]}
        for i, inst in enumerate(knowledge.institutions)
    ]
    checked = 0
    for name, variants in domain["responses"].items():
        for variant, bank in product(variants, bank_variants):
            for text in _texts_of(variant):
                rendered = interpolate_text(text, {**values, **bank})
                assert not _PLACEHOLDER.search(rendered), f"{name}: unfilled placeholder in {rendered!r}"
                assert not _offending_digits(rendered, _allowed_in(text, allowed)), f"{name}: {rendered!r}"
                checked += 1
    assert checked > 100


def test_response_templates_hold_no_digits_at_all(domain):
    """Numbers enter replies only through {placeholders} filled from data/knowledge/, never typed in."""
    for name, variants in domain["responses"].items():
        for variant in variants:
            for text in _texts_of(variant):
                outside_placeholders = _PLACEHOLDER.sub("", text)
                assert not re.search(r"\d", outside_placeholders), f"{name} has a typed-in number: {text!r}"


def test_every_planned_reply_renders_only_knowledge_numbers(domain, knowledge):
    allowed = _knowledge_digits(knowledge)
    messages = ["", *(f"{inst.aliases[0]}的信用卡还不上了" for inst in knowledge.institutions), "宇宙银行",
                "不成功不收费，交了服务费，把身份证给了他们，让我先别还了，开假证明，恶意投诉，反催收，骂我",
                "听说催收都是黑社会，好害怕", "有人说能帮我停息挂账，靠谱吗"]
    debt_types = [None, "信用卡", "网贷", "消费贷", "房贷", "车贷"]
    segments = [None, "victim"]
    for topic, message, debt_type, segment in product(TOPIC_RESPONSES, messages, debt_types, segments):
        state = ConversationState(message, intent=topic, debt_type=debt_type, user_segment=segment)
        plan = plan_guidance(topic, state, knowledge, default_risk_engine())
        _assert_replies_render_only(plan.replies, domain, allowed)


def test_responses_sent_without_an_action_have_no_placeholders(domain):
    direct = _rule_and_story_responses() | {"utter_empty_message", "utter_message_too_long", "utter_privacy_notice"}
    assert "utter_greet" in direct
    for name in direct:
        for variant in domain["responses"][name]:
            for text in _texts_of(variant):
                assert not _PLACEHOLDER.search(text), f"{name} is sent without variables but has {text!r}"


@pytest.mark.parametrize("forbidden", ["165", "12363"])
def test_numbers_we_must_not_give_are_absent_from_responses(domain, forbidden):
    dumped = yaml.safe_dump(domain["responses"], allow_unicode=True)
    assert forbidden not in dumped


def _numbers_in_card(card: dict) -> list:
    for channel in card["channels"]:
        assert channel["tel"] == "tel:" + channel["number"].replace("-", "")
    return [channel["number"] for channel in card["channels"]]


@pytest.mark.parametrize("deployment", [None, "docs/deployment.example.yml"])
def test_every_hardship_plan_renders_only_knowledge_numbers(domain, deployment, monkeypatch):
    from bot import PROJECT_ROOT
    from bot.knowledge import load_knowledge

    if deployment:
        monkeypatch.setenv("DEBT_HELP_DEPLOYMENT", str(PROJECT_ROOT / deployment))
    knowledge = load_knowledge()
    allowed = _knowledge_digits(knowledge)
    lenders = [inst.name for inst in knowledge.institutions] + ["其他"]
    for lender, debt_type, reason, overdue in product(lenders, ["信用卡", "网贷", "房贷", "未说明"],
                                                      [*HARDSHIP_REASONS, "未说明"], ["yes", "no"]):
        plan = build_plan(HardshipCase(lender, debt_type, reason, USER_AMOUNT, overdue), knowledge)
        _assert_replies_render_only(plan.replies, domain, allowed)
        for written in _numbers_in_card(plan.channel_card) + [plan.channel_card["note"]]:
            assert not _offending_digits(written, allowed), written


def test_question_hints_hold_no_digits(domain):
    for response in REASK_RESPONSES.values():
        for variant in domain["responses"][response]:
            assert not re.search(r"\d", variant["text"]), response


def test_handoff_replies_render_only_knowledge_numbers_and_the_opening_hours(domain, knowledge, tmp_path):
    """Every reply action_handoff can plan (queued in and out of hours, unavailable, after fallbacks, with
    and without a known bank) and every message the desk sends."""
    import datetime as dt

    from bot.db import upgrade_database
    from bot.handoff.intake import HandoffContext, open_handoff
    from bot.handoff.messages import render
    from bot.handoff.store import TicketStore
    from tests.support.handoff import InProcessDesk

    allowed = _knowledge_digits(knowledge) | _opening_hours_digits()
    url = f"sqlite:///{tmp_path / 'numbers.db'}"
    upgrade_database(url, "handoff")
    store = TicketStore.from_url(url)
    settings = load_settings({})
    moments = [dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.UTC),  # Monday 11:00 in Shanghai: open
               dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.UTC)]  # Tuesday 04:00: closed
    checked = set()
    for index, (moment, intent, bank, desk_up) in enumerate(product(
            moments, ["request_human", "express_distress", "agency_victim", "nlu_fallback"],
            [None, *(inst.aliases[0] for inst in knowledge.institutions)], [True, False])):
        channel = ("rest", "socketio")[(index // 2) % 2]  # the follow-up texts differ by channel
        context = HandoffContext(f"numbers-{index}", channel, [], {"bank": bank}, intent, "转人工")
        desk = InProcessDesk(store, settings, now=moment) if desk_up else None
        for reply in open_handoff(context, desk, knowledge).replies:
            for variant in domain["responses"][reply.response]:
                for text in _texts_of(variant):
                    rendered = interpolate_text(text, reply.variables)
                    assert not _PLACEHOLDER.search(rendered), f"{reply.response}: {rendered!r}"
                    assert not _offending_digits(rendered, allowed), f"{reply.response}: {rendered!r}"
                    checked.add(reply.response)
    handoff_file = yaml.safe_load((PROJECT_ROOT / "domain" / "handoff.yml").read_text(encoding="utf-8"))
    for name in handoff_file["responses"]:  # every response the desk may render
        rendered = render(name, **_handoff_values())["text"]
        assert not _PLACEHOLDER.search(rendered) and not _offending_digits(rendered, allowed), name
    assert {"utter_handoff_queued", "utter_handoff_follow_up", "utter_handoff_follow_up_no_push",
            "utter_handoff_unavailable", "utter_handoff_after_fallback", "utter_handoff_distress_reminder"} <= checked


def _expiry_days(knowledge) -> list:
    import datetime as dt

    return sorted({fact.valid_until + dt.timedelta(days=1) for fact in knowledge.facts() if fact.valid_until})


def test_every_response_renders_on_a_day_after_each_valid_until(domain, knowledge):
    """On the day after each ``valid_until``, every response renders with no unfilled placeholder other than a
    withdrawn fact's, only knowledge numbers, and never the ended fact's old wording."""
    days = _expiry_days(knowledge)
    assert days, "the one-time credit repair deadline is a valid_until"
    allowed = _knowledge_digits(knowledge) | _opening_hours_digits()
    for day in days:
        values = {**_form_answers(), **knowledge.template_values(day), **_handoff_values(), "bank_name": "中国工商银行",
                  "bank_numbers": "95588", "lender_name": "中国工商银行", "app_path_hint": "",
                  "hardship_reason": "失业"}
        ended = [fact for fact in knowledge.facts() if fact.expired_on(day)]
        withdrawn = knowledge.withdrawn_keys(day)
        for name, variants in domain["responses"].items():
            for variant in variants:
                for text in _texts_of(variant):
                    if withdrawn & set(re.findall(r"{(\w+)}", text)):
                        continue  # never sent on this day (bot.replies.drop_withdrawn)
                    rendered = interpolate_text(text, values)
                    assert not _PLACEHOLDER.search(rendered), f"{name} on {day}: {rendered!r}"
                    assert not _offending_digits(rendered, _allowed_in(text, allowed)), f"{name} on {day}: {rendered!r}"
                    for fact in ended:
                        assert fact.value not in rendered, f"{name} on {day} still states {fact.key}"


def test_every_planned_reply_on_a_day_after_each_valid_until_states_only_current_facts(domain, knowledge):
    from bot.intents import SEEK_CREDIT_REPAIR

    allowed = _knowledge_digits(knowledge)
    for day in _expiry_days(knowledge):
        ended = [fact for fact in knowledge.facts() if fact.expired_on(day)]
        for topic in TOPIC_RESPONSES:
            state = ConversationState("征信上的逾期能花钱消掉吗", intent=topic)
            plan = plan_guidance(topic, state, knowledge, default_risk_engine(), on=day)
            _assert_replies_render_only(plan.replies, domain, allowed)
            for reply in plan.replies:
                rendered = interpolate_text(domain["responses"][reply.response][0]["text"], reply.variables)
                assert not any(fact.value in rendered for fact in ended), (topic, reply.response)
        policy = plan_guidance(SEEK_CREDIT_REPAIR, ConversationState("能修复征信吗", intent=SEEK_CREDIT_REPAIR),
                               knowledge, default_risk_engine(), on=day)
        texts = [interpolate_text(domain["responses"][r.response][0]["text"], r.variables) for r in policy.replies]
        assert any("期限已经过了" in text for text in texts)


def test_a_withdrawn_fact_drops_the_responses_quoting_it(domain, tmp_path):
    import datetime as dt
    import shutil

    from bot.intents import SEEK_CREDIT_REPAIR
    from bot.knowledge import KNOWLEDGE_DIR, load_knowledge

    directory = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, directory)
    cases = yaml.safe_load((directory / "cases.yml").read_text(encoding="utf-8"))
    cases["cases"][-1].pop("expired_value")
    (directory / "cases.yml").write_text(yaml.safe_dump(cases, allow_unicode=True), encoding="utf-8")
    knowledge = load_knowledge(directory)
    state = ConversationState("能修复征信吗", intent=SEEK_CREDIT_REPAIR)

    def names(day):
        plan = plan_guidance(SEEK_CREDIT_REPAIR, state, knowledge, default_risk_engine(), on=day)
        return [reply.response for reply in plan.replies]

    assert "utter_credit_repair_policy" in names(dt.date(2026, 3, 31))
    assert "utter_credit_repair_policy" not in names(dt.date(2026, 4, 1))
    assert names(dt.date(2026, 4, 1))[0] == "utter_warn_credit_repair"
