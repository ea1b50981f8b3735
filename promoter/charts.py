"""Trend charts for the release-gate report: one small SVG per degrading pattern."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
# Element ids in an SVG are random unless salted: the same data then draws the same file.
matplotlib.rcParams["svg.hashsalt"] = "trace-promoter"

import matplotlib.pyplot as plt  # noqa: E402

from services.fixture_writer.degrading import Degrading  # noqa: E402


def draw(item: Degrading, folder: Path) -> Path:
    """The pattern's daily share of its agent's traffic, the recent window shaded."""
    s, t = item.series, item.trend
    # Matplotlib plots dates through its date converter; its stubs ask for floats.
    days: list[Any] = [d.day for d in s.days]
    shares = [100.0 * d.occurrences / d.agent_traces if d.agent_traces else 0.0 for d in s.days]
    fig, ax = plt.subplots(figsize=(5.0, 1.8), dpi=100)
    try:
        ax.plot(days, shares, marker="o", markersize=2.5, linewidth=1.2, color="#b03a2e")
        since: Any = t.since
        ax.axvspan(since, days[-1], color="#f5b7b1", alpha=0.5, linewidth=0)
        ax.axhline(100.0 * t.baseline_share, color="#566573", linewidth=0.8, linestyle="--")
        ax.set_ylabel("% of traffic", fontsize=7)
        ax.set_title(f"{s.pattern_id} ({s.agent})", fontsize=8)
        ax.tick_params(labelsize=6)
        fig.autofmt_xdate()
        fig.tight_layout()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{s.pattern_id}.svg"
        fig.savefig(path, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    return path
