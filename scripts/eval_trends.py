"""Slow-failure detection on streams with known change points.

    .venv/bin/python scripts/eval_trends.py [--patterns 400] [--days 60] [--seed 7] [--json P]

Each simulated pattern lives on an agent with Poisson daily traffic; its occurrences are
binomial with a small base share (0.5 to 2 %, the counts production lessons have). Half the
patterns change at a random day: their share is multiplied by ``RATIO``. From day 17 on
(a full baseline window) both detectors are asked every day: the rate test of
``shared.trends.trend`` and a fixed threshold (today's share ≥ 2× the mean of the
previous 14 days). An alarm on a pattern that has not (yet) changed is a false alarm; for a
changed pattern, the delay is the first alarm on or after the change, within 10 days.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from shared.trends import (
    BASELINE_DAYS,
    RECENT_DAYS,
    DayCount,
    fixed_threshold_alarm,
    trend,
)

RATIO = 3.0
START = date(2026, 1, 1)
DETECTION_WINDOW = 10


def _stream(rng: np.random.Generator, days: int) -> tuple[list[DayCount], int | None]:
    share = rng.uniform(0.005, 0.02)
    change = int(rng.integers(25, days - DETECTION_WINDOW)) if rng.random() < 0.5 else None
    out = []
    for i in range(days):
        traffic = int(rng.poisson(300))
        p = share * (RATIO if change is not None and i >= change else 1.0)
        out.append(DayCount(START + timedelta(days=i), int(rng.binomial(traffic, p)), traffic))
    return out, change


def change_point_figures(patterns: int = 400, days: int = 60, seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    first_day = RECENT_DAYS + BASELINE_DAYS
    detectors = {
        "rate_test": lambda h, d: (t := trend(h, d)) is not None and t.rising,
        "fixed_threshold": fixed_threshold_alarm,
    }
    tally: dict[str, dict[str, Any]] = {
        name: {"false_alarms": 0, "quiet_days": 0, "delays": [], "changed": 0} for name in detectors
    }
    for _ in range(patterns):
        stream, change = _stream(rng, days)
        for name, alarm in detectors.items():
            t = tally[name]
            t["changed"] += change is not None
            detected: int | None = None
            for i in range(first_day, days):
                fired = alarm(stream[: i + 1], stream[i].day)
                if change is None or i < change:
                    t["quiet_days"] += 1
                    t["false_alarms"] += fired
                elif fired and detected is None and i - change <= DETECTION_WINDOW:
                    detected = i - change
            if change is not None and detected is not None:
                t["delays"].append(detected)
    figures: dict[str, Any] = {"patterns": patterns, "days": days, "ratio": RATIO, "seed": seed}
    for name, t in tally.items():
        figures[name] = {
            "false_alarms_per_1000_pattern_days": round(
                1000 * t["false_alarms"] / t["quiet_days"], 2
            ),
            "detected_share": round(len(t["delays"]) / t["changed"], 3) if t["changed"] else None,
            "median_delay_days": statistics.median(t["delays"]) if t["delays"] else None,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patterns", type=int, default=400)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = change_point_figures(args.patterns, args.days, args.seed)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
