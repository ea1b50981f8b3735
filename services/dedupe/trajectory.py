"""Trajectory quality: a run's path against the paths that succeeded at the same request.

A failed or costly run is often not one headline error but a weak trajectory: wasted
steps, the same call again and again, an error followed by the same call unchanged, the
right tool found late, or steps taken in an order the successful runs never use. Dedupe
keeps the tool paths of the first few runs of every pattern; for a trace, the paths of the
*successful* pattern of the same agent and intent are the reference, and these pure
functions say how the trace's own path departs from them, each with a sentence a person
can read.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from itertools import combinations, pairwise

from shared.events import Span, SpanKind, Trace, TrajectoryReport
from shared.features import arguments_fingerprint, tool_failed

# How many paths a pattern keeps as its reference.
MAX_PATHS = 5
# Fewer successful runs than this are no reference.
MIN_REFERENCE_RUNS = 2

Path = tuple[str, ...]


def _tool_spans(trace: Trace) -> list[Span]:
    return sorted(
        (s for s in trace.spans if s.kind == SpanKind.TOOL), key=lambda s: (s.start_time, s.span_id)
    )


def tool_path(trace: Trace) -> Path:
    return tuple(s.tool_name or s.name for s in _tool_spans(trace))


def _blind_retries(spans: Sequence[Span]) -> int:
    """The same call (tool and arguments) made again right after it failed."""
    count = 0
    for before, after in pairwise(spans):
        same = (before.tool_name, arguments_fingerprint(before.tool_arguments)) == (
            after.tool_name,
            arguments_fingerprint(after.tool_arguments),
        )
        count += same and tool_failed(before)
    return count


def _loops(spans: Sequence[Span]) -> int:
    seen: set[tuple[str | None, str]] = set()
    repeats = 0
    for s in spans:
        key = (s.tool_name, arguments_fingerprint(s.tool_arguments))
        repeats += key in seen
        seen.add(key)
    return repeats


def _late_correction(spans: Sequence[Span], median_steps: float) -> int | None:
    """The step at which a failed call was followed by another tool that worked, when that
    happened past the length of a typical successful run."""
    for i, (before, after) in enumerate(pairwise(spans), start=2):
        corrected = tool_failed(before) and not tool_failed(after)
        if corrected and before.tool_name != after.tool_name and i > median_steps:
            return i
    return None


def _first_positions(path: Path) -> dict[str, int]:
    first: dict[str, int] = {}
    for i, name in enumerate(path):
        first.setdefault(name, i)
    return first


def order_breaks(path: Path, references: Sequence[Path]) -> list[tuple[str, str]]:
    """Pairs (a, b) every reference run that used both did in the order a then b, while
    this run did b first: a dependency the successful runs respect (look up, then act)."""
    mine = _first_positions(path)
    firsts = [_first_positions(r) for r in references]
    broken = []
    for a, b in combinations(sorted(mine), 2):
        for x, y in ((a, b), (b, a)):
            both = [f for f in firsts if x in f and y in f]
            kept = len(both) >= MIN_REFERENCE_RUNS and all(f[x] < f[y] for f in both)
            if kept and mine[y] < mine[x]:
                broken.append((x, y))
    return broken


def trajectory(
    trace: Trace, references: Sequence[Path], sibling: str | None
) -> TrajectoryReport | None:
    """How the trace's tool path compares with the successful runs of its request; None
    without enough successful runs to compare with."""
    if sibling is None or len(references) < MIN_REFERENCE_RUNS:
        return None
    spans = _tool_spans(trace)
    path = tuple(s.tool_name or s.name for s in spans)
    median = statistics.median(len(r) for r in references)
    late = _late_correction(spans, median)
    breaks = order_breaks(path, references)
    notes = []
    extra = len(path) - median
    if median > 0 and extra >= max(2, median * 0.5):
        notes.append(f"{len(path)} tool calls where the successful runs took {median:g}")
    loops = _loops(spans)
    if loops:
        notes.append(f"{loops} call(s) repeated with the same arguments")
    blind = _blind_retries(spans)
    if blind:
        notes.append(f"{blind} failed call(s) retried unchanged")
    if late is not None:
        notes.append(f"the working tool found only at step {late}")
    if breaks:
        pairs = ", ".join(f"{b} before {a}" for a, b in breaks[:3])
        notes.append(f"steps out of the order the successful runs keep ({pairs})")
    return TrajectoryReport(
        reference_pattern=sibling,
        reference_runs=len(references),
        median_successful_steps=float(median),
        steps=len(path),
        extra_steps=float(extra),
        loops=loops,
        blind_retries=blind,
        late_correction_step=late,
        order_breaks=tuple(f"{a}<{b}" for a, b in breaks),
        summary="; ".join(notes) if notes else "a path like the successful runs'",
    )
