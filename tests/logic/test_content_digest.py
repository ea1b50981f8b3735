"""A trace's content digest, taken from the record it arrived in rather than serialised
again: the same digest either way, whatever the trace holds."""

from __future__ import annotations

import hashlib
import json

import pytest

from services.dedupe.logic import content_sha256, observe, trace_json_in
from shared.events import Trace, TraceNormalized
from shared.features import derive_features
from shared.stage import to_bytes
from tests.support.builders import refund_trace, trace_with_lookalikes
from tools.corpus.generate import generate

pytestmark = pytest.mark.logic


def serialised_digest(trace: Trace) -> str:
    return hashlib.sha256(trace.model_dump_json().encode()).hexdigest()


def record_of(trace: Trace) -> bytes:
    return to_bytes(
        TraceNormalized(trace_id=trace.trace_id, trace=trace, features=derive_features(trace))
    )


def test_the_digest_read_from_a_published_record_is_the_digest_of_the_trace_serialised() -> None:
    traces = [c.trace for c in generate(seed=11, scale=1)][:120]
    assert len(traces) == 120
    for trace in traces:
        record = record_of(trace)
        assert trace_json_in(record) == trace.model_dump_json().encode()
        assert content_sha256(trace, record) == serialised_digest(trace)


def test_keys_and_quotes_inside_the_trace_do_not_move_where_its_json_is_read() -> None:
    lookalike = '"trace":{ ,"features":{ }'
    trace = trace_with_lookalikes(lookalike)
    record = record_of(trace)
    assert content_sha256(trace, record) == serialised_digest(trace)
    assert observe(trace, derive_features(trace), record).content_sha256 == serialised_digest(trace)


def test_a_record_laid_out_otherwise_has_its_trace_serialised_for_the_digest() -> None:
    trace = refund_trace()
    spaced = json.dumps(json.loads(record_of(trace)), indent=2).encode()
    features_first = json.dumps(
        {"features": derive_features(trace).model_dump(mode="json"), "trace_id": trace.trace_id}
    ).encode()
    assert trace_json_in(spaced) is None
    assert trace_json_in(features_first) is None
    assert content_sha256(trace, spaced) == serialised_digest(trace)
    assert content_sha256(trace, features_first) == serialised_digest(trace)


def test_a_changed_trace_in_its_record_changes_the_digest() -> None:
    first, second = refund_trace(amount=120), refund_trace(amount=121)
    assert content_sha256(first, record_of(first)) != content_sha256(second, record_of(second))
