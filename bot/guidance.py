"""Decide which responses answer a topic, and with which facts.

The text of every reply lives in ``domain/``; the facts it quotes live in ``data/knowledge/``. This module
joins them: for a topic (the core intent being answered) and what the conversation has revealed so far, it
returns an ordered list of :class:`bot.replies.ReplyInstruction` — a domain response name plus the template
variables to fill it with. The custom actions in ``actions/`` only send them.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

from bot import subtopics, texts
from bot.crisis import CrisisLevel, crisis_level, holds_despair
from bot.hardship import states_hardship
from bot.intents import (
    AGENCY_VICTIM,
    ASK_COMPLAINT_CHANNEL,
    ASK_CREDIT_RECORD,
    ASK_EVADE_DEBT,
    ASK_HARDSHIP_PLAN,
    ASK_LEGAL_RISK,
    EXPRESS_DISTRESS,
    NLU_FALLBACK,
    REPORT_COLLECTION_ABUSE,
    REQUEST_HUMAN,
    SEEK_CREDIT_REPAIR,
    SEEK_DEBT_AGENCY,
)
from bot.knowledge import Knowledge
from bot.replies import ReplyInstruction, bank_line, drop_withdrawn, identify_institution
from bot.risk import SEGMENT_EVIDENCE, VICTIM_FLAGS, RiskAssessment, RiskEngine

# Placeholder in the tables below for "the user's bank, if we know it".
_BANK_LINE = subtopics.BANK_LINE

MAX_SUBTOPIC_BUBBLES = 3
"""A sub-topic's turn (bot/subtopics.py) sends at most this many messages: its own answer first, then what the
red flags and the segment add (issue 19: a turn is at most three bubbles)."""

TOPIC_RESPONSES: Dict[str, Tuple[str, ...]] = {
    SEEK_DEBT_AGENCY: (
        "utter_warn_debt_agency",
        _BANK_LINE,
        "utter_official_channel_card_issuer",
    ),
    SEEK_CREDIT_REPAIR: (
        "utter_warn_credit_repair",
        "utter_credit_repair_policy",
        "utter_credit_report_channel",
    ),
    AGENCY_VICTIM: ("utter_support_agency_victim", _BANK_LINE),
    ASK_EVADE_DEBT: ("utter_explain_evasion_risk", "utter_official_channel_card_issuer"),
    ASK_LEGAL_RISK: ("utter_explain_legal_risk",),
    ASK_HARDSHIP_PLAN: ("utter_hardship_intro",),
    REPORT_COLLECTION_ABUSE: ("utter_guide_collection_complaint", _BANK_LINE),
    ASK_CREDIT_RECORD: ("utter_answer_credit_record",),
    ASK_COMPLAINT_CHANNEL: ("utter_list_complaint_channels", _BANK_LINE),
    EXPRESS_DISTRESS: ("utter_support_distress",),
}
"""Topic (core intent) -> responses sent, in order. Every core intent in domain/ has an entry except
``request_human``, which is answered by the human handoff (bot/handoff/, actions/handoff_actions.py)."""

FLAG_RESPONSES: Dict[str, str] = {
    "false_promise": "utter_flag_false_promise",
    "upfront_fee": "utter_flag_upfront_fee",
    "fee_paid": "utter_flag_fee_paid",
    "data_handed_over": "utter_flag_data_handed_over",
    "told_to_stop_paying": "utter_stopped_paying_consequence",
    "forgery_request": "utter_flag_forgery_request",
    "complaint_leverage": "utter_flag_complaint_leverage",
    "agency_offer": "utter_flag_agency_offer",
    "collection_abuse": "utter_guide_collection_complaint",
}
"""Red flag (bot/risk.py lexicon id) -> the response answering it when the user mentions it."""

TOPIC_COVERS_FLAGS: Dict[str, frozenset] = {
    SEEK_DEBT_AGENCY: frozenset({"agency_offer", "upfront_fee"}),
    SEEK_CREDIT_REPAIR: frozenset({"agency_offer", "upfront_fee", "false_promise"}),
    AGENCY_VICTIM: frozenset({"agency_offer", "upfront_fee"}),
    REPORT_COLLECTION_ABUSE: frozenset({"collection_abuse"}),
    EXPRESS_DISTRESS: frozenset(FLAG_RESPONSES),
    REQUEST_HUMAN: frozenset(FLAG_RESPONSES),
}
"""Flags a topic's own answer already covers, so they are not answered twice."""

VICTIM_CHECKLIST = ("utter_flag_fee_paid", "utter_flag_data_handed_over")
"""What a victim gets when they did not say what they handed over: the whole stop-loss checklist."""

VICTIM_CHECKLIST_BOTH = "utter_flag_paid_and_handed_over"
"""Both checklists in one bubble, sent instead of the two (a turn holds three bubbles at most: bot.details)."""

SEGMENT_RESPONSES: Dict[str, str] = {
    "misled": "utter_segment_misled",
    "fuzzy": "utter_segment_fuzzy",
    "victim": "utter_segment_victim",
}
"""Segment -> the message fitting it (rational users get no extra message: straight to the channel). For
victims, :data:`VICTIM_REMINDERS` picks the one that repeats only what they said."""

VICTIM_REMINDERS: Dict[frozenset, str] = {
    frozenset({"fee_paid"}): "utter_segment_victim_paid",
    frozenset({"data_handed_over"}): "utter_segment_victim_handed_over",
    frozenset({"fee_paid", "data_handed_over"}): "utter_segment_victim_paid_and_handed_over",
}
"""The victim flags the user raised -> the reminder naming exactly those acts. A victim without any (the NLU
read them so) gets ``utter_segment_victim``, which asserts nothing: "如果您已经付过钱或交出过资料"."""

FALLBACK_TOPIC_FOR_FLAGS: Tuple[Tuple[frozenset, str], ...] = (
    (frozenset({"fee_paid", "data_handed_over"}), AGENCY_VICTIM),
    (frozenset({"anti_collection", "complaint_leverage", "agency_offer", "false_promise", "upfront_fee",
                "forgery_request", "told_to_stop_paying"}), SEEK_DEBT_AGENCY),
    (frozenset({"collection_abuse", "collection_fear"}), REPORT_COLLECTION_ABUSE),
)
"""When the NLU is unsure (nlu_fallback) or calls a message out of scope, red flags in it still decide the
answer: the first group with a flag present names the topic answered. Order: victims first."""


def fallback_topic(text: str, engine: RiskEngine, intent: str = NLU_FALLBACK) -> Optional[str]:
    """The topic to answer for a message the NLU could not place (``intent`` nlu_fallback or out_of_scope):
    from its red flags, else from the sub-topic it asks about (bot/subtopics.py); None if neither."""
    flags = set(engine.find_flags(text))
    for group, topic in FALLBACK_TOPIC_FOR_FLAGS:
        if flags & group:
            return topic
    return subtopics.fallback_topic(text, flags, intent)


_NO_SEGMENT_MESSAGE_TOPICS = frozenset({EXPRESS_DISTRESS, REQUEST_HUMAN, AGENCY_VICTIM})


@dataclass(frozen=True)
class ConversationState:
    """What the dialogue knows when a topic is answered.

    ``latest_message``: the user's last text (already PII-masked); ``intent``: its NLU intent; ``bank``: the
    bank slot (canonical name or a raw alias, may be None); ``debt_type``: one of 信用卡/网贷/消费贷/房贷/车贷
    or None; ``red_flags``, ``risk_level``, ``user_segment``: the risk slots before this message;
    ``hardship_case_complete``: every hardship-form slot is already filled (the plan will be given again);
    ``referrals``: the ``referrals`` slot, official channels already given as ``"<channel>:<why>"``.
    """

    latest_message: str = ""
    intent: Optional[str] = None
    bank: Optional[str] = None
    debt_type: Optional[str] = None
    red_flags: Tuple[str, ...] = ()
    risk_level: Optional[str] = None
    user_segment: Optional[str] = None
    hardship_case_complete: bool = False
    referrals: Tuple[str, ...] = ()


@dataclass(frozen=True)
class GuidancePlan:
    """The replies for one turn plus the slot values the turn established (e.g. the resolved bank)."""

    replies: List[ReplyInstruction]
    slots: Dict[str, Union[str, List[str], None]]
    risk: Optional[RiskAssessment] = None


def referrals_for(topic: str, replies: List[ReplyInstruction], knowledge: Knowledge) -> List[str]:
    """Official channels these replies hand the user to, as ``"<channel key or bank>:<topic>"``.

    A channel counts when a reply's text quotes it (a ``{placeholder}`` naming a channel in
    data/knowledge/channels.yml) or names a bank's number; recorded in the ``referrals`` slot so that
    reporting can count referrals per channel.
    """
    channel_keys = {channel.key for channel in knowledge.channels}
    found: List[str] = []
    for reply in replies:
        keys = texts.placeholders(reply.response)
        if "bank_numbers" in keys:
            keys.append(reply.variables.get("bank_name", ""))
        for key in keys:
            entry = f"{key}:{topic}"
            if (key in channel_keys or key == reply.variables.get("bank_name")) and entry not in found:
                found.append(entry)
    return found


def assess_risk(topic: str, state: ConversationState, engine: RiskEngine) -> RiskAssessment:
    """The risk engine's view of the latest message, given the conversation's risk slots."""
    return engine.assess(state.latest_message, state.intent or topic, state.red_flags, state.risk_level,
                         state.user_segment)


def plan_guidance(topic: str, state: ConversationState, knowledge: Knowledge,
                  engine: Optional[RiskEngine] = None, on: Optional[dt.date] = None) -> GuidancePlan:
    """The replies answering ``topic`` in ``state``.

    Args: ``topic`` a core intent name (a key of TOPIC_RESPONSES); ``state`` the conversation so far;
    ``knowledge`` the validated knowledge files; ``engine`` the risk engine (without one, no red flags or
    segment shape the answer); ``on`` the day the facts are stated on (default today in China: a fact past
    its ``valid_until`` says it has ended, and a response quoting a withdrawn fact is left out).
    A message asking a sub-topic of the topic (bot/subtopics.py, data/subtopics/subtopics.yml) gets the sub-topic's
    answer instead of the topic's generic one, capped at MAX_SUBTOPIC_BUBBLES messages.
    Returns: a GuidancePlan whose replies all carry the knowledge template values, and whose slots hold the
    resolved bank, the updated risk slots (``risk_level``, ``red_flags``, ``user_segment``) and, when one was
    answered, ``subtopic`` (its id).
    Raises: KeyError for an unknown topic.
    """
    facts = knowledge.template_values(on)
    institution = identify_institution(state.bank, state.latest_message, knowledge)
    risk = assess_risk(topic, state, engine) if engine is not None else None
    subtopic = None if topic == ASK_HARDSHIP_PLAN and state.hardship_case_complete else subtopics.match(
        state.latest_message, topic, risk.new_flags if risk is not None else ())
    replies: List[ReplyInstruction] = []
    for response in _shape(topic, state, risk, subtopic):
        if response in (_BANK_LINE, subtopics.BANK_NUMBER):
            if institution is not None:
                line = bank_line(institution, knowledge)
                if line not in replies:
                    replies.append(line)
            elif response == subtopics.BANK_NUMBER:
                replies.append(ReplyInstruction(subtopics.UNKNOWN_BANK_RESPONSE, dict(facts)))
            continue
        replies.append(ReplyInstruction(response, dict(facts)))
    replies = drop_withdrawn(replies, knowledge, on)
    if subtopic is not None:
        replies = replies[:MAX_SUBTOPIC_BUBBLES]
    slots: Dict[str, Union[str, List[str], None]] = {}
    if subtopic is not None:
        slots["subtopic"] = subtopic.id  # the last sub-topic answered (reporting; no influence on dialogue)
    referrals = referrals_for(topic, replies, knowledge)
    if referrals:
        slots["referrals"] = [*state.referrals, *(r for r in referrals if r not in state.referrals)]
    if institution is not None:
        slots["bank"] = institution.name
    if risk is not None:
        slots.update(risk_level=risk.level, red_flags=list(risk.red_flags), user_segment=risk.segment)
    return GuidancePlan(replies=replies, slots=slots, risk=risk)


def _shape(topic: str, state: ConversationState, risk: Optional[RiskAssessment],
           subtopic: Optional[subtopics.Subtopic] = None) -> List[str]:
    """The topic's responses (or the sub-topic's, when the message asks one), then one per red flag mentioned
    now, then the segment message, then the bank."""
    base = list(subtopic.responses) if subtopic is not None else list(_responses_for(topic, state))
    if risk is None:
        return base
    bank_at_end = base and base[-1] == _BANK_LINE
    tail = [base.pop()] if bank_at_end else []
    covered = TOPIC_COVERS_FLAGS.get(topic, frozenset()) | frozenset(subtopic.covers_flags if subtopic else ())
    extra = [FLAG_RESPONSES[f] for f in risk.new_flags if f in FLAG_RESPONSES and f not in covered]
    if topic == AGENCY_VICTIM and subtopic is None and not any(r in extra for r in VICTIM_CHECKLIST):
        extra = [*VICTIM_CHECKLIST, *extra]
    if all(r in extra for r in VICTIM_CHECKLIST):  # both acts: one bubble with both checklists (short turns)
        extra = [VICTIM_CHECKLIST_BOTH if r == VICTIM_CHECKLIST[0] else r for r in extra
                 if r != VICTIM_CHECKLIST[1]]
    segment_message = _segment_message(risk)
    if subtopic is not None and risk.segment != "victim":
        segment_message = None  # the sub-topic's answer is the turn; a victim's reminder still comes
    if segment_message and topic not in _NO_SEGMENT_MESSAGE_TOPICS and _segment_is_news(risk, state):
        extra.append(segment_message)
    # the official-channel line closes the answer, after the warnings
    closing = [r for r in base if r == "utter_official_channel_card_issuer"]
    body = [r for r in base if r not in closing]
    shaped: List[str] = []
    for response in [*body, *extra, *tail, *closing]:
        if response not in shaped:
            shaped.append(response)
    return shaped


def _segment_message(risk: RiskAssessment) -> Optional[str]:
    """The segment's message; for a victim, the reminder naming only the acts they reported."""
    if risk.segment == "victim":
        return VICTIM_REMINDERS.get(frozenset(VICTIM_FLAGS & set(risk.red_flags)), SEGMENT_RESPONSES["victim"])
    return SEGMENT_RESPONSES.get(risk.segment or "")


def _segment_is_news(risk: RiskAssessment, state: ConversationState) -> bool:
    """Whether to send the segment message now.

    Victims get the reminder on later answers (what they revealed earlier changes the answer); misled and
    fuzzy users get theirs when this message showed the segment: it is new, or the message holds fresh
    evidence of it (bot.risk.SEGMENT_EVIDENCE), not merely some other flag.
    """
    if risk.segment == "victim":
        revealed_earlier = state.user_segment == "victim" or bool(VICTIM_FLAGS & set(state.red_flags))
        return revealed_earlier and not (VICTIM_FLAGS & set(risk.new_flags))
    evidence = SEGMENT_EVIDENCE.get(risk.segment or "", frozenset())
    return risk.segment != state.user_segment or bool(evidence & set(risk.new_flags))


def distress_reading(text: str) -> CrisisLevel:
    """How to answer a message the NLU called ``express_distress``.

    ``STRESS`` (care and the lawful route, no hand-over) when the crisis lexicon reads stress, or the message
    states a hardship reason ("生意赔了，钱都花光了"), and it holds no danger and no word of despair (bot.crisis:
    "活", "最后", "撑不" ...); ``DANGER`` (care, the psychological assistance hotline and 110/120, a person:
    shared/DOMAIN.md §4) otherwise, including every message the lexicon cannot place: a missed danger is the
    worst failure, a false alarm costs one caring message.
    """
    level = crisis_level(text)
    if level is CrisisLevel.DANGER or holds_despair(text):
        return CrisisLevel.DANGER
    if level is CrisisLevel.STRESS or states_hardship(text):
        return CrisisLevel.STRESS
    return CrisisLevel.DANGER


def handoff_follows(topic: str, text: Optional[str]) -> bool:
    """Whether the rules hand the turn to ``action_handoff`` after answering ``topic`` (data/dialogue/handoff.yml):
    a victim always, distress when it reads as danger (for stress the action skips the hand-over)."""
    if topic == AGENCY_VICTIM:
        return True
    return topic == EXPRESS_DISTRESS and distress_reading(text or "") is CrisisLevel.DANGER


def _responses_for(topic: str, state: ConversationState) -> Tuple[str, ...]:
    responses = TOPIC_RESPONSES[topic]
    if topic == EXPRESS_DISTRESS and distress_reading(state.latest_message) is CrisisLevel.STRESS:
        responses = ("utter_support_stress",)
    if topic == ASK_HARDSHIP_PLAN and state.hardship_case_complete:
        responses = ("utter_hardship_plan_again",)
    return responses
