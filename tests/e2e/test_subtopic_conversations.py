"""End to end over REST: a question within an intent gets the sub-topic's answer (bot/subtopics.py), from the
real servers and the trained model, for two phrasings per sub-topic that are in neither the training data nor
the unit tests' lists."""
from __future__ import annotations

import uuid

import pytest
from rasa.shared.nlu.training_data.loading import load_data

from bot import PROJECT_ROOT, subtopics
from tests.support.servers import rest_say

pytestmark = pytest.mark.e2e

FIRST_BUBBLE_MAX = 120
"""Issue 19: the first message is the direct answer, at most about 120 characters."""

# sub-topic -> (two phrasings, a phrase of its answer that the generic answers do not hold)
PHRASINGS = {
    "court_summons": (["昨天收到法院传票说银行告我了，怎么办", "银行真的把我起诉了，开庭前我能做点什么"],
                      "民事案件"),
    "enforcement_effects": (["欠信用卡不还会不会成老赖，影响孩子考大学", "被列为失信以后还能坐飞机出差吗"],
                            "没有可核实的资料"),
    "bank_number": (["请问农业银行的客服电话是多少", "交通银行热线是多少"], "银行卡背面"),
    "verify_caller": (["有人打电话说是中国银行信用卡中心的，我怎么知道是不是真的",
                       "自称浦发银行的客服加我微信，是真的吗"], "先挂断"),
    "one_time_credit_repair": (["一次性信用修复怎么申请", "听说逾期记录不再展示了，我的也算吗"],
                               "一次性信用修复是人民银行公告"),
    "fee_refund": (["给了代理维权公司五千块，现在想退款怎么办", "停息挂账中介不退钱，还能追回吗"], "能不能要回来"),
    "several_debts": (["我有三张信用卡两个网贷，每个月都还不上", "欠了十几个平台的钱，先还哪家比较好"], "一家一家"),
    "new_policy_rumour": (["网上说今年有停息挂账新政策，所有人都能办", "朋友说国家出台了政策信用卡可以停息"],
                          "常用的话术"),
    "art70_terms": (["跟银行谈了个性化分期，那利息怎么算", "协商分期以后罚息还要交吗"], "是否继续收取利息和费用"),
}


def _normalised(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def test_every_subtopic_has_two_phrasings_that_are_not_training_data():
    assert set(PHRASINGS) == {s.id for s in subtopics.default_subtopics()}
    training = {_normalised(m.get("text")) for m in load_data(str(PROJECT_ROOT / "data" / "nlu")).intent_examples}
    for texts, _marker in PHRASINGS.values():
        assert len(texts) == 2 and not {_normalised(t) for t in texts} & training, texts


@pytest.mark.parametrize("subtopic, text", [(s, t) for s, (texts, _m) in PHRASINGS.items() for t in texts])
def test_the_question_asked_gets_its_answer_first(servers, subtopic, text):
    replies = rest_say(servers, f"sub-{subtopic}-{uuid.uuid4().hex[:8]}", text)
    texts = [m["text"] for m in replies if m.get("text")]
    marker = PHRASINGS[subtopic][1]
    assert texts, replies
    assert marker in "".join(texts[:2]), texts  # the sub-topic's answer opens the turn
    assert len(texts[0]) <= FIRST_BUBBLE_MAX, texts[0]
