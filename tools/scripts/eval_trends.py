"""Slow-failure detection on streams with known change points.

    .venv/bin/python tools/scripts/eval_trends.py [--patterns 400] [--days 60] [--seed 7] [--json P]

Each simulated pattern lives on an agent with Poisson daily traffic; its occurrences are
binomial with a small base share (0.5 to 2 %, the counts production lessons have). Half the
patterns change at a random day: their share is multiplied by ``RATIO``. From day 17 on
(a full baseline window) both detectors are asked every day: the rate test of
``shared.trends.trend`` and a fixed threshold (today's share ≥ 2x the mean of the
previous 14 days). An alarm on a pattern that has not (yet) changed is a false alarm; for a
changed pattern, the delay is the first alarm on or after the change, within 10 days.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from services.dedupe import logic as dedupe
from services.dedupe.store import InMemoryPatternStore
from services.dedupe.trajectory import trajectory
from shared.events import TrajectoryReport
from shared.features import derive_features
from shared.trends import (
    ALPHA,
    BASELINE_DAYS,
    MIN_RATIO,
    MIN_RECENT,
    RECENT_DAYS,
    DayCount,
    fixed_threshold_alarm,
    trend,
)
from tools.scripts.sweep_real import load

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


def slow_failure_markdown(root: Path, patterns: int = 400, seed: int = 7) -> str:
    """The slow-failure figures for EVALUATION.md."""
    cp = change_point_figures(patterns=patterns, seed=seed)
    lines = [
        "### Trend detector on streams with known change points",
        "",
        f"{cp['patterns']} simulated patterns over {cp['days']} days, half of them changing"
        f" (share x{cp['ratio']:g}) at a random day; seed {cp['seed']}"
        " (`tools/scripts/eval_trends.py`).",
        "",
        "| detector | false alarms per 1,000 pattern-days | changes detected within 10 days"
        " | median delay (days) |",
        "|---|---|---|---|",
    ]
    for name, label in (("rate_test", "rate test (product)"), ("fixed_threshold", "fixed 2x")):
        f = cp[name]
        lines.append(
            f"| {label} | {f['false_alarms_per_1000_pattern_days']} | {f['detected_share']}"
            f" | {f['median_delay_days']} |"
        )
    lines += ["", "### Agent versions in the real corpora", ""]
    for corpus in ("tau2", "wiki"):
        v = version_shifts(corpus, root)
        shares = ", ".join(f"{k} {s:.1%}" for k, s in v["failure_share"].items())
        lines += [
            f"- **{corpus}**: failure share per version: {shares}. Versions the test finds"
            f" failing more than the others (p < {ALPHA}, ratio ≥ {MIN_RATIO}):"
            f" {', '.join(v['versions_failing_more']) or 'none'}. Failure patterns more"
            f" frequent under one version: {len(v['pattern_shifts_detected'])}; the same test"
            f" on the ground truth's tasks finds {v['truth_shifts']}"
            f" ({v['detected_that_truth_confirms']} in common).",
        ]
    tp = trajectory_precision(root)
    lines += [
        "",
        "### Trajectory flags on hand-labelled real runs",
        "",
        "Runs labelled by hand, each with its reasoning, in"
        f" `{LABELS.relative_to(LABELS.parents[3])}`.",
        "",
        "| flag | flagged | correct | precision |",
        "|---|---|---|---|",
        *(
            f"| {flag} | {f['flagged']} | {f['correct']} | {f['precision']} |"
            for flag, f in tp.items()
        ),
    ]
    return "\n".join(lines) + "\n"


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


# --- trajectory flags on labelled real runs ----------------------------------------------

LABELS = Path(__file__).resolve().parent / "data" / "trajectory_labels.jsonl"


def wasted(report: TrajectoryReport) -> bool:
    return report.extra_steps >= max(2.0, report.median_successful_steps * 0.5)


async def _trajectories(corpus: str, root: Path) -> dict[str, TrajectoryReport | None]:
    store = InMemoryPatternStore()
    out: dict[str, TrajectoryReport | None] = {}
    for trace, _label in load(corpus, root):
        observed = dedupe.observe(trace, derive_features(trace))
        await store.record(observed)
        reference, paths = await store.reference(observed)
        out[trace.trace_id] = trajectory(trace, paths, reference)
    return out


def trajectory_precision(root: Path, labels: Path = LABELS) -> dict[str, Any]:
    """Precision of the "wasted steps" and "loop" flags on runs labelled by hand (each
    label with its reasoning in the file). A label is null where the flag did not fire."""
    rows = [json.loads(line) for line in labels.read_text().splitlines() if line.strip()]
    reports: dict[str, TrajectoryReport | None] = {}
    for corpus in sorted({r["corpus"] for r in rows}):
        reports.update(asyncio.run(_trajectories(corpus, root)))
    tally = {"wasted_steps": [0, 0], "loop": [0, 0]}
    for r in rows:
        report = reports[r["trace_id"]]
        assert report is not None, f"{r['trace_id']} has no trajectory report any more"
        for flag, fired in (("wasted_steps", wasted(report)), ("loop", report.loops > 0)):
            label = r[flag]
            if fired and label is not None:
                tally[flag][0] += bool(label)
                tally[flag][1] += 1
    return {
        flag: {"flagged": n, "correct": ok, "precision": round(ok / n, 3) if n else None}
        for flag, (ok, n) in tally.items()
    }


# --- agent versions on the real corpora ----------------------------------------------------


def _shifted(k1: int, n1: int, k0: int, n0: int) -> bool:
    """The rate test of ``shared.trends`` with versions for windows: more frequent in one
    version's traffic than in the other versions' together."""
    if k1 < MIN_RECENT or n1 == 0 or n0 == 0:
        return False
    p = binomtest(k1, k0 + k1, n1 / (n0 + n1), alternative="greater").pvalue
    return bool(p < ALPHA and (k1 / n1) / ((k0 + 0.5) / n0) >= MIN_RATIO)


async def _failure_patterns(corpus: str, root: Path) -> list[tuple[str, str, str, str]]:
    """(pattern, task, agent version, outcome) of every run, grouped by the product."""
    store = InMemoryPatternStore()
    out = []
    for trace, label in load(corpus, root):
        recorded = await store.record(dedupe.observe(trace, derive_features(trace)))
        out.append((recorded.pattern_id, label["task"], label["agent_version"], label["outcome"]))
    return out


def version_shifts(corpus: str, root: Path) -> dict[str, Any]:
    """Which failure patterns the detector finds more frequent under one agent version than
    under the others, checked against the same test run on the ground truth's tasks."""
    runs = asyncio.run(_failure_patterns(corpus, root))
    traffic = Counter(version for _, _, version, _ in runs)
    failed = [r for r in runs if r[3] == "failure"]
    by_pattern = Counter((p, v) for p, _, v, _ in failed)
    by_task = Counter((t, v) for _, t, v, _ in failed)
    main_task = {
        p: Counter(t for q, t, _, _ in failed if q == p).most_common(1)[0][0]
        for p in {p for p, *_ in failed}
    }
    total = sum(traffic.values())

    def flags(counts: Counter[tuple[str, str]], keys: set[str]) -> set[tuple[str, str]]:
        out = set()
        for key in keys:
            for version, n in traffic.items():
                k1 = counts[(key, version)]
                k0 = sum(counts[(key, v)] for v in traffic) - k1
                if _shifted(k1, n, k0, total - n):
                    out.add((key, version))
        return out

    detected = flags(by_pattern, {p for p, *_ in failed})
    truth = flags(by_task, {t for _, t, _, _ in failed})
    detected_as_tasks = {(main_task[p], v) for p, v in detected}
    agreed = detected_as_tasks & truth
    failure_share = {
        v: round(sum(1 for r in failed if r[2] == v) / n, 3) for v, n in sorted(traffic.items())
    }
    worse = sorted(
        v
        for v, n in traffic.items()
        if _shifted(
            sum(1 for r in failed if r[2] == v), n, sum(1 for r in failed if r[2] != v), total - n
        )
    )
    return {
        "versions": dict(sorted(traffic.items())),
        "failure_share": failure_share,
        "versions_failing_more": worse,
        "pattern_shifts_detected": sorted(f"{p} under {v}" for p, v in detected),
        "task_shifts_in_truth": sorted(f"task {t} under {v}" for t, v in truth),
        "detected_that_truth_confirms": len(agreed),
        "truth_shifts": len(truth),
    }
