"""The benchmark's figures are rendered from bench.json, never typed: a hand-made JSON, and the committed one."""
from __future__ import annotations

import copy
import json

import pytest

from bot import PROJECT_ROOT
from bot.bench.report import comparison_rows, console_table, goal_rows, render_readme, write_chart

PERF = PROJECT_ROOT / "reports" / "perf"


def _level(clients, ok, errors, per_s, p50, p95, p99, elapsed=20.0, flagged=None):
    return {"clients": clients, "ok": ok, "errors": errors, "flagged": flagged, "elapsed_s": elapsed, "per_s": per_s,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "error_examples": []}


RESULT = {
    "measured": "2026-12-01T10:00:00+00:00", "commit": "abc1234", "cpu_count": 2,
    "load_average_before": [0.4, 0.9, 1.2],
    "duration_s": 20.0, "clients": [1, 8, 32], "parse_clients": 8, "senders_per_client": 5,
    "message": "信用卡还不上了怎么办", "rasa_version": "3.6.21", "python": "3.11.7",
    "servers": {
        "stock": {
            "label": "stock Rasa 3.6.21", "start_to_first_answer_s": 60.0, "first_reply": "Here is something",
            "rest": [_level(1, 274, 0, 13.7, 67.0, 80.0, 95.0), _level(8, 448, 0, 22.4, 350.0, 600.0, 786.0),
                     _level(32, 490, 0, 24.5, 1300.0, 2100.0, 2703.0)],
            "parse": _level(8, 954, 0, 47.7, 160.0, 250.0, 300.0),
            "rss_idle_mb": {"rasa_server": 990.0}, "rss_mb": {"rasa_server": 1020.0}, "rss_total_mb": 1020.0,
        },
        "project": {
            "label": "this project", "start_to_first_answer_s": 141.2, "first_reply": "可以自己直接和银行协商",
            "rest": [_level(1, 100, 0, 5.0, 200.0, 230.0, 260.0), _level(8, 116, 2, 5.8, 1300.0, 2000.0, 2335.0),
                     _level(32, 138, 1, 6.9, 4500.0, 6000.0, 7085.0, flagged=12)],
            "parse": _level(8, 728, 0, 36.4, 210.0, 300.0, 350.0),
            "rss_idle_mb": {"rasa_server": 1400.0, "action_server": 60.0, "agent_desk": 75.0},
            "rss_mb": {"rasa_server": 1470.0, "action_server": 61.0, "agent_desk": 76.0}, "rss_total_mb": 1607.0,
        },
    },
}


def _row(rows, label):
    return next(row for row in rows if row[0] == label)


def test_the_comparison_comes_from_the_figures():
    rows = comparison_rows(RESULT)
    assert _row(rows, "start to first answer (s)") == ["start to first answer (s)", "60.0", "141.2", "2.35×"]
    assert _row(rows, "REST msg/s, 1 client")[1:] == ["13.7", "5.0", "0.36×"]
    assert _row(rows, "REST p50 / p95 / p99 ms, 8 clients")[1:3] == ["350 / 600 / 786", "1,300 / 2,000 / 2,335"]
    assert _row(rows, "REST errors, 8 clients")[1:3] == ["0 of 448", "2 of 118"]
    assert _row(rows, "REST outage replies, 32 clients")[1:3] == ["—", "12 of 138"]
    assert not [row for row in rows if row[0] == "REST outage replies, 8 clients"]  # not checked at 8
    assert _row(rows, "NLU parse/s, 8 clients")[1:] == ["47.7", "36.4", "0.76×"]
    assert _row(rows, "RSS MB, action server")[1:3] == ["—", "61"]
    assert _row(rows, "RSS MB, all servers")[1:] == ["1,020", "1,607", "1.58×"]


def test_one_server_only_leaves_dashes():
    result = copy.deepcopy(RESULT)
    del result["servers"]["stock"]
    rows = comparison_rows(result)
    assert _row(rows, "REST msg/s, 32 clients")[1:] == ["—", "6.9", ""]
    assert [g[0] for g in goal_rows(result)] == ["32 clients: p99 at most 1,500 ms",
                                                 "start to first answer at most 30 s",
                                                 "all servers together at most 1,500 MB RSS"]
    assert "## stock" not in render_readme(result)


def test_goals_are_judged_from_the_figures():
    goals = {row[0]: row[1:] for row in goal_rows(RESULT)}
    assert goals["32 clients: at least 2× stock Rasa's msg/s"] == ["0.28×", "not met"]
    assert goals["1 client: p50 no higher than stock's"] == ["200 vs 67 ms", "not met"]
    faster = copy.deepcopy(RESULT)
    faster["servers"]["project"]["rest"][2].update(per_s=60.0, p99_ms=1200.0)
    faster["servers"]["project"]["start_to_first_answer_s"] = 25.0
    goals = {row[0]: row[1:] for row in goal_rows(faster)}
    assert goals["32 clients: at least 2× stock Rasa's msg/s"] == ["2.45×", "met"]
    assert goals["32 clients: p99 at most 1,500 ms"] == ["1,200 ms", "met"]
    assert goals["start to first answer at most 30 s"] == ["25.0 s", "met"]


def test_the_readme_shows_context_table_levels_and_chart():
    text = render_readme(RESULT)
    assert "Rendered by `python -m bot bench` from `bench.json`" in text
    assert "Measured 2026-12-01T10:00:00+00:00 at commit abc1234 on 2 CPUs, load average before 0.4: 20 s" in text
    assert "| REST msg/s, 32 clients | 24.5 | 6.9 | 0.28× |" in text
    assert "| REST, 32 | 138 | 1 | 12 | 20.0 | 6.9 | 4,500 | 6,000 | 7,085 |" in text
    assert "| NLU parse, 8 | 954 | 0 | — | 20.0 | 47.7 | 160 | 250 | 300 |" in text
    assert "| agent desk | 75 | 76 |" in text
    assert "![msg/s and p99 latency per client count](bench.png)" in text
    assert text.endswith("\n")


def test_the_console_table_is_aligned():
    lines = console_table(RESULT).splitlines()
    assert lines[0].startswith("Measured 2026-12-01")
    header, rule, *rows = lines[2:]
    assert header.split()[0] == "figure" and set(rule.replace(" ", "")) == {"-"}
    assert all(len(row) <= len(rule) for row in rows)
    assert any(row.startswith("REST msg/s, 32 clients") and row.endswith("0.28×") for row in rows)


def test_the_chart_is_a_png(tmp_path):
    path = write_chart(RESULT, tmp_path / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one = copy.deepcopy(RESULT)
    del one["servers"]["project"]
    assert write_chart(one, tmp_path / "one.png").stat().st_size > 1000


def test_a_file_missing_a_shown_field_is_refused():
    broken = copy.deepcopy(RESULT)
    del broken["servers"]["stock"]["label"]
    with pytest.raises(KeyError):
        render_readme(broken)


def test_the_committed_report_is_the_rendering_of_the_committed_figures():
    data = json.loads((PERF / "bench.json").read_text(encoding="utf-8"))
    assert (PERF / "README.md").read_text(encoding="utf-8") == render_readme(data), \
        "reports/perf/README.md is stale: run `python -m bot bench --report-only`"
    assert (PERF / "bench.png").exists()
    assert set(data["servers"]) == {"stock", "project"} and data["clients"] == [1, 8, 32]
