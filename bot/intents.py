"""The one vocabulary of intents, and which action answers which topic.

The intents themselves are declared in ``domain/`` (Rasa needs them there) and labelled by the rules in
``docs/intent-guide.md``; every Python module that names an intent takes it from here, and
``tests/unit/test_domain_consistency.py`` checks that these tuples and the domain agree, as do the risk
intents named in ``config.yml``.

* *core* intents are what the assistant exists for: a question about debt, a seller, a record or a channel;
* *risk* intents (a subset) are the ones whose miss is the worst failure (docs/nlu-evaluation.md): a
  request for a grey-industry service, a victim of one, an evasion plan, a person in despair;
* *chit-chat* intents are answered by plain responses through rules;
* *form* intents occur only inside the hardship-plan form (an answer, or a wish to stop).
"""
from __future__ import annotations

from typing import Dict, Tuple

SEEK_DEBT_AGENCY = "seek_debt_agency"
SEEK_CREDIT_REPAIR = "seek_credit_repair"
AGENCY_VICTIM = "agency_victim"
ASK_EVADE_DEBT = "ask_evade_debt"
ASK_LEGAL_RISK = "ask_legal_risk"
ASK_HARDSHIP_PLAN = "ask_hardship_plan"
REPORT_COLLECTION_ABUSE = "report_collection_abuse"
ASK_CREDIT_RECORD = "ask_credit_record"
ASK_COMPLAINT_CHANNEL = "ask_complaint_channel"
EXPRESS_DISTRESS = "express_distress"
REQUEST_HUMAN = "request_human"
OUT_OF_SCOPE = "out_of_scope"
NLU_FALLBACK = "nlu_fallback"
"""Predicted by the fallback classifier when the NLU is unsure (bot.nlu.risk_fallback)."""

RISK_INTENTS: Tuple[str, ...] = (SEEK_DEBT_AGENCY, SEEK_CREDIT_REPAIR, AGENCY_VICTIM, ASK_EVADE_DEBT,
                                 EXPRESS_DISTRESS)
"""Intents whose miss is the worst failure: weighted up and exempt from the fallback in config.yml, gated one
by one in the held-out evaluation."""

CORE_INTENTS: Tuple[str, ...] = (SEEK_DEBT_AGENCY, SEEK_CREDIT_REPAIR, AGENCY_VICTIM, ASK_EVADE_DEBT, ASK_LEGAL_RISK,
                                 ASK_HARDSHIP_PLAN, REPORT_COLLECTION_ABUSE, ASK_CREDIT_RECORD, ASK_COMPLAINT_CHANNEL,
                                 EXPRESS_DISTRESS, REQUEST_HUMAN)
"""The intents the assistant exists for, in the order of domain/core.yml."""

CHITCHAT_INTENTS: Tuple[str, ...] = ("greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", OUT_OF_SCOPE)
"""Conversation management, answered by responses through rules."""

FORM_INTENTS: Tuple[str, ...] = ("inform", "stop")
"""Only inside hardship_plan_form: an answer to its question, or the wish to stop it."""

LEAD_INTENTS: Tuple[str, ...] = ("EXTERNAL_lead_candidate", "lead_consent_yes", "lead_consent_no",
                                 "lead_consent_expired")
"""Only from the Rasa server and the consent buttons (domain/leads.yml, bot.leads.consent): no NLU examples."""

DETAIL_INTENTS: Tuple[str, ...] = ("ask_detail",)
"""A quick-reply button asking for a detail a turn kept short (bot.details); sent as a payload, never typed."""

ALL_INTENTS: Tuple[str, ...] = CORE_INTENTS + CHITCHAT_INTENTS + FORM_INTENTS + LEAD_INTENTS + DETAIL_INTENTS
"""Every intent of the domain."""

ACTION_FOR_TOPIC: Dict[str, str] = {
    SEEK_DEBT_AGENCY: "action_warn_debt_agency",
    SEEK_CREDIT_REPAIR: "action_warn_credit_repair",
    AGENCY_VICTIM: "action_support_agency_victim",
    ASK_EVADE_DEBT: "action_explain_evasion_risk",
    ASK_LEGAL_RISK: "action_explain_legal_risk",
    ASK_HARDSHIP_PLAN: "action_guide_hardship_plan",
    REPORT_COLLECTION_ABUSE: "action_guide_collection_complaint",
    ASK_CREDIT_RECORD: "action_answer_credit_record",
    ASK_COMPLAINT_CHANNEL: "action_list_complaint_channels",
    EXPRESS_DISTRESS: "action_support_distress",
}
"""Topic (a core intent) -> the custom action answering it (the same pairs as the rules in data/dialogue/).
``request_human`` is answered by HANDOFF_ACTION instead."""

HANDOFF_ACTION = "action_handoff"
"""Hands the conversation to a human agent (actions/handoff_actions.py)."""

CLARIFY_ACTION = "action_clarify_or_answer_risk"
"""Answers ``nlu_fallback`` and ``out_of_scope``: the red flags in the message, else a clarifying question."""
