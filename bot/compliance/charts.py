"""PNG charts of a compliance report (matplotlib, headless): ``conversations.png`` (conversations and risk
conversations per group, hand-overs as a line) and ``referrals.png`` (referrals by route per group, stacked).

The figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``, rendered by Agg), not pyplot,
so that no global figure state is shared: ``python -m bot report --charts`` writes them to files and the agent
desk's compliance page (bot.handoff.desk.compliance_api) serves the same bytes from a worker thread.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, List

from bot.compliance.report import Report

CHART_NAMES = ("conversations.png", "referrals.png")
"""The charts of a report, in the order they are drawn."""


def _figure(width_groups: int) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from matplotlib.figure import Figure

    return Figure(figsize=(max(6.0, 0.6 * width_groups + 3), 4.2))


def _png(figure: Any) -> bytes:
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=100)
    return out.getvalue()


def render_charts(report: Report) -> Dict[str, bytes]:
    """The PNG bytes of each chart of ``report``, by file name (CHART_NAMES, in that order)."""
    keys = [g.key for g in report.groups]
    positions = list(range(len(keys)))
    title = f"{report.start} .. {report.end}, by {report.by}"
    tick_style = {"rotation": 45, "ha": "right"} if len(keys) > 6 else {"rotation": 0, "ha": "center"}
    charts: Dict[str, bytes] = {}

    figure = _figure(len(keys))
    axes = figure.subplots()
    axes.bar([p - 0.2 for p in positions], [g.conversations for g in report.groups], width=0.4,
             label="conversations", color="#4c78a8")
    axes.bar([p + 0.2 for p in positions], [g.risk_conversations for g in report.groups], width=0.4,
             label="risk conversations", color="#e45756")
    axes.plot(positions, [g.handovers for g in report.groups], marker="o", color="#54a24b", label="hand-overs")
    axes.set_xticks(positions, keys, **tick_style)
    axes.set_ylabel("conversations")
    axes.set_title(f"Conversations, risk and hand-overs\n{title}", fontsize="medium")
    axes.set_ylim(0, max([g.conversations for g in report.groups] or [1]) * 1.3)
    axes.legend(loc="upper left", fontsize="small", ncol=3)
    charts[CHART_NAMES[0]] = _png(figure)

    figure = _figure(len(keys))
    axes = figure.subplots()
    bottom = [0] * len(keys)
    for route in report.routes:
        counts = [g.referrals.get(route, 0) for g in report.groups]
        axes.bar(positions, counts, bottom=bottom, label=route)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_xticks(positions, keys, **tick_style)
    axes.set_ylabel("conversations referred")
    axes.set_title(f"Referrals by route\n{title}", fontsize="medium")
    axes.set_ylim(0, max(bottom or [1]) * 1.3 or 1)
    if report.routes:
        axes.legend(loc="upper left", fontsize="small", ncol=2)
    charts[CHART_NAMES[1]] = _png(figure)
    return charts


def write_charts(report: Report, folder: Path) -> List[Path]:
    """Write the charts of ``report`` (:func:`render_charts`) into ``folder`` (created); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in render_charts(report).items():
        paths.append(folder / name)
        paths[-1].write_bytes(png)
    return paths
