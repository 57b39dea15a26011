"""The hardship-plan form: reading the user's answers, and the plan handed over at the end.

Facts: 个性化分期还款 under 《商业银行信用卡业务监督管理办法》 Art. 70 (up to 5 years; the bank MAY agree;
no new cards until repaid; not forgiveness) applies to credit cards; online and consumer loans are negotiated
through the lender's official app or hotline, with no Art. 70 (shared/DOMAIN.md §3). All of that text lives in
``domain/hardship.yml`` and ``data/knowledge/``; this module decides what to ask, what to accept and which
responses make up the plan.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from bot.crisis import reads_as_danger
from bot.directory import bank_channel_card, deploying_institution, is_deploying, resolve_institution
from bot.intents import AGENCY_VICTIM, EXPRESS_DISTRESS, REQUEST_HUMAN, SEEK_CREDIT_REPAIR, SEEK_DEBT_AGENCY
from bot.knowledge import Institution, Knowledge
from bot.quantities import find_quantities, parse_amount_yuan
from bot.replies import ReplyInstruction, drop_withdrawn, identify_institution, plan_bank_line
from bot.text_normalisation import compact

OTHER = "其他"
"""Value for a lender not in the directory, or a reason outside the listed ones."""

UNSTATED = "未说明"
"""Value for an answer the user preferred not to give, or one skipped after a failed re-ask."""

DEBT_TYPES = ("信用卡", "网贷", "消费贷", "房贷", "车贷")
"""Debt types the form accepts (the ``debt_type`` entity's canonical values)."""

HARDSHIP_REASONS = ("失业", "疾病", "收入下降", OTHER)
"""Reasons the form accepts."""

FORM_NAME = "hardship_plan_form"
"""The form's name in domain/hardship.yml."""

FORM_SLOTS = ("bank", "debt_type", "hardship_reason", "monthly_repayment_capacity", "already_overdue")
"""The required slots of hardship_plan_form, in the order it asks (domain/hardship.yml)."""

FORM_ONLY_SLOTS = ("hardship_reason", "monthly_repayment_capacity", "already_overdue")
"""Slots only the form fills (bank and debt_type are also read from any message); cleared when it stops."""

MAX_MONTHLY_CAPACITY_YUAN = 1_000_000
"""Largest plausible monthly repayment capacity; larger answers are treated as typos and re-asked."""

MAX_REASKS = 1
"""An invalid answer is re-asked this many times; after that the question is skipped."""

_DECLINE = ("不想说", "不方便说", "不方便", "不说", "保密", "跳过", "不知道", "不清楚", "说不好", "不确定")
_REASON_WORDS = {
    "失业": ("失业", "没工作", "没有工作", "工作丢", "丢了工作", "工作没了", "找工作", "找不到工作", "被裁",
             "裁员", "被优化", "优化了", "下岗", "辞退", "开除", "离职", "辞职", "辞了工作", "倒闭", "破产",
             "关门", "待业", "没活干", "没活儿", "停工", "停产", "放长假", "隔离", "干不了", "没法干", "没法再干",
             "没找到", "不让回去", "解散", "带娃", "没法上班"),
    "疾病": ("疾病", "生病", "病", "住院", "手术", "癌", "肿瘤", "治疗", "看病", "医药费", "医疗费", "化疗",
             "受伤", "摔伤", "摔断", "工伤", "出了问题", "残疾", "瘫痪", "icu", "康复", "身体不好", "出血", "车祸",
             "意外"),
    "收入下降": ("收入", "工资", "降薪", "减薪", "底薪", "提成", "生意", "亏", "赔", "订单", "单子", "活少",
                 "不景气", "挣不到", "赚不到", "挣不了", "压价", "没钱", "拖欠", "欠薪", "跑路", "收不回", "拖款",
                 "垫", "租金", "房租", "周转", "额度", "暴雷", "血本无归", "投资", "炒币", "炒股", "创业", "黄了",
                 "不固定", "不稳定", "零工", "开不下去", "做不下去", "干不下去", "网店", "压货", "压了一堆货",
                 "卖不出去", "加盟", "货款", "没开单", "奖金", "没回本", "查封", "爆仓", "地震", "台风", "干旱",
                 "颗粒无收", "鸡瘟", "猪瘟", "钱不够", "不够花", "输了", "一个人挣钱", "一个在上班", "经营失败",
                 "创业失败"),
}
_OTHER_WORDS = ("其他", "其它", "别的", "离婚", "前夫", "前妻", "家里", "孩子", "老人", "父母", "爸", "妈", "老公",
                "老婆", "担保", "骗", "套路贷", "高利贷", "利滚利", "疫情", "彩礼", "结婚", "盖房", "赌", "打赏",
                "乱花", "超前消费", "以贷养贷", "借新还旧", "拆东墙", "开销", "花销", "花光", "赔偿", "冻结", "进去了",
                "装修", "首付", "坑", "砍头息", "帮他借", "帮她借", "不还了", "分手", "越借越多", "套网贷", "借钱还",
                "美容贷", "上有老下有小")
_DEBT_TYPE_WORDS = {
    "信用卡": ("信用卡", "xyk", "卡债", "信用卡欠款"),
    "网贷": ("网贷", "网络贷款", "借呗", "花呗", "微粒贷", "白条", "金条", "借条", "平台"),
    "消费贷": ("消费贷", "消费贷款", "消费金融"),
    "房贷": ("房贷", "按揭", "房屋贷款"),
    "车贷": ("车贷", "汽车贷款", "买车"),
}
_YES = ("是", "对", "已经", "逾期了", "有逾期", "嗯", "yes")
_NO = ("没有", "没逾期", "还没", "未逾期", "不是", "no")


def declined(text: Optional[str]) -> bool:
    """True if the answer means "I'd rather not say" (不想说, 保密, 不知道, ...)."""
    normalised = compact(text or "")
    return any(word in normalised for word in _DECLINE)


def read_lender(value: Optional[str], text: str, knowledge: Knowledge) -> Optional[str]:
    """Canonical institution name for the answer, ``OTHER`` for an unknown or declined lender, None if empty.

    Tries the extracted ``bank`` value, then any institution named in the text (including the deploying
    bank's 本行/你们银行). An unknown name never gets a guessed institution.
    """
    institution = identify_institution(value, text, knowledge)
    if institution is not None:
        return institution.name
    if (value or text or "").strip():
        return OTHER
    return None


def read_debt_type(value: Optional[str], text: str) -> Optional[str]:
    """One of DEBT_TYPES, or None if the answer names none of them."""
    for candidate in (value, text):
        normalised = compact(candidate or "")
        if not normalised:
            continue
        for debt_type, words in _DEBT_TYPE_WORDS.items():
            if normalised == debt_type or any(word in normalised for word in words):
                return debt_type
    return None


def read_hardship_reason(text: Optional[str]) -> Optional[str]:
    """One of HARDSHIP_REASONS, ``UNSTATED`` if declined, or None if unreadable."""
    normalised = compact(text or "")
    if not normalised:
        return None
    if declined(normalised):
        return UNSTATED
    for reason, words in _REASON_WORDS.items():
        if any(word in normalised for word in words):
            return reason
    if any(word in normalised for word in _OTHER_WORDS):
        return OTHER
    return None


NEVER_AN_ANSWER = ("stop", "greet", "thank", "bot_challenge")
"""Intents whose message is never taken as the form's answer: a wish to stop, and chit-chat."""

RED_FLAG_INTENTS = (SEEK_DEBT_AGENCY, SEEK_CREDIT_REPAIR, AGENCY_VICTIM)
"""Intents whose message is the form's answer only when the risk engine finds no red flag in it: a seller's
pitch, a request for credit repair or a payment to a seller needs its warning first."""

_HUMAN_WORDS = ("人工", "客服", "真人", "转人", "找人")

_QUESTION_MARKERS = ("吗", "?", "怎么", "能不能", "可不可以", "可以不", "会不会", "是不是", "要不要", "咋办")


def answer_despite_intent(slot: Optional[str], text: str, intent: Optional[str],
                          red_flags: bool = False) -> Optional[str]:
    """The answer to the form's requested ``slot`` in ``text`` when the NLU's ``intent`` kept the form's own
    ``from_text`` mapping (domain/) from taking it, else None. Returns the text, which the slot's validator
    then reads.

    Everyday answers are often classified as despair ("生意赔了"), evasion ("公司倒闭了工资也没发") or a seller's
    victim ("公司裁员，我被裁了"); only a stated reason (``hardship_reason``) or amount
    (``monthly_repayment_capacity``) counts, never a message that reads as danger (it leaves the form for the
    care message, bot.crisis), never under NEVER_AN_ANSWER, never a question (except under
    ``express_distress``: "为什么我这么倒霉" is not one to answer), under RED_FLAG_INTENTS only when the risk
    engine found no red flag (``red_flags`` False), under ``request_human`` only when no human is asked for,
    and under ``express_distress`` only a job, illness, income or money reason (states_hardship).
    """
    if not text or intent in NEVER_AN_ANSWER or reads_as_danger(text):
        return None
    if (intent in RED_FLAG_INTENTS and red_flags) or (
            intent == REQUEST_HUMAN and any(word in compact(text) for word in _HUMAN_WORDS)):
        return None
    if intent != EXPRESS_DISTRESS and any(marker in compact(text) for marker in _QUESTION_MARKERS):
        return None
    if slot == "hardship_reason":
        if intent == EXPRESS_DISTRESS and not states_hardship(text):
            return None  # despair with family words only is answered as despair, not filed as a reason
        return text if read_hardship_reason(text) not in (None, UNSTATED) else None
    if slot == "monthly_repayment_capacity":
        value, _problem = read_monthly_capacity(text)
        return text if value not in (None, UNSTATED) else None
    return None


_MONEY_EVENTS = ("学费", "离婚", "彩礼", "开销", "花销", "花光", "利滚利", "担保", "被骗", "赌", "进去了", "装修",
                 "首付", "越借越多", "套网贷", "借钱还", "上有老下有小",
                 "丧事", "翻修", "盖房", "帮他还", "帮她还", "套路贷", "高利贷", "以贷养贷", "借新还旧", "拆东墙")


def states_hardship(text: Optional[str]) -> bool:
    """True when ``text`` names a job, illness or income reason, or a money event (school fees, a divorce, a
    debt taken on for someone): what decides, under a despair intent, that a message is a hardship reason and
    not danger. Family words alone do not count ("对不起妈妈" is no hardship reason)."""
    normalised = compact(text or "")
    return read_hardship_reason(text) in ("失业", "疾病", "收入下降") or any(w in normalised for w in _MONEY_EVENTS)


def read_monthly_capacity(text: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """``(value, problem)``: value is yuan as a string or ``UNSTATED``; problem names why it was refused.

    Refused (value None): negative amounts, zero, amounts above MAX_MONTHLY_CAPACITY_YUAN, and text without
    an amount. Problem is one of ``negative``, ``absurd``, ``not_a_number``.
    """
    raw = (text or "").strip()
    if not raw:
        return None, "not_a_number"
    if declined(raw):
        return UNSTATED, None
    if re.search(r"(^|[^\d])[-－负]\s*[\d零一二两三四五六七八九十百千万]", raw):
        return None, "negative"
    amounts = [q.value for q in find_quantities(raw) if q.entity == "amount"]
    if not amounts:
        value = parse_amount_yuan(compact(raw))
        amounts = [value] if value is not None else []
    if not amounts:
        return None, "not_a_number"
    if amounts[0] <= 0 or amounts[0] > MAX_MONTHLY_CAPACITY_YUAN:
        return None, "absurd"
    return str(amounts[0]), None


def read_already_overdue(value: Optional[str], text: str) -> Optional[str]:
    """``"yes"``, ``"no"``, ``UNSTATED`` (declined) or None (unreadable)."""
    if value in ("yes", "no"):
        return value
    normalised = compact(text or value or "")
    if declined(normalised):
        return UNSTATED
    if any(word in normalised for word in _NO):
        return "no"
    if any(word in normalised for word in _YES):
        return "yes"
    return None


REASK_RESPONSES = {slot: f"utter_hardship_reask_{slot}" for slot in FORM_SLOTS}
"""Slot -> the response re-asking it with a hint (domain/hardship.yml), after an answer that could not be read."""

SKIP_VALUES = {"bank": OTHER, "debt_type": UNSTATED, "hardship_reason": UNSTATED,
               "monthly_repayment_capacity": UNSTATED, "already_overdue": UNSTATED}
"""The value a slot takes when its question is skipped after a failed re-ask."""


@dataclass(frozen=True)
class HardshipCase:
    """The filled form: ``lender`` (canonical name or OTHER), ``debt_type`` (DEBT_TYPES or UNSTATED),
    ``reason`` (HARDSHIP_REASONS or UNSTATED), ``monthly_capacity`` (yuan string or UNSTATED),
    ``already_overdue`` ("yes", "no" or UNSTATED)."""

    lender: str
    debt_type: str
    reason: str
    monthly_capacity: str
    already_overdue: str


_DOCUMENTS = {"失业": "unemployment", "疾病": "illness", "收入下降": "income_drop"}
_CARD_LIKE = ("信用卡", UNSTATED)


@dataclass(frozen=True)
class HardshipPlan:
    """The plan: replies (domain responses and their variables), a channel card payload, and referrals
    (``"<channel>:hardship_plan"`` strings for the ``referrals`` slot)."""

    replies: List[ReplyInstruction]
    channel_card: Dict[str, Any]
    referrals: List[str]


def _lender_institution(case: HardshipCase, knowledge: Knowledge) -> Optional[Institution]:
    return resolve_institution(case.lender, knowledge) if case.lender != OTHER else None


def build_plan(case: HardshipCase, knowledge: Knowledge) -> HardshipPlan:
    """The plan for ``case`` (see the module docstring for the facts it relies on).

    The deploying bank (data/knowledge/deployment.yml), when configured, comes first and its in-app path is
    named. An unknown lender gets generic guidance and no number.
    """
    facts = knowledge.template_values()
    institution = _lender_institution(case, knowledge)
    deploying = deploying_institution(knowledge)
    app_path = knowledge.deployment.hardship_app_path if knowledge.deployment else None
    lender_name = institution.name if institution else ("发卡银行" if case.debt_type in _CARD_LIKE else "贷款机构")
    is_online = ((institution is not None and institution.kind == "online_lender")
                 or case.debt_type in ("网贷", "消费贷"))
    deploying_hint = f"在App里可以这样找：{app_path}。" if app_path else ""
    app_hint = deploying_hint if institution is None or is_deploying(institution, knowledge) else ""
    variables = {**facts, "lender_name": lender_name, "app_path_hint": app_hint}
    names: List[str] = []
    if is_online:
        names.append("utter_hardship_plan_online_lender")
    elif case.debt_type in ("房贷", "车贷"):
        names.append("utter_hardship_plan_secured_loan")
    else:
        names += ["utter_hardship_plan_card_issuer", "utter_hardship_plan_art70_terms"]
    replies = [ReplyInstruction(name, variables) for name in names]
    card_institutions = _card_institutions(institution, deploying)
    for inst in card_institutions:
        replies.append(plan_bank_line(inst, knowledge, deploying_hint if is_deploying(inst, knowledge) else ""))
    if case.reason in _DOCUMENTS:
        replies.append(ReplyInstruction("utter_hardship_plan_script", {**variables, "hardship_reason": case.reason}))
    else:
        replies.append(ReplyInstruction("utter_hardship_plan_script_generic", variables))
    replies.append(ReplyInstruction(f"utter_hardship_plan_documents_{_DOCUMENTS.get(case.reason, 'other')}", variables))
    replies.append(ReplyInstruction("utter_hardship_plan_expectations", variables))
    if case.already_overdue == "yes":
        replies.append(ReplyInstruction("utter_hardship_plan_overdue", variables))
    replies.append(ReplyInstruction("utter_hardship_plan_if_refused", variables))
    card = bank_channel_card(card_institutions, knowledge, reason="hardship_plan")
    referrals = [f"{inst.name}:hardship_plan" for inst in card_institutions] or [f"{lender_name}:hardship_plan"]
    referrals.append("nfra_hotline:hardship_plan_refused")
    return HardshipPlan(replies=drop_withdrawn(replies, knowledge), channel_card=card, referrals=referrals)


def _card_institutions(institution: Optional[Institution], deploying: Optional[Institution]) -> List[Institution]:
    ordered = [i for i in (deploying, institution) if i is not None]
    unique: List[Institution] = []
    for inst in ordered:
        if inst not in unique:
            unique.append(inst)
    return unique
