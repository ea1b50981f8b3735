"""An event that carries its input's trace on unchanged (dedupe, scoring) copies the trace's
bytes from the input record: the record it writes is the one a whole serialisation writes,
and it parses back to the same event whatever the trace holds or the record looks like."""

from __future__ import annotations

import json

import pytest

from shared.events import (
    CriterionScore,
    Decision,
    RedactionReport,
    StageStamp,
    Trace,
    TraceDeduped,
    TraceNormalized,
    TraceRedacted,
    TraceScored,
    advance,
)
from shared.features import derive_features
from shared.stage import to_bytes, to_bytes_passing_trace
from tests.support.builders import T0, pattern_info, refund_trace, trace_with_lookalikes
from tools.corpus.generate import generate

pytestmark = pytest.mark.logic

DEDUPE = StageStamp(stage="dedupe", version="test", at=T0)
SCORING = StageStamp(stage="scoring", version="test", at=T0)


def normalized(trace: Trace) -> TraceNormalized:
    ingest = StageStamp(stage="ingest", version="test", at=T0)
    return TraceNormalized(
        trace_id=trace.trace_id, stages=(ingest,), trace=trace, features=derive_features(trace)
    )


def deduped(event: TraceNormalized) -> TraceDeduped:
    return advance(event, TraceDeduped, DEDUPE, pattern=pattern_info())


def scored(event: TraceRedacted) -> TraceScored:
    return advance(
        event,
        TraceScored,
        SCORING,
        scores={"patterned": CriterionScore(score=0.5, evidence={"trace": '"trace":{'})},
        total=0.5,
        decision=Decision.REJECT,
        reason="below the line",
        policy_version="test-policy",
    )


def test_passing_a_trace_on_writes_the_bytes_a_whole_serialisation_writes() -> None:
    traces = [c.trace for c in generate(seed=11, scale=1)][:80]
    assert len(traces) == 80
    for trace in traces:
        source = normalized(trace)
        record = to_bytes(source)
        forwarded = deduped(source)
        assert to_bytes_passing_trace(forwarded, source, record) == to_bytes(forwarded)

        redacted = advance(forwarded, TraceRedacted, DEDUPE, redaction=RedactionReport())
        redacted_record = to_bytes(redacted)
        decided = scored(redacted)
        assert to_bytes_passing_trace(decided, redacted, redacted_record) == to_bytes(decided)


def test_keys_and_quotes_inside_the_trace_do_not_move_where_it_is_cut() -> None:
    lookalike = '"trace":{ ,"features":{ },"complete":true}'
    trace = trace_with_lookalikes(lookalike)
    source = normalized(trace)
    forwarded = deduped(source)
    assert to_bytes_passing_trace(forwarded, source, to_bytes(source)) == to_bytes(forwarded)


def test_a_record_laid_out_otherwise_has_the_event_serialised_whole() -> None:
    source = normalized(refund_trace())
    forwarded = deduped(source)
    spaced = json.dumps(json.loads(to_bytes(source)), indent=2).encode()
    reordered = json.dumps(dict(reversed(json.loads(to_bytes(source)).items()))).encode()
    assert TraceNormalized.model_validate_json(reordered) == source
    for record in (spaced, reordered, b"", b"{}"):
        assert to_bytes_passing_trace(forwarded, source, record) == to_bytes(forwarded)


def test_an_event_with_another_trace_is_serialised_whole() -> None:
    source = normalized(refund_trace(amount=120))
    other = deduped(normalized(refund_trace(amount=121)))
    assert to_bytes_passing_trace(other, source, to_bytes(source)) == to_bytes(other)


def test_a_trace_written_another_way_is_copied_as_written_and_parses_to_the_same_event() -> None:
    trace = refund_trace().model_copy(update={"agent_name": "agent café"})
    source = normalized(trace)
    canonical = to_bytes(source)
    written = json.dumps(trace.model_dump(mode="json"), indent=1, ensure_ascii=True).encode()
    head, rest = canonical.split(b',"trace":', 1)
    tail = rest[len(to_bytes(trace)) :]
    record = head + b',"trace":' + written + tail
    assert TraceNormalized.model_validate_json(record) == source
    forwarded = deduped(source)

    passed = to_bytes_passing_trace(forwarded, source, record)

    assert written in passed
    assert TraceDeduped.model_validate_json(passed) == forwarded
