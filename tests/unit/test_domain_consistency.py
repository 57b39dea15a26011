"""The domain, the rules, the vocabulary (bot.intents), config.yml and the actions agree: every core intent has an
answering action and responses."""
from __future__ import annotations

import yaml

from actions.guidance_actions import ACTION_FOR_TOPIC, GUIDANCE_ACTIONS, GuidanceAction
from bot import PROJECT_ROOT
from bot.guidance import TOPIC_RESPONSES
from bot.intents import ALL_INTENTS, CHITCHAT_INTENTS, CORE_INTENTS, RISK_INTENTS
from bot.project_files import dialogue_blocks
from bot.texts import domain_responses


def test_each_core_intent_is_answered_by_its_action_in_the_rules(domain):
    rules = [block for block in dialogue_blocks() if "rule" in block and "condition" not in block]
    answered = {rule["steps"][0]["intent"]: rule["steps"][1]["action"] for rule in rules
                if "intent" in rule["steps"][0]}
    for intent, action in ACTION_FOR_TOPIC.items():
        assert intent in domain["intents"]
        assert action in domain["actions"]
        assert answered[intent] == action


def test_planned_responses_exist_in_the_domain(domain):
    for responses in TOPIC_RESPONSES.values():
        for name in responses:
            assert name.startswith("<") or name in domain["responses"], name


def test_every_custom_action_in_the_domain_has_a_class(domain):
    from rasa_sdk import Action
    from rasa_sdk.utils import all_subclasses

    import actions.detail_actions  # noqa: F401  (registers its classes)
    import actions.handoff_actions  # noqa: F401
    import actions.hardship_actions  # noqa: F401

    names = {cls().name() for cls in all_subclasses(Action) if cls.__module__.startswith("actions.")
             and cls not in (GuidanceAction,)}
    assert set(domain["actions"]) - {"validate_hardship_plan_form"} <= names
    assert sorted(cls().name() for cls in GUIDANCE_ACTIONS) == sorted(ACTION_FOR_TOPIC.values())


def test_the_routes_to_a_human_end_with_action_handoff():
    """request_human at once; distress and victims after their answer; every misunderstanding goes to
    action_clarify_or_answer_risk, which hands over the second one in a row (tests/unit/test_handoff.py)."""
    rules = {tuple(step.get("intent") or step.get("action") for step in block["steps"])
             for block in dialogue_blocks() if "rule" in block}
    assert ("request_human", "action_handoff") in rules
    assert ("express_distress", "action_support_distress", "action_handoff") in rules
    assert ("agency_victim", "action_support_agency_victim", "action_handoff") in rules
    assert ("nlu_fallback", "action_clarify_or_answer_risk") in rules


def test_every_intent_is_answered_by_some_rule(domain):
    rules = [block for block in dialogue_blocks() if "rule" in block]
    answered = {rule["steps"][0]["intent"] for rule in rules if "intent" in rule["steps"][0]}
    assert set(domain["intents"]) <= answered
    assert "nlu_fallback" in answered


def test_the_vocabulary_module_names_exactly_the_domain_intents(domain):
    assert sorted(ALL_INTENTS) == sorted(domain["intents"])
    assert set(RISK_INTENTS) <= set(CORE_INTENTS)
    assert set(ACTION_FOR_TOPIC) == set(CORE_INTENTS) - {"request_human"}


def test_config_weights_exactly_the_risk_intents():
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8"))
    [blender] = [c for c in config["pipeline"] if c["name"].endswith("CharNgramIntentBlender")]
    assert set(blender["intent_weights"]) == set(RISK_INTENTS)


def test_bot_texts_are_read_as_rasa_reads_the_domain(domain):
    assert domain_responses() == domain["responses"]


def test_the_rules_confirm_which_intents_are_core_and_which_chit_chat():
    """The vocabulary's grouping, checked against a source it does not write: a core intent's rule answers it with
    its own custom action (ACTION_FOR_TOPIC, or the hand-over), a chit-chat intent's with a response or the
    clarifying action. So moving an intent from one group to the other in bot/intents.py fails here."""
    first_answers = {block["steps"][0]["intent"]: block["steps"][1].get("action")
                     for block in dialogue_blocks()
                     if "rule" in block and "condition" not in block and "intent" in block["steps"][0]}
    for intent in CORE_INTENTS:
        assert first_answers[intent] in (ACTION_FOR_TOPIC.get(intent), "action_handoff"), intent
    for intent in CHITCHAT_INTENTS:
        assert first_answers[intent].startswith("utter_") or first_answers[intent] == "action_clarify_or_answer_risk", \
            intent
    assert len(CORE_INTENTS) == 11 and len(RISK_INTENTS) == 5 and len(CHITCHAT_INTENTS) == 7
