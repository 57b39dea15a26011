"""End to end over REST: risk signals across turns and the hardship-plan form."""
from __future__ import annotations

import uuid

import pytest

from tests.support.servers import joined_text, rest_say

pytestmark = pytest.mark.e2e


def _sender(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_risk_signal_inside_a_collection_complaint_gets_both_answers(servers):
    text = joined_text(rest_say(servers, _sender("mixed"), "催收天天骂我，有人说交两千能帮我停息挂账"))
    assert "保留证据" in text and "12378" in text  # the complaint route
    assert "收费中介" in text or "服务费" in text  # the warning about the seller


def test_false_promises_are_answered_one_by_one(servers):
    message = "有个协商公司说不成功不收费，包上岸，让我找他们办停息挂账"
    text = joined_text(rest_say(servers, _sender("promise"), message))
    assert "不成功不收费" in text and "删不掉" in text


def test_victim_is_told_to_stop_the_loss_and_report(servers):
    message = "我交了五千块服务费给协商公司，还把身份证和验证码给了他们，现在联系不上"
    text = joined_text(rest_say(servers, _sender("victim"), message))
    assert "110" in text and "96110" in text and "修改" in text and "密码" in text


def test_a_red_flag_from_an_earlier_turn_changes_a_later_answer(servers):
    sender = _sender("memory")
    rest_say(servers, sender, "中介收了我三千服务费，让我先别还了")
    later = joined_text(rest_say(servers, sender, "逾期记录多久能消掉"))
    assert "您之前提到已经付了钱" in later  # only what they said: they paid (issue 19)


def test_misled_user_hears_the_cases_and_the_criminal_liability(servers):
    text = joined_text(rest_say(servers, _sender("misled"), "哪里能找到反催收团队，帮我对付催收"))
    assert "违法" in text and "1500" in text  # the 2025 campaign figures from data/knowledge/cases.yml


def _answers(servers, sender, messages):
    return [rest_say(servers, sender, message) for message in messages]


def test_hardship_form_from_question_to_plan(servers):
    sender = _sender("form")
    replies = _answers(servers, sender,
                       ["信用卡还不上了想跟银行协商", "招商银行", "失业了", "每个月两千", "已经逾期了"])
    first = joined_text(replies[0])
    assert "个性化分期还款" in first and "免费" in first
    assert "哪家银行" in first
    summary = joined_text(replies[-1])
    assert "核对" in summary and "招商银行" in summary and "2000" in summary and "已经逾期" in summary
    assert "【您的协商方案】" not in summary  # the plan waits for the confirmation
    buttons = [b["title"] for m in replies[-1] for b in m.get("buttons", [])]
    assert "都对，给我方案" in buttons and "改每月金额" in buttons
    # change one answer: only that question again, then the summary again with the others kept
    asked = joined_text(rest_say(servers, sender, "改每月金额"))
    assert "每个月大概能拿出多少钱" in asked and "哪家银行" not in asked
    again = joined_text(rest_say(servers, sender, "一千五"))
    assert "核对" in again and "1500" in again and "招商银行" in again and "失业" in again
    plan = rest_say(servers, sender, "都对，给我方案")
    text = joined_text(plan)
    assert "【您的协商方案】" in text and "招商银行" in text and "报出" not in text
    cards = [m["custom"] for m in plan if m.get("custom", {}).get("type") == "channel_card"]
    assert cards and cards[0]["channels"][0]["tel"] == "tel:95555"
    assert len(plan) <= 3  # a short turn (bot.details): the rest is behind the plan's buttons
    buttons = {b["title"]: b["payload"] for m in plan for b in m.get("buttons", [])}
    details = {title: joined_text(rest_say(servers, sender, buttons[title]))
               for title in ("怎么跟银行说", "要准备哪些材料", "银行不同意怎么办", "接下来会怎样", "我该打哪个电话")}
    assert "离职证明" in details["要准备哪些材料"]  # for the reason given: 失业
    assert "12378" in details["银行不同意怎么办"]
    assert "您已经逾期" in details["接下来会怎样"]
    assert "95555" in details["我该打哪个电话"] and "尚未经银行官网核实" in details["我该打哪个电话"]
    assert "每月能还1500元" in details["怎么跟银行说"], "the plan's script uses the monthly amount the user gave"
    assert "报出" not in details["怎么跟银行说"]


def test_side_question_during_the_form_is_answered_and_the_form_resumes(servers):
    sender = _sender("side")
    rest_say(servers, sender, "想跟银行协商分期")
    reply = joined_text(rest_say(servers, sender, "征信上的逾期记录保存几年"))
    assert "5年" in reply
    assert "哪家银行" in reply  # the form asks its question again


def test_stopping_the_form_clears_it_and_later_turns_are_normal(servers):
    sender = _sender("stop")
    rest_say(servers, sender, "信用卡还不上了想跟银行协商")
    assert "清掉了" in joined_text(rest_say(servers, sender, "算了"))
    assert "12378" in joined_text(rest_say(servers, sender, "银行乱收费去哪里投诉"))


def test_unknown_bank_and_a_negative_amount(servers):
    sender = _sender("odd")
    rest_say(servers, sender, "信用卡还不上了想跟银行协商")
    assert "原因" in joined_text(rest_say(servers, sender, "宇宙第一银行"))
    rest_say(servers, sender, "生病住院了")
    assert "没看懂" in joined_text(rest_say(servers, sender, "每个月-500块"))
    rest_say(servers, sender, "一千")
    assert "还没有逾期" in joined_text(rest_say(servers, sender, "还没有逾期"))  # the summary
    answer = rest_say(servers, sender, "对")
    plan = joined_text(answer)
    assert "发卡银行" in plan and "宇宙" not in plan
    buttons = {b["title"]: b["payload"] for m in answer for b in m.get("buttons", [])}
    assert "每月能还1000元" in joined_text(rest_say(servers, sender, buttons["怎么跟银行说"]))
