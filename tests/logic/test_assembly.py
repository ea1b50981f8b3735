"""Trace assembly: buffering by trace id, release rules, and which offsets are safe."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.ingest.assembly import Assembler, merge
from shared.events import SpanKind, Trace
from tests.support.builders import T0, span

pytestmark = pytest.mark.logic

QUIET = timedelta(seconds=2)
MAX_WAIT = timedelta(seconds=60)


def part(*spans_: object, trace_id: str = "a" * 32) -> Trace:
    return Trace(trace_id=trace_id, spans=spans_)


ROOT_OPEN = span(0, SpanKind.AGENT, "agent").model_copy(update={"end_time": None})
ROOT_DONE = span(0, SpanKind.AGENT, "agent")
CHILD = span(1, SpanKind.TOOL, "lookup_order")


def test_a_trace_is_held_until_its_root_has_ended_and_the_quiet_period_passed() -> None:
    a = Assembler(QUIET, MAX_WAIT)
    a.add([part(ROOT_OPEN, CHILD)], (0, 10), 100, T0)
    assert a.release(T0 + QUIET * 5) == []
    a.add([part(ROOT_DONE)], (0, 11), 100, T0 + timedelta(seconds=10))
    assert a.release(T0 + timedelta(seconds=11)) == []
    released = a.release(T0 + timedelta(seconds=12))
    assert len(released) == 1 and released[0].complete
    assert {s.span_id for s in released[0].trace.spans} == {ROOT_DONE.span_id, CHILD.span_id}


def test_a_trace_still_open_at_the_maximum_wait_is_released_as_incomplete() -> None:
    a = Assembler(QUIET, MAX_WAIT)
    a.add([part(ROOT_OPEN)], (0, 1), 10, T0)
    released = a.release(T0 + MAX_WAIT)
    assert len(released) == 1 and not released[0].complete


def test_no_offset_is_committed_past_a_message_whose_spans_are_still_buffered() -> None:
    a = Assembler(QUIET, MAX_WAIT)
    a.add([part(ROOT_OPEN)], (0, 5), 10, T0)
    a.add([part(ROOT_DONE, trace_id="b" * 32)], (0, 6), 10, T0)
    a.add([part(CHILD, trace_id="c" * 32)], (1, 3), 10, T0)
    assert a.commit_offsets() == {0: 5, 1: 3}
    a.forget(["a" * 32])
    assert a.commit_offsets() == {0: 6, 1: 3}
    a.forget(["b" * 32, "c" * 32])
    assert a.commit_offsets() == {0: 7, 1: 4}


def test_a_dead_lettered_message_moves_the_commit_point_past_itself() -> None:
    a = Assembler(QUIET, MAX_WAIT)
    a.mark_consumed((2, 41))
    assert a.commit_offsets() == {2: 42}


def test_a_span_seen_again_with_an_end_time_replaces_its_unfinished_copy() -> None:
    merged = merge(part(ROOT_OPEN, CHILD), part(ROOT_DONE))
    assert [s.end_time is not None for s in merged.spans] == [True, True]
    assert len(merged.spans) == 2


def test_the_buffer_reports_full_at_its_trace_bound_for_back_pressure() -> None:
    a = Assembler(QUIET, MAX_WAIT, max_traces=2)
    a.add([part(ROOT_OPEN)], (0, 1), 10, T0)
    assert not a.full()
    a.add([part(ROOT_OPEN, trace_id="b" * 32)], (0, 2), 10, T0)
    assert a.full()
    a.forget(["a" * 32])
    assert not a.full()


def test_partitions_taken_away_by_a_rebalance_are_forgotten() -> None:
    a = Assembler(QUIET, MAX_WAIT)
    a.add([part(ROOT_OPEN)], (0, 1), 10, T0)
    a.add([part(ROOT_OPEN, trace_id="b" * 32)], (1, 1), 10, T0)
    a.drop_partitions({0})
    assert set(a.pending) == {"b" * 32}
    assert a.commit_offsets() == {1: 1}
