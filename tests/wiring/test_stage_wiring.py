"""Handler wiring on the in-memory broker: what each shell publishes for a given input.
Offsets and partitions are meaningless here; the e2e tier covers them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from services.dedupe.store import InMemoryPatternStore
from services.ingest.logic import normalize
from shared import topics
from shared.events import DeadLettered, Span, SpanKind, SpanStatus, StageStamp, Trace

pytestmark = pytest.mark.wiring

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def a_trace(trace_id: str = "a" * 32) -> Trace:
    return Trace(
        trace_id=trace_id,
        session_id="s-1",
        user_id="u-1",
        agent_name="support-agent",
        agent_version="1.4.0",
        spans=(
            Span(
                span_id="1" * 16,
                name="agent",
                kind=SpanKind.AGENT,
                start_time=T0,
                end_time=T0 + timedelta(seconds=3),
                status=SpanStatus.OK,
                input="where is my parcel?",
                output="It ships tomorrow.",
            ),
            Span(
                span_id="2" * 16,
                parent_span_id="1" * 16,
                name="lookup_order",
                kind=SpanKind.TOOL,
                tool_name="lookup_order",
                tool_arguments='{"id": 7}',
                start_time=T0 + timedelta(seconds=1),
                end_time=T0 + timedelta(seconds=2),
                status=SpanStatus.OK,
            ),
        ),
    )


def normalized_bytes(trace: Trace) -> bytes:
    stamp = StageStamp(stage="ingest", version="test", at=T0)
    return normalize([trace], stamp)[0].model_dump_json().encode()


async def test_dedupe_forwards_a_new_trace_with_its_pattern_once() -> None:
    from services.dedupe import app as dedupe

    store = InMemoryPatternStore()
    async with TestKafkaBroker(dedupe.broker) as broker:
        broker.context.set_global("store", store)
        await broker.publish(normalized_bytes(a_trace()), topics.NORMALIZED)
        await broker.publish(normalized_bytes(a_trace()), topics.NORMALIZED)

        assert dedupe.deduped.mock is not None
        assert dedupe.deduped.mock.call_count == 1, "the redelivery is not forwarded again"
        forwarded = dedupe.deduped.mock.call_args.args[0]
        assert forwarded["pattern"]["occurrences"] == 1
        assert [s["stage"] for s in forwarded["stages"]] == ["ingest", "dedupe"]


async def test_a_stage_handler_gets_its_batch_and_store_without_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fast_depends.utils

    from services.dedupe import app as dedupe

    def no_thread(*_: object, **__: object) -> None:
        raise AssertionError("a handler parameter was resolved in a worker thread")

    monkeypatch.setattr(fast_depends.utils, "run_in_threadpool", no_thread)
    async with TestKafkaBroker(dedupe.broker) as broker:
        broker.context.set_global("store", InMemoryPatternStore())
        await broker.publish(normalized_bytes(a_trace("b" * 32)), topics.NORMALIZED)

        assert dedupe.deduped.mock is not None
        assert dedupe.deduped.mock.call_count == 1


class ForgetfulStore(InMemoryPatternStore):
    forgotten: int = 0

    def forget(self) -> None:
        self.forgotten += 1


async def test_dedupe_forgets_what_it_kept_when_its_input_partitions_are_revoked() -> None:
    from aiokafka import TopicPartition

    from services.dedupe import app as dedupe

    store = ForgetfulStore()
    subscribers: list[Any] = list(dedupe.broker.subscribers)
    listeners = {  # the listener each consumer is built with
        tuple(t.name for t in s.topics): s._listener for s in subscribers
    }
    revocations = listeners[(topics.NORMALIZED,)]
    assert revocations is dedupe.revocations
    revocations.store = store
    try:
        await revocations.on_partitions_revoked(set())
        assert store.forgotten == 0, "a rebalance that took nothing away keeps it all"
        await revocations.on_partitions_revoked({TopicPartition(topics.NORMALIZED, 1)})
        assert store.forgotten == 1
    finally:
        revocations.store = None


async def test_dedupe_dead_letters_a_body_that_is_not_a_normalized_trace() -> None:
    from services.dedupe import app as dedupe

    async with TestKafkaBroker(dedupe.broker) as broker:
        broker.context.set_global("store", InMemoryPatternStore())
        await broker.publish(b"{not json", topics.NORMALIZED)

        dlq_mock = dedupe.stage._dlq.mock
        assert dlq_mock is not None
        letter = DeadLettered.model_validate(dlq_mock.call_args.args[0])
        assert letter.stage == "dedupe"
        assert letter.error_class == "ValidationError"
        assert dedupe.deduped.mock is None or dedupe.deduped.mock.call_count == 0


def deduped_bytes(trace: Trace) -> bytes:
    from shared.events import TraceDeduped, advance
    from tests.support.builders import pattern_info

    event = normalize([trace], StageStamp(stage="ingest", version="test", at=T0))[0]
    stamp = StageStamp(stage="dedupe", version="test", at=T0)
    return advance(event, TraceDeduped, stamp, pattern=pattern_info()).model_dump_json().encode()


async def test_redaction_sends_a_trace_whose_detector_raises_to_the_dlq_and_nothing_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from collections.abc import Iterator
    from functools import partial

    from services.redaction import app as redaction
    from services.redaction.detectors import DEFAULT_DETECTORS, Detector, Finding
    from services.redaction.logic import redact_trace
    from services.redaction.scanner import Scanner

    def explode(text: str) -> Iterator[Finding]:
        raise RuntimeError("detector bug")

    broken = Scanner((*DEFAULT_DETECTORS, Detector("exploding", ("parcel",), explode)))
    monkeypatch.setattr(redaction.step, "redact_trace", partial(redact_trace, scanner=broken))
    async with TestKafkaBroker(redaction.broker) as broker:
        await broker.publish(deduped_bytes(a_trace()), topics.DEDUPED)

        dlq_mock = redaction.stage._dlq.mock
        assert dlq_mock is not None
        letter = DeadLettered.model_validate(dlq_mock.call_args.args[0])
        assert (letter.stage, letter.error_class) == ("redaction", "RedactionFailed")
        assert letter.trace_id == a_trace().trace_id
        assert redaction.redacted.mock is None or redaction.redacted.mock.call_count == 0


async def test_redaction_forwards_a_clean_trace_with_its_report() -> None:
    from services.redaction import app as redaction

    trace = a_trace()
    root = trace.spans[0].model_copy(
        update={"input": "where is my parcel? mail me at a@example.com"}
    )
    async with TestKafkaBroker(redaction.broker) as broker:
        await broker.publish(
            deduped_bytes(trace.model_copy(update={"spans": (root, *trace.spans[1:])})),
            topics.DEDUPED,
        )
        assert redaction.redacted.mock is not None
        out = redaction.redacted.mock.call_args.args[0]
        assert "a@example.com" not in json.dumps(out)
        assert out["redaction"]["counts"] == {"EMAIL": 1}
        assert "<EMAIL_1>" in out["features"]["user_request"]


async def test_redaction_forwards_a_trace_with_nothing_to_redact_as_it_arrived() -> None:
    from services.redaction import app as redaction

    body = deduped_bytes(a_trace())
    async with TestKafkaBroker(redaction.broker) as broker:
        await broker.publish(body, topics.DEDUPED)
        assert redaction.redacted.mock is not None
        out = redaction.redacted.mock.call_args.args[0]
        sent = json.loads(body)
        assert out["redaction"]["counts"] == {}
        assert (out["trace"], out["features"]) == (sent["trace"], sent["features"])
        assert [s["stage"] for s in out["stages"]] == ["ingest", "dedupe", "redaction"]


async def test_fixture_writer_withdraws_a_promotion_only_on_a_replays_word() -> None:
    from services.fixture_writer import app as writer
    from services.fixture_writer.memory_store import InMemoryFixtureStore
    from shared.events import Decision
    from tests.support.builders import refund_trace, scored

    store = InMemoryFixtureStore()
    promoted = scored(refund_trace(), policy_version="lenient")
    rejected = scored(refund_trace(), policy_version="strict", decision=Decision.REJECT)
    async with TestKafkaBroker(writer.broker) as broker:
        broker.context.set_global("store", store)
        await broker.publish(promoted.model_dump_json().encode(), topics.PROMOTED)
        assert store.fixtures and all(f.status == "active" for f in store.fixtures.values())

        live = {topics.DECIDED_BY_HEADER: "scoring"}
        await broker.publish(rejected.model_dump_json().encode(), topics.SCORED, headers=live)
        assert all(f.status == "active" for f in store.fixtures.values()), "live: no change"

        replayed = {topics.DECIDED_BY_HEADER: topics.REPLAY_STAGE}
        await broker.publish(rejected.model_dump_json().encode(), topics.SCORED, headers=replayed)
        assert all(f.status == "retired" for f in store.fixtures.values())
        assert writer.index.mock is not None
        uncovered = writer.index.mock.call_args.args[0]
        assert uncovered["pattern_id"] == promoted.pattern.pattern_id
        assert uncovered["fixture_ids"] == []
