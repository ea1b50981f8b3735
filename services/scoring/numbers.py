"""Small arithmetic the criteria share: ramps, a noisy-or, rounding, and the shape of
a criterion's result."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from shared.events import CriterionScore


def clamp(x: float) -> float:
    return 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else x


def ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high``, linear between."""
    return clamp((value - low) / (high - low))


def log_ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high``, on a log scale between (both at least 1)."""
    if high <= low:
        return 1.0 if value >= high else 0.0
    return clamp(math.log(max(value, 1) / low) / math.log(high / low))


def noisy_or(values: Iterable[float]) -> float:
    return 1.0 - math.prod(1.0 - clamp(v) for v in values)


def rounded(x: float) -> float:
    # Rounded so replayed scores compare equal and evidence stays readable.
    return round(x, 4)


def result(score: float, summary: str, **evidence: Any) -> CriterionScore:
    return CriterionScore(score=rounded(clamp(score)), evidence={"summary": summary, **evidence})


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


def names(names: Iterable[str]) -> str:
    return ", ".join(sorted(set(names)))
