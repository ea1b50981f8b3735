"""Linear-time merges and memory bounds on adversarial input (issue 13, defects 4 and 6)."""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime

import pytest

from services.ingest.assembly import merge
from services.ingest.fragments import merge_fragments
from shared.events import Feedback, Span, SpanKind, Trace
from shared.templating import template_message

pytestmark = pytest.mark.logic

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def trace_with(text: str) -> Trace:
    span = Span(span_id="1" * 16, name="agent", kind=SpanKind.AGENT, start_time=T0, input=text)
    return Trace(trace_id="ab12" * 8, spans=(span,))


def feedback(n: int) -> tuple[Feedback, ...]:
    return tuple(Feedback(name=f"grade-{i}", score=i / n) for i in range(n))


def test_merging_fragments_with_many_feedback_items_takes_linear_time() -> None:
    # Quadratic, 20,000 items cost minutes; linear, milliseconds.
    a = trace_with("a").model_copy(update={"feedback": feedback(20_000)})
    b = a.model_copy(update={"feedback": feedback(20_000)[::-1]})
    started = time.process_time()
    merged = merge(a, b)
    decoded = merge_fragments([a, b, b])
    elapsed = time.process_time() - started
    assert len(merged.feedback) == 20_000
    assert len(decoded.feedback) == 20_000
    assert elapsed < 2.0


def test_the_templating_memo_keeps_cut_messages_not_whole_ones() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(300):
            template_message(f"{i:06d}" + "q" * 100_000)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    retained = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert retained < 5_000_000, f"{retained} bytes retained by 300 calls"
