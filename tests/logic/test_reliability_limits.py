"""Bounds that keep a stage alive on large or adversarial input: the size rule for events,
linear feedback merges, memory bounds that count decoded bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.ingest import logic
from services.ingest.assembly import Assembler, decoded_size
from shared.events import Span, SpanKind, StageStamp, Trace

pytestmark = pytest.mark.logic

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
STAMP = StageStamp(stage="ingest", version="test", at=T0)


def trace_with(text: str, spans: int = 1, trace_id: str = "ab12" * 8) -> Trace:
    return Trace(
        trace_id=trace_id,
        spans=tuple(
            Span(
                span_id=f"{i:016x}",
                name="agent",
                kind=SpanKind.AGENT,
                start_time=T0,
                end_time=T0 + timedelta(seconds=1),
                input=text,
                attributes={"gen_ai.prompt": text},
            )
            for i in range(spans)
        ),
    )


def test_an_event_within_the_limit_is_published_as_it_is() -> None:
    event = logic.normalize([trace_with("where is my parcel?")], STAMP)[0]
    assert logic.fit(event, 1024 * 1024) is event


def test_an_event_over_the_limit_is_cut_to_fit_and_marked_truncated() -> None:
    # A 621 KB request becomes a >1.2 MB normalised event (copied into the features).
    event = logic.normalize([trace_with("x" * 621_000)], STAMP)[0]
    assert len(event.model_dump_json()) > 1_200_000
    fitted = logic.fit(event, 1024 * 1024)
    assert fitted.truncated
    assert len(fitted.model_dump_json().encode()) <= 1024 * 1024
    assert fitted.trace.spans[0].input is not None
    assert fitted.trace.spans[0].input.endswith(logic.TRUNCATION_MARKER)
    assert fitted.trace_id == event.trace_id


def test_an_event_that_cannot_fit_even_cut_is_refused_as_too_large() -> None:
    event = logic.normalize([trace_with("y" * 100, spans=3_000)], STAMP)[0]
    with pytest.raises(logic.EventTooLarge) as refused:
        logic.fit(event, 200_000)
    assert refused.value.reason == "too_large"


def test_the_assembly_buffer_counts_decoded_bytes_not_wire_bytes() -> None:
    traces = [trace_with("z" * 50_000)]
    assert decoded_size(traces) >= 100_000
    assembler = Assembler(quiet=timedelta(0), max_wait=timedelta(seconds=1), max_bytes=64_000)
    # The wire size of a gzipped body of this trace is ~1 KB; the bound must still trip.
    assembler.add(traces, (0, 0), max(1_000, decoded_size(traces)), T0)
    assert assembler.full()
