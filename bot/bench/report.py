"""Render the benchmark's figures (the dict :func:`bot.bench.run.run_bench` returns, as in ``bench.json``):
the console table, ``reports/perf/README.md`` and the chart ``bench.png``. No figure is typed by hand:
``python -m bot bench`` writes all three, ``python -m bot bench --report-only`` renders them again from
``bench.json``, and ``tests/unit/test_bench_report.py`` fails when the committed README.md is not the rendering of
the committed JSON.

The JSON's shape: top-level ``measured``, ``commit``, ``cpu_count``, ``duration_s``, ``clients``, ``parse_clients``,
``senders_per_client``, ``message``, ``rasa_version``, ``python``, ``load_average_before`` and ``servers``, a dict
from ``stock`` and/or ``project`` to ``label``, ``start_to_first_answer_s``, ``first_reply``, ``rest`` (a list of
levels), ``parse`` (a level), ``rss_idle_mb`` and ``rss_mb`` (process name → MB) and ``rss_total_mb``; a level
has ``clients``, ``ok``, ``errors``, ``flagged`` (outage replies among ``ok``; None where not checked),
``elapsed_s``, ``per_s``, ``p50_ms``, ``p95_ms``, ``p99_ms``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

SERVER_NAMES = ("stock", "project")
"""Column order of the comparison."""

PROCESS_NAMES = {"rasa_server": "Rasa server", "action_server": "action server", "agent_desk": "agent desk"}
"""How the server processes are named in the tables."""

DASH = "—"
"""A figure that was not measured."""


def _rate(value: Optional[float]) -> str:
    return DASH if value is None else f"{value:,.1f}"


def _ms(value: Optional[float]) -> str:
    return DASH if value is None else f"{value:,.0f}"


def _times(value: Optional[float]) -> str:
    return DASH if value is None else f"{value:.2f}×"


def _level(server: Optional[Mapping[str, Any]], clients: int) -> Optional[Mapping[str, Any]]:
    if not server:
        return None
    return next((level for level in server.get("rest", []) if level["clients"] == clients), None)


def _ratio(project: Optional[float], stock: Optional[float]) -> str:
    if project is None or stock is None or stock == 0:
        return ""
    return f"{project / stock:.2f}×"


def _percentiles(level: Optional[Mapping[str, Any]]) -> str:
    if not level:
        return DASH
    return " / ".join(_ms(level.get(key)) for key in ("p50_ms", "p95_ms", "p99_ms"))


def _errors(level: Optional[Mapping[str, Any]]) -> str:
    if not level:
        return DASH
    return f"{level['errors']} of {level['ok'] + level['errors']:,}"


def _flagged(level: Optional[Mapping[str, Any]]) -> str:
    if not level or level.get("flagged") is None:
        return DASH
    return f"{level['flagged']} of {level['ok']:,}"


def comparison_rows(result: Mapping[str, Any]) -> List[List[str]]:
    """The side-by-side table as rows of ``[figure, stock, project, project ÷ stock]`` strings (``—`` where a
    server was not measured; the ratio only for rates, times and memory when both are there). Rates are
    per second, latencies in ms, memory in MB (10^6 bytes), after the load."""
    servers: Mapping[str, Any] = result.get("servers", {})
    stock, project = servers.get("stock"), servers.get("project")

    def value(server: Optional[Mapping[str, Any]], key: str) -> Optional[float]:
        return None if not server else server.get(key)

    rows: List[List[str]] = []
    start_s, start_p = value(stock, "start_to_first_answer_s"), value(project, "start_to_first_answer_s")
    rows.append(["start to first answer (s)", _rate(start_s), _rate(start_p), _ratio(start_p, start_s)])
    for clients in result.get("clients", []):
        ls, lp = _level(stock, clients), _level(project, clients)
        plural = "client" if clients == 1 else "clients"
        rate_s, rate_p = (ls or {}).get("per_s"), (lp or {}).get("per_s")
        rows.append([f"REST msg/s, {clients} {plural}", _rate(rate_s), _rate(rate_p), _ratio(rate_p, rate_s)])
        rows.append([f"REST p50 / p95 / p99 ms, {clients} {plural}", _percentiles(ls), _percentiles(lp), ""])
        rows.append([f"REST errors, {clients} {plural}", _errors(ls), _errors(lp), ""])
        if any(level and level.get("flagged") is not None for level in (ls, lp)):
            rows.append([f"REST outage replies, {clients} {plural}", _flagged(ls), _flagged(lp), ""])
    growth_s: Mapping[str, Any] = (stock or {}).get("growth") or {}
    growth_p: Mapping[str, Any] = (project or {}).get("growth") or {}
    if growth_s or growth_p:
        turns = max(g["turns"] for g in (growth_s, growth_p) if g)
        rows.append(["one conversation: turn 10 ms", _ms(growth_s.get("early_ms")),
                     _ms(growth_p.get("early_ms")), ""])
        rows.append([f"one conversation: turn {turns:,} ms", _ms(growth_s.get("late_ms")),
                     _ms(growth_p.get("late_ms")), ""])
        rows.append([f"one conversation: turn {turns:,} ÷ turn 10", _times(growth_s.get("ratio")),
                     _times(growth_p.get("ratio")), ""])
    parse_s = (stock or {}).get("parse") or None
    parse_p = (project or {}).get("parse") or None
    parse_clients = result.get("parse_clients", 8)
    rows.append([f"NLU parse/s, {parse_clients} clients", _rate((parse_s or {}).get("per_s")),
                 _rate((parse_p or {}).get("per_s")),
                 _ratio((parse_p or {}).get("per_s"), (parse_s or {}).get("per_s"))])
    rows.append([f"NLU p50 / p95 / p99 ms, {parse_clients} clients", _percentiles(parse_s), _percentiles(parse_p),
                 ""])
    rows.append([f"NLU errors, {parse_clients} clients", _errors(parse_s), _errors(parse_p), ""])
    processes = [name for name in PROCESS_NAMES
                 if any(name in (s or {}).get("rss_mb", {}) for s in (stock, project))]
    for name in processes:
        mb_s = (stock or {}).get("rss_mb", {}).get(name)
        mb_p = (project or {}).get("rss_mb", {}).get(name)
        rows.append([f"RSS MB, {PROCESS_NAMES[name]}", _ms(mb_s), _ms(mb_p), ""])
    total_s, total_p = value(stock, "rss_total_mb"), value(project, "rss_total_mb")
    rows.append(["RSS MB, all servers", _ms(total_s), _ms(total_p), _ratio(total_p, total_s)])
    return rows


HEADER = ["figure", "stock Rasa", "this project", "project ÷ stock"]
"""The comparison table's header."""


def console_table(result: Mapping[str, Any]) -> str:
    """The comparison (:func:`comparison_rows`) as a plain-text table with aligned columns, preceded by one
    line saying when, where and how long it was measured."""
    rows = [HEADER, *comparison_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [_context(result), ""]
    for number, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _context(result: Mapping[str, Any]) -> str:
    load = result.get("load_average_before")
    load_text = f", load average before {load[0]:g}" if load else ""
    return (f"Measured {result['measured']} at commit {result['commit']} on {result['cpu_count']} CPUs{load_text}: "
            f"{result['duration_s']:g} s per level, {result['senders_per_client']} senders per REST client, "
            f"message \"{result['message']}\", Rasa {result['rasa_version']}, Python {result['python']}.")


def goal_rows(result: Mapping[str, Any]) -> List[List[str]]:
    """The performance goals as rows of ``[goal, measured, "met" | "not met"]``, for those the run's figures can
    judge (both servers for the comparisons; 32 and 1 clients measured for the REST goals)."""
    servers: Mapping[str, Any] = result.get("servers", {})
    stock, project = servers.get("stock"), servers.get("project")
    rows: List[List[str]] = []
    if not project:
        return rows

    def verdict(ok: bool) -> str:
        return "met" if ok else "not met"

    top_s, top_p = _level(stock, 32), _level(project, 32)
    if top_p and top_s and top_s["per_s"]:
        ratio = top_p["per_s"] / top_s["per_s"]
        rows.append(["32 clients: at least 2× stock Rasa's msg/s", f"{ratio:.2f}×", verdict(ratio >= 2)])
    if top_p and top_p.get("p99_ms") is not None:
        rows.append(["32 clients: p99 at most 1,500 ms", f"{_ms(top_p['p99_ms'])} ms",
                     verdict(top_p["p99_ms"] <= 1500)])
    one_s, one_p = _level(stock, 1), _level(project, 1)
    if one_s and one_p and one_s.get("p50_ms") is not None and one_p.get("p50_ms") is not None:
        rows.append(["1 client: p50 no higher than stock's", f"{_ms(one_p['p50_ms'])} vs {_ms(one_s['p50_ms'])} ms",
                     verdict(one_p["p50_ms"] <= one_s["p50_ms"])])
    growth = project.get("growth")
    if growth and growth.get("ratio") is not None:
        rows.append([f"one conversation: turn {growth['turns']:,} within 1.5× the latency of turn 10",
                     f"{growth['ratio']:.2f}×", verdict(growth["ratio"] <= 1.5)])
    start = project.get("start_to_first_answer_s")
    if start is not None:
        rows.append(["start to first answer at most 30 s", f"{start:.1f} s", verdict(start <= 30)])
    total = project.get("rss_total_mb")
    if total is not None:
        rows.append(["all servers together at most 1,500 MB RSS", f"{_ms(total)} MB", verdict(total <= 1500)])
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows)]


def _level_rows(server: Mapping[str, Any]) -> List[List[str]]:
    levels = [(f"REST, {level['clients']}", level) for level in server.get("rest", [])]
    if server.get("parse"):
        levels.append((f"NLU parse, {server['parse']['clients']}", server["parse"]))
    return [[name, f"{level['ok']:,}", str(level["errors"]),
             DASH if level.get("flagged") is None else str(level["flagged"]), f"{level['elapsed_s']:.1f}",
             _rate(level["per_s"]),
             _ms(level.get("p50_ms")), _ms(level.get("p95_ms")), _ms(level.get("p99_ms"))]
            for name, level in levels]


def _shortened(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def render_readme(result: Mapping[str, Any]) -> str:
    """``reports/perf/README.md`` for ``result``: context, the comparison, the performance goals, each server's
    levels, memory before and after the load, and the chart. Raises KeyError if a field the report shows is
    missing (a file from an older benchmark)."""
    lines = [
        "# Performance figures",
        "",
        "Rendered by `python -m bot bench` from `bench.json` in this folder; do not edit by hand. What is measured "
        "and how to read it: [docs/performance.md](../../docs/performance.md).",
        "",
        _context(result),
        "",
        "## Side by side",
        "",
        *_table(HEADER, comparison_rows(result)),
        "",
        "Errors are requests that failed, answered a status other than 200, or (REST) answered no message; "
        "latencies are those of the successful requests. Outage replies (the project's turn supervisor answering "
        "for a turn that missed its deadline or failed) count as answered. RSS is after the load, summed over "
        "each server's process tree.",
    ]
    goals = goal_rows(result)
    if goals:
        lines += ["", "## Performance goals", "", *_table(["goal", "measured", ""], goals)]
    for name in SERVER_NAMES:
        server = result.get("servers", {}).get(name)
        if not server:
            continue
        lines += ["", f"## {server['label']}", "",
                  f"First answer after {server['start_to_first_answer_s']:.1f} s: "
                  f"“{_shortened(server['first_reply'])}”",
                  "",
                  *_table(["level, clients", "answered", "errors", "outage replies", "seconds", "per second",
                           "p50 ms", "p95 ms", "p99 ms"], _level_rows(server)),
                  "",
                  *_table(["process", "RSS MB after first answer", "RSS MB after the load"],
                          [[PROCESS_NAMES.get(proc, proc), _ms(server.get("rss_idle_mb", {}).get(proc)), _ms(mb)]
                           for proc, mb in server["rss_mb"].items()])]
    lines += ["", "![msg/s and p99 latency per client count](bench.png)", ""]
    return "\n".join(lines)


def write_readme(result: Mapping[str, Any], path: Path) -> Path:
    """Write :func:`render_readme` of ``result`` to ``path`` (UTF-8); returns ``path``."""
    path.write_text(render_readme(result), encoding="utf-8")
    return path


def write_chart(result: Mapping[str, Any], path: Path) -> Path:
    """Draw REST msg/s and p99 latency (ms) per client count, stock beside project, as a PNG at ``path``;
    returns ``path``. Servers or levels that were not measured are left out."""
    import warnings

    with warnings.catch_warnings():  # matplotlib 3.x on a newer pyparsing warns of deprecated names
        warnings.simplefilter("ignore", DeprecationWarning)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    clients: List[int] = list(result.get("clients", []))
    servers: Dict[str, Any] = dict(result.get("servers", {}))
    names = [name for name in SERVER_NAMES if name in servers]
    figure, (rates, tails) = plt.subplots(1, 2, figsize=(10, 4.2))
    width = 0.8 / max(len(names), 1)
    colours = {"stock": "#8c8c8c", "project": "#1f77b4"}
    labels = {"stock": "stock Rasa", "project": "this project"}
    for offset, name in enumerate(names):
        levels = [_level(servers[name], c) for c in clients]
        xs = [i + (offset - (len(names) - 1) / 2) * width for i in range(len(clients))]
        per_s = [level["per_s"] if level else 0 for level in levels]
        p99 = [(level.get("p99_ms") or 0) if level else 0 for level in levels]
        for axes, values in ((rates, per_s), (tails, p99)):
            bars = axes.bar(xs, values, width, label=labels[name], color=colours[name])
            axes.bar_label(bars, fmt="%.0f" if axes is tails else "%.1f", fontsize=8)
    for axes, title in ((rates, "REST msg/s (higher is better)"), (tails, "REST p99 latency, ms (lower is better)")):
        axes.set_xticks(range(len(clients)), [str(c) for c in clients])
        axes.set_xlabel("concurrent clients")
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=8)
    figure.suptitle(f"{result['measured'][:10]}, commit {result['commit']}, {result['cpu_count']} CPUs, "
                    f"{result['duration_s']:g} s per level", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
