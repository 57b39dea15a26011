"""End to end over REST: a hardship reason is not a crisis, danger in the form gets care first with the
answers kept, and stress gets care and the lawful route without a hand-over."""
from __future__ import annotations

import uuid

import pytest

from tests.support.servers import joined_text, rest_say

pytestmark = pytest.mark.e2e

REASON_QUESTION = "主要是什么原因"
CAPACITY_QUESTION = "每个月大概能拿出多少钱"
START = ["信用卡还不上了，想自己跟银行谈谈", "招商银行"]


def _sender(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("reason", [
    "做生意赔了不少钱",
    "我妈住院了，家里的钱全花在看病上了",
    "厂里倒闭了，三个月工资都没拿到",
    "公司效益不好，工资砍了一半",
    "去年被裁了，一直没找到活干",
    "开的小饭馆关门了，亏了十几万",
])
def test_an_everyday_reason_answers_the_form_and_it_goes_on_to_the_plan(servers, reason: str) -> None:
    sender = _sender("reason")
    asked = joined_text([m for text in START for m in rest_say(servers, sender, text)])
    assert REASON_QUESTION in asked
    after_reason = joined_text(rest_say(servers, sender, reason))
    assert CAPACITY_QUESTION in after_reason, after_reason
    assert "12356" not in after_reason
    rest_say(servers, sender, "两千左右")
    assert "核对" in joined_text(rest_say(servers, sender, "还没有逾期"))  # the summary before the plan
    plan = joined_text(rest_say(servers, sender, "都对，给我方案"))
    assert "【您的协商方案】" in plan and "招商银行" in plan


def test_danger_in_the_form_gets_care_first_and_the_answers_are_kept(servers) -> None:
    sender = _sender("danger-form")
    for text in START:
        rest_say(servers, sender, text)
    care = joined_text(rest_say(servers, sender, "欠了这么多，我真的不想活了"))
    assert "12356" in care and "110" in care and "120" in care
    again = joined_text(rest_say(servers, sender, START[0]))
    assert "哪家银行" not in again  # the bank given before the crisis answer is kept
    assert REASON_QUESTION in again


def test_stress_gets_care_and_the_lawful_route_without_a_hand_over(servers) -> None:
    text = joined_text(rest_say(servers, _sender("stress"), "欠款压得我喘不过气，天天失眠，快崩溃了"))
    assert "压力" in text and "分期" in text and "免费" in text
    assert "人工客服" not in text


def test_after_the_crisis_answer_every_reply_names_the_hotline(servers) -> None:
    sender = _sender("danger-then")
    first = joined_text(rest_say(servers, sender, "我真的不想活了"))
    assert "12356" in first and "110" in first
    for text in ["招商银行的信用卡", "谢谢你", "逾期了会上征信吗", "你好", "我还是想问问怎么跟银行协商"]:
        reply = joined_text(rest_say(servers, sender, text))
        assert "12356" in reply, (text, reply)
