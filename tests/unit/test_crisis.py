"""The crisis lexicon (bot/crisis.py, data/crisis/signals.yml): danger, stress and ordinary hardship apart."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.crisis import CrisisLevel, crisis_level, load_crisis_lexicon, reads_as_danger

DANGER = ["我真的不想活了", "活着没什么意思了", "我想从楼上跳下去", "欠了这么多，还不如死了算了", "遗书都写好了",
          "我已经攒了一瓶安眠药", "我想一了百了", "真想和催收同归于尽", "我不想活下去了", "我活不下去了",
          "我真的不想活了。", "我真的不想活了！！！", "我眞的不想活了", "想 自 杀", "再逼我我就去死"]
STRESS = ["烦死了这个催收", "压力很大，每天都睡不着", "我快崩溃了", "我真的撑不下去了", "催收天天打电话，我很害怕",
          "我好焦虑"]
HARDSHIP = ["吓死我了，账单这么多", "生意赔了", "家里有人生病，钱都花光了", "公司倒闭了工资也没发", "被裁员了",
            "工资降了一半", "每个月最多还两千", "欠了招商银行五万", "死活不给我分期",
            "我想跳槽换个工作多挣点", "按时吃药看病花了不少钱"]


@pytest.mark.parametrize("text", DANGER)
def test_danger_reads_as_danger(text: str) -> None:
    assert crisis_level(text) is CrisisLevel.DANGER
    assert reads_as_danger(text)


@pytest.mark.parametrize("text", STRESS)
def test_stress_is_not_danger(text: str) -> None:
    assert crisis_level(text) is CrisisLevel.STRESS


@pytest.mark.parametrize("text", HARDSHIP)
def test_hardship_reasons_and_idioms_are_neither(text: str) -> None:
    assert crisis_level(text) is CrisisLevel.NONE


@pytest.mark.parametrize("value", [None, "", 42, ["不想活"]])
def test_non_text_is_none(value: object) -> None:
    assert crisis_level(value) is CrisisLevel.NONE


def test_a_broken_lexicon_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "signals.yml"
    bad.write_text("danger: {regex: ['(']}\nstress: {}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="signals.yml"):
        load_crisis_lexicon(bad)
