"""The redaction step: features follow the clean trace, derived again only when
redaction changed it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.redaction.step import redacted_events
from shared.events import StageStamp, TraceDeduped
from shared.features import derive_features
from tests.support.builders import pattern_info, refund_trace

pytestmark = pytest.mark.logic

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def deduped(trace_input: str) -> TraceDeduped:
    base = refund_trace()
    root = base.spans[0].model_copy(update={"input": trace_input})
    trace = base.model_copy(update={"spans": (root, *base.spans[1:])})
    return TraceDeduped(
        trace_id=trace.trace_id,
        stages=(StageStamp(stage="dedupe", version="test", at=AT),),
        trace=trace,
        features=derive_features(trace),
        pattern=pattern_info(),
    )


STAMP = StageStamp(stage="redaction", version="test", at=AT)


def test_an_untouched_trace_keeps_its_trace_and_features_objects() -> None:
    event = deduped("Refund my last order please")
    (out,) = redacted_events([event], STAMP)
    assert out.trace is event.trace
    assert out.features is event.features
    assert out.redaction.counts == {}


def test_a_redacted_trace_gets_features_of_its_clean_text() -> None:
    event = deduped("Refund my last order please, I am jane@example.org")
    (out,) = redacted_events([event], STAMP)
    assert out.trace is not event.trace
    assert out.features == derive_features(out.trace)
    assert "jane@example.org" not in (out.features.user_request or "")
    assert "<EMAIL_1>" in (out.features.user_request or "")


def test_the_step_advances_every_event_with_the_stage_stamp() -> None:
    events = [deduped("Refund my last order please"), deduped("mail jane@example.org")]
    outs = redacted_events(events, STAMP)
    assert [o.stages[-1] for o in outs] == [STAMP, STAMP]
    assert [o.pattern for o in outs] == [e.pattern for e in events]


def test_upstream_features_holding_what_the_trace_does_not_are_derived_again() -> None:
    # The stage is the privacy boundary: features written by something other than ingest
    # may say more than their trace, and are not passed on on trust.
    event = deduped("Refund my last order please")
    leaky = event.features.model_copy(update={"user_request": "mail jane@example.org"})
    (out,) = redacted_events([event.model_copy(update={"features": leaky})], STAMP)
    assert out.trace is event.trace
    assert out.features == derive_features(event.trace)
    assert "jane@example.org" not in out.features.model_dump_json()
