"""Reliability of the stage guard on the in-memory broker: an outage is retried and never
dead-letters real data; a poison message is dead-lettered once and never loops; a decision
spends a pattern's budget only once its record is on the broker."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, LeaderNotAvailableError
from faststream.kafka import TestKafkaBroker

from services.dedupe.store import InMemoryPatternStore
from shared import topics
from shared.events import DeadLettered, TraceRedacted
from tests.support.builders import refund_trace, scored
from tests.wiring.test_stage_wiring import a_trace, normalized_bytes

pytestmark = pytest.mark.wiring


class FailingFirst(InMemoryPatternStore):
    """A pattern store whose first ``record`` calls fail with the given errors."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__()
        self.errors = list(errors)
        self.calls = 0

    async def record(self, obs: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return await super().record(obs)


def admin_shutdown() -> asyncpg.PostgresError:
    return asyncpg.AdminShutdownError.new({"C": "57P01", "M": "terminating", "S": "FATAL"})


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(lambda: admin_shutdown(), id="postgres fast stop 57P01"),
        pytest.param(lambda: socket.gaierror(-2, "Name or service not known"), id="unresolvable"),
        pytest.param(lambda: OSError(113, "No route to host"), id="unreachable host"),
        pytest.param(lambda: LeaderNotAvailableError(), id="kafka leader not available"),
    ],
)
async def test_an_outage_during_a_handler_is_retried_and_the_trace_goes_on_not_to_the_dlq(
    outage: Any,
) -> None:
    from services.dedupe import app as dedupe

    store = FailingFirst([outage(), outage()])
    async with TestKafkaBroker(dedupe.broker) as broker:
        broker.context.set_global("store", store)
        await broker.publish(normalized_bytes(a_trace()), topics.NORMALIZED)

        assert store.calls == 3, "two failures, then the retry that worked"
        assert dedupe.deduped.mock is not None and dedupe.deduped.mock.call_count == 1
        dlq = dedupe.stage._dlq.mock
        assert dlq is None or dlq.call_count == 0, "an outage never makes a dead letter"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 200_000 + b"]" * 200_000, id="deep array"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="deep object"),
    ],
)
async def test_a_deeply_nested_message_is_dead_lettered_once_instead_of_looping(
    body: bytes,
) -> None:
    from services.dedupe import app as dedupe

    async with TestKafkaBroker(dedupe.broker) as broker:
        broker.context.set_global("store", InMemoryPatternStore())
        await broker.publish(body, topics.NORMALIZED)

        dlq = dedupe.stage._dlq.mock
        assert dlq is not None and dlq.call_count == 1
        letter = DeadLettered.model_validate(dlq.call_args.args[0])
        assert letter.stage == "dedupe"
        assert letter.payload_bytes == len(body)
        assert letter.trace_id is None


def redacted_bytes() -> bytes:
    event = scored(refund_trace())
    fields = {name: getattr(event, name) for name in TraceRedacted.model_fields}
    return TraceRedacted(**fields).model_dump_json().encode()


async def test_scoring_spends_no_budget_slot_when_the_promotion_cannot_be_published(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.scoring import app as scoring
    from services.scoring.store import InMemoryBudgetStore

    promoted = scored(refund_trace())
    monkeypatch.setattr(scoring.step.logic, "scored_event", lambda *a, **k: promoted)
    store = InMemoryBudgetStore()
    async with TestKafkaBroker(scoring.broker) as broker:
        broker.context.set_global("store", store)

        async def refuse(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the broker refused the record")

        monkeypatch.setattr(scoring.promoted, "publish", refuse)
        await broker.publish(redacted_bytes(), topics.REDACTED)
        assert store.promotions == {}, "a promotion that was never published holds no slot"

        monkeypatch.undo()
        monkeypatch.setattr(scoring.step.logic, "scored_event", lambda *a, **k: promoted)
        await broker.publish(redacted_bytes(), topics.REDACTED)
        assert list(store.promotions) == [(promoted.trace_id, scoring.policy.version)]


async def test_a_dead_letter_that_cannot_be_published_leaves_the_message_unacknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.dedupe import app as dedupe

    async def broker_down(*args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("down")

    monkeypatch.setattr(dedupe.stage, "dead_letter_record", broker_down)
    monkeypatch.setattr("shared.kernel.TRANSIENT_RETRY_WINDOW_S", 0.0)
    async with TestKafkaBroker(dedupe.broker) as broker:
        broker.context.set_global("store", InMemoryPatternStore())
        with pytest.raises(KafkaConnectionError):
            # In memory the nack surfaces as the exception; on Kafka the record is re-read.
            await dedupe.on_normalized(broker_message(b"{not json"), store=InMemoryPatternStore())


def broker_message(body: bytes) -> Any:
    from unittest.mock import MagicMock

    msg = MagicMock()
    msg.body = body
    msg.raw_message.topic = topics.NORMALIZED
    return msg


async def test_ingest_dead_letters_a_trace_the_broker_refuses_as_too_large_and_flushes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import timedelta

    from aiokafka.errors import MessageSizeTooLargeError

    from services.ingest import app as ingest

    async def too_large(*args: Any, **kwargs: Any) -> None:
        raise MessageSizeTooLargeError()

    async with TestKafkaBroker(ingest.broker):
        monkeypatch.setattr(ingest.normalized, "publish", too_large)
        monkeypatch.setattr(ingest.assembler, "max_wait", timedelta(0))
        ingest.assembler.add([a_trace("c0ffee" * 5 + "01")], (0, 0), 1_000, ingest.now())

        await ingest.flush()

        assert ingest.assembler.pending == {}, "the refused trace no longer holds the buffer"
        dlq = ingest.stage._dlq.mock
        assert dlq is not None and dlq.call_count == 1
        letter = DeadLettered.model_validate(dlq.call_args.args[0])
        assert letter.error_class == "MessageSizeTooLargeError"
        assert letter.trace_id == "c0ffee" * 5 + "01"


async def test_the_ingest_flusher_outlives_an_unexpected_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from services.ingest import app as ingest

    calls = 0
    survived = asyncio.Event()

    async def flaky_flush() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in one tick")
        survived.set()

    monkeypatch.setattr(ingest, "flush", flaky_flush)
    monkeypatch.setattr(ingest, "FLUSH_INTERVAL_S", 0.0)
    task = asyncio.create_task(ingest.flush_forever())
    try:
        await asyncio.wait_for(survived.wait(), timeout=10)
        assert not task.done()
    finally:
        task.cancel()


async def test_the_fixture_writer_waits_for_kafka_only_after_releasing_its_lock_and_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from contextlib import asynccontextmanager

    from services.fixture_writer import app as writer
    from services.fixture_writer.memory_store import InMemoryFixtureStore

    class Tracking(InMemoryFixtureStore):
        held = False

        @asynccontextmanager
        async def active_fixtures(self, pattern_id: str) -> Any:
            async with super().active_fixtures(pattern_id) as active:
                self.held = True
                try:
                    yield active
                finally:
                    self.held = False

    store = Tracking()
    held_while_waiting: list[bool] = []

    async def publish(*args: Any, no_confirm: bool = False, **kwargs: Any) -> Any:
        async def acknowledged() -> None:
            held_while_waiting.append(store.held)

        if no_confirm:
            return acknowledged()  # like the producer's delivery future, awaited later
        await acknowledged()
        return None

    async with TestKafkaBroker(writer.broker) as broker:
        broker.context.set_global("store", store)
        monkeypatch.setattr(writer.index, "publish", publish)
        await broker.publish(scored(refund_trace()).model_dump_json().encode(), topics.PROMOTED)

    assert held_while_waiting == [False]


async def test_ingest_forgets_a_trace_once_the_broker_acknowledged_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import timedelta

    from services.ingest import app as ingest

    async def acknowledged(*args: Any, **kwargs: Any) -> asyncio.Future[object]:
        assert kwargs.get("no_confirm") is True, "handed over, acknowledged later"
        delivery: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        delivery.set_result(object())  # a RecordMetadata stand-in: not None, not an exception
        return delivery

    async with TestKafkaBroker(ingest.broker):
        monkeypatch.setattr(ingest.normalized, "publish", acknowledged)
        monkeypatch.setattr(ingest.assembler, "max_wait", timedelta(0))
        ingest.assembler.add([a_trace("beef" * 8)], (0, 1), 1_000, ingest.now())

        await ingest.flush()

        assert ingest.assembler.pending == {}
        dlq = ingest.stage._dlq.mock
        assert dlq is None or dlq.call_count == 0
