"""The conversation-growth measurement (bot.bench.growth): its figures and its turn loop, without a server."""
from __future__ import annotations

import json
from typing import Any, List

import pytest

from bot.bench.growth import GrowthError, run_growth, summarise_growth
from bot.bench.report import comparison_rows, goal_rows


def test_turn_10_is_the_median_of_turns_6_to_15_and_the_last_the_median_of_the_last_ten() -> None:
    latencies = [1000.0] * 5 + [100.0] * 10 + [500.0] * 20 + [150.0] * 10
    figures = summarise_growth(latencies, bucket=15)
    assert figures["turns"] == 45
    assert figures["early_ms"] == 100.0
    assert figures["late_ms"] == 150.0
    assert figures["ratio"] == 1.5
    assert figures["buckets"] == [100.0, 500.0, 150.0]


def test_too_few_turns_are_refused() -> None:
    with pytest.raises(ValueError):
        summarise_growth([100.0] * 24)


def test_every_turn_goes_to_the_same_sender_one_after_the_other() -> None:
    seen: List[Any] = []

    def post(url: str, body: bytes) -> Any:
        seen.append((url, json.loads(body)))
        return [{"text": "好的"}]

    figures = run_growth("http://127.0.0.1:1", "你好", 30, "bench-x", post=post)
    assert figures["turns"] == 30
    assert len(seen) == 30
    assert {url for url, _ in seen} == {"http://127.0.0.1:1/webhooks/rest/webhook"}
    assert {body["sender"] for _, body in seen} == {"bench-x"}


def test_an_empty_answer_stops_the_measurement() -> None:
    answers = iter([[{"text": "好的"}]] * 3 + [[]])
    with pytest.raises(GrowthError, match="turn 4"):
        run_growth("http://127.0.0.1:1", "你好", 30, "bench-x", post=lambda url, body: next(answers))


def test_the_report_shows_both_turns_and_judges_the_goal() -> None:
    growth = {"turns": 2000, "early_ms": 100.0, "late_ms": 180.0, "ratio": 1.8, "bucket": 100, "buckets": []}
    result = {"clients": [], "servers": {"project": {"growth": growth}}}
    rows = {row[0]: row for row in comparison_rows(result)}
    assert rows["one conversation: turn 2,000 ms"][2] == "180"
    assert rows["one conversation: turn 2,000 ÷ turn 10"][2] == "1.80×"
    goals = {row[0]: row for row in goal_rows(result)}
    assert goals["one conversation: turn 2,000 within 1.5× the latency of turn 10"][2] == "not met"
