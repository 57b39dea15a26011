"""PNG charts of a compliance report (matplotlib, headless): ``conversations.png`` (conversations and risk
conversations per group, hand-overs as a line) and ``referrals.png`` (referrals by route per group, stacked)."""
from __future__ import annotations

from pathlib import Path
from typing import List

from bot.compliance.report import Report


def write_charts(report: Report, folder: Path) -> List[Path]:
    """Write the two charts of ``report`` into ``folder`` (created); returns their paths."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    keys = [g.key for g in report.groups]
    positions = list(range(len(keys)))
    title = f"{report.start} .. {report.end}, by {report.by}"
    paths = []

    figure, axes = plt.subplots(figsize=(max(6.0, 0.6 * len(keys) + 3), 4.2))
    axes.bar([p - 0.2 for p in positions], [g.conversations for g in report.groups], width=0.4,
             label="conversations", color="#4c78a8")
    axes.bar([p + 0.2 for p in positions], [g.risk_conversations for g in report.groups], width=0.4,
             label="risk conversations", color="#e45756")
    axes.plot(positions, [g.handovers for g in report.groups], marker="o", color="#54a24b", label="hand-overs")
    axes.set_xticks(positions, keys, rotation=45 if len(keys) > 6 else 0, ha="right" if len(keys) > 6 else "center")
    axes.set_ylabel("conversations")
    axes.set_title(f"Conversations, risk and hand-overs\n{title}", fontsize="medium")
    axes.set_ylim(0, max([g.conversations for g in report.groups] or [1]) * 1.3)
    axes.legend(loc="upper left", fontsize="small", ncol=3)
    figure.tight_layout()
    paths.append(folder / "conversations.png")
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(max(6.0, 0.6 * len(keys) + 3), 4.2))
    bottom = [0] * len(keys)
    for route in report.routes:
        counts = [g.referrals.get(route, 0) for g in report.groups]
        axes.bar(positions, counts, bottom=bottom, label=route)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_xticks(positions, keys, rotation=45 if len(keys) > 6 else 0, ha="right" if len(keys) > 6 else "center")
    axes.set_ylabel("conversations referred")
    axes.set_title(f"Referrals by route\n{title}", fontsize="medium")
    axes.set_ylim(0, max(bottom or [1]) * 1.3 or 1)
    if report.routes:
        axes.legend(loc="upper left", fontsize="small", ncol=2)
    figure.tight_layout()
    paths.append(folder / "referrals.png")
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)
    return paths
