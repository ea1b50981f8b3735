"""The release-gate report's "degrading patterns" section: patterns quietly getting worse
against their own past, whether a fixture covers them, and a chart of each. Pure: series
in, Markdown out; the charts are drawn by the caller (``promoter.charts``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from shared.events import PatternTrend
from shared.trends import DayCount, describe, trend


@dataclass(frozen=True)
class PatternSeries:
    pattern_id: str
    agent: str
    covered: bool
    days: tuple[DayCount, ...]


@dataclass(frozen=True)
class Degrading:
    series: PatternSeries
    trend: PatternTrend


def degrading(patterns: Sequence[PatternSeries], today: date) -> list[Degrading]:
    """Patterns whose share of their agent's traffic, or rescue load, is rising as of
    ``today``, the most significant first."""
    found = []
    for p in patterns:
        t = trend(p.days, today)
        if t is not None and (t.rising or t.rescue_rising):
            found.append(Degrading(p, t))
    return sorted(
        found, key=lambda d: (min(d.trend.p_value, d.trend.rescue_p_value), d.series.pattern_id)
    )


def render_degrading(
    items: Sequence[Degrading], charts: Mapping[str, str], today: date
) -> list[str]:
    lines = ["", "## Degrading patterns", ""]
    if not items:
        lines.append(f"No pattern is rising against its own past as of {today.isoformat()}.")
        return lines
    lines += [
        f"Patterns rising against their own past as of {today.isoformat()} (the last"
        f" {items[0].trend.recent_days} days against the {items[0].trend.baseline_days}"
        " before, conditional binomial test). A covered pattern that keeps rising is"
        " **covered but not protected**: its fixture's grader or threshold may be too weak.",
        "",
        "| pattern | agent | what changed | since | fixture | chart |",
        "|---|---|---|---|---|---|",
    ]
    for d in items:
        s, t = d.series, d.trend
        cover = "covered but not protected" if s.covered else "not covered"
        chart = f"[chart]({charts[s.pattern_id]})" if s.pattern_id in charts else "—"
        lines.append(
            f"| `{s.pattern_id}` | {s.agent} | {describe(t)} | {t.since.isoformat()}"
            f" | {cover} | {chart} |"
        )
    return lines
