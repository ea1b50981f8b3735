"""Pure helpers of the benchmark harness: medians, percentiles, rates and Markdown tables.

No I/O and no clock here, so the figures in BENCHMARKS.md are computed by code that the
logic tests cover with literal inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


def median(values: Iterable[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of no values")
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks, as
    numpy's default: percentile([1, 2, 3, 4], 50) == 2.5."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(samples: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max of a latency sample (any unit); None figures when it is empty."""
    if not samples:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "max": float(max(samples)),
    }


def rate(count: float, seconds: float) -> float:
    """count per second; a non-positive duration is a measurement error, not infinity."""
    if seconds <= 0:
        raise ValueError(f"cannot take a rate over {seconds} s")
    return count / seconds


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def measurement(reps: Sequence[float], unit: str) -> dict[str, Any]:
    """A measured figure: every repetition and their median."""
    return {
        "median": median(reps) if reps else None,
        "min": min(reps) if reps else None,
        "max": max(reps) if reps else None,
        "reps": list(reps),
        "unit": unit,
    }


def median_of(dicts: Sequence[dict[str, Any]], key: str) -> float | None:
    """The median of one numeric key over several repetitions' dicts (None values skipped)."""
    values = [d[key] for d in dicts if d.get(key) is not None]
    return median(values) if values else None


DASH = "\u2013"  # an en dash: "not measured"
TIMES = "\u00d7"


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A figure for a table: three significant digits, thousands separated; a dash for none."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and abs(value) >= 10
    ):
        return f"{int(value):,}"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{fmt(value)}{TIMES}"


def fmt_pct(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value * 100:.1f} %"


def _cell(value: object) -> str:
    text = value if isinstance(value, str) else fmt(value)  # type: ignore[arg-type]
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None
) -> str:
    """A GitHub Markdown table. ``align`` has one letter per column, l or r (default: the
    first column left, the others right). Numbers are formatted with ``fmt``; pipes in
    cells are escaped."""
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError("one alignment letter per column")
    body = [[_cell(c) for c in row] for row in rows]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"row {row} has {len(row)} cells, expected {len(headers)}")
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
