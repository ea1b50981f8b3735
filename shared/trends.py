"""Slow failure: is a pattern quietly getting worse against its own past?

A pattern matters not only for one headline failure but because its share of the agent's
traffic, or the rescue load it puts on people, keeps growing. Dedupe counts every trace of
every pattern per day and agent version (covered patterns included: a covered pattern
whose rate keeps rising is "covered but not protected"), and these pure functions compare
the recent window with the pattern's own baseline.

The test is the conditional binomial test for two Poisson rates (Przyborowski and
Wilenski): given k₀ occurrences among n₀ agent traces in the baseline window and k₁ among
n₁ recently, under "no change" k₁ ~ Binomial(k₀ + k₁, n₁ / (n₀ + n₁)). It is exact for
small counts, which is where production lessons live (2 to 3 occurrences a day), and scipy's
binomial survival function computes it. A pattern is *rising* when the one-sided p-value is below
``ALPHA`` and the rate ratio is at least ``MIN_RATIO``; ``bench`` measures its false
alarms per 1,000 pattern-days and detection delay on streams with known change points
(EVALUATION.md). Rescue load (retries, human interventions, user corrections, escalations
per occurrence) is tested the same way, with occurrences as the exposure.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from scipy.special import bdtrc

from shared.events import PatternTrend

RECENT_DAYS = 3
BASELINE_DAYS = 14
ALPHA = 0.01
MIN_RATIO = 1.5
# Fewer recent occurrences than this say nothing about a trend.
MIN_RECENT = 3
# A pattern never seen in its baseline window is new, not rising: Patterned and Enduring
# already speak about new patterns.
MIN_BASELINE = 1


@dataclass(frozen=True)
class DayCount:
    """One day of one pattern (all agent versions) beside its agent's traffic that day."""

    day: date
    occurrences: int
    agent_traces: int
    rescues: int = 0


def _windows(days: Iterable[DayCount], today: date) -> tuple[list[DayCount], list[DayCount]]:
    recent_start = today - timedelta(days=RECENT_DAYS - 1)
    baseline_start = recent_start - timedelta(days=BASELINE_DAYS)
    recent, baseline = [], []
    for d in days:
        if recent_start <= d.day <= today:
            recent.append(d)
        elif baseline_start <= d.day < recent_start:
            baseline.append(d)
    return recent, baseline


# Remembered: dedupe asks again for every trace of a pattern, mostly with the same counts.
@functools.lru_cache(maxsize=8192)
def _one_sided(k1: int, k0: int, exposure1: float, exposure0: float) -> float:
    """P(at least k1 of k0 + k1 events fall in the recent window) when both windows share
    one rate per unit of exposure: the one-sided ("greater") p-value of the exact binomial
    test. The survival function is called directly: ``binomtest`` wraps the same figure in
    ~25 µs of argument handling, a few per cent of dedupe's CPU at full rate (profiling)."""
    total = k0 + k1
    if total == 0 or k1 <= 0 or exposure1 <= 0 or exposure0 <= 0:
        return 1.0
    share = exposure1 / (exposure0 + exposure1)
    return min(1.0, float(bdtrc(k1 - 1, total, share)))


def _ratio(k1: int, k0: int, exposure1: float, exposure0: float) -> float:
    # Half an event added to the baseline keeps the ratio finite and a little cautious.
    return (k1 / exposure1) / ((k0 + 0.5) / exposure0)


def trend(days: Iterable[DayCount], today: date) -> PatternTrend | None:
    """The pattern's trend as of ``today`` (the day of the trace being judged), or None
    when there is not enough history to say anything."""
    recent, baseline = _windows(days, today)
    k1 = sum(d.occurrences for d in recent)
    k0 = sum(d.occurrences for d in baseline)
    n1 = sum(d.agent_traces for d in recent)
    n0 = sum(d.agent_traces for d in baseline)
    if k1 < MIN_RECENT or k0 < MIN_BASELINE or n0 <= 0 or n1 <= 0:
        return None
    p_rate = _one_sided(k1, k0, n1, n0)
    ratio = _ratio(k1, k0, n1, n0)
    r1 = sum(d.rescues for d in recent)
    r0 = sum(d.rescues for d in baseline)
    p_rescue = _one_sided(r1, r0, k1, k0) if r1 else 1.0
    rescue_ratio = _ratio(r1, r0, k1, k0) if r1 else 0.0
    rising = p_rate < ALPHA and ratio >= MIN_RATIO
    since = next((d.day for d in sorted(recent, key=lambda d: d.day) if d.occurrences), today)
    return PatternTrend(
        rising=rising,
        rate_ratio=round(ratio, 3),
        p_value=round(p_rate, 6),
        recent_share=round(k1 / n1, 6),
        baseline_share=round(k0 / n0, 6),
        recent_days=RECENT_DAYS,
        baseline_days=BASELINE_DAYS,
        since=since,
        rescue_rising=p_rescue < ALPHA and rescue_ratio >= MIN_RATIO,
        rescue_ratio=round(rescue_ratio, 3),
        rescue_p_value=round(p_rescue, 6),
    )


def fixed_threshold_alarm(days: Iterable[DayCount], today: date, factor: float = 2.0) -> bool:
    """The naive baseline the detector is measured against: today's share of the agent's
    traffic at least ``factor`` times the mean share of the previous 14 days."""
    by_day = {d.day: d for d in days if d.agent_traces > 0}
    now = by_day.get(today)
    if now is None or now.occurrences == 0:
        return False
    past = [
        by_day[day]
        for day in (today - timedelta(days=i) for i in range(1, BASELINE_DAYS + 1))
        if day in by_day
    ]
    if not past:
        return False
    mean = sum(d.occurrences / d.agent_traces for d in past) / len(past)
    return now.occurrences / now.agent_traces >= factor * mean


def describe(t: PatternTrend) -> str:
    """What changed, for a person: the share of traffic and the rescue load."""
    changes = []
    if t.rising:
        changes.append(
            f"share of the agent's traffic {t.baseline_share:.2%} → {t.recent_share:.2%}"
            f" ({t.rate_ratio:.1f}x, p={t.p_value:.3g})"
        )
    if t.rescue_rising:
        changes.append(
            f"rescue load per occurrence {t.rescue_ratio:.1f}x (p={t.rescue_p_value:.3g})"
        )
    return "; ".join(changes)
