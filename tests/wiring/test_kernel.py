"""The batched kernel's guarantees, driven with literal records and fakes of the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError
from pydantic import BaseModel, ConfigDict

from shared import kernel
from shared.kernel import Item, Outbox, process

pytestmark = pytest.mark.wiring


class Said(BaseModel):
    model_config = ConfigDict(frozen=True)
    trace_id: str
    text: str


def record(offset: int, body: bytes, partition: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="traces.test",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=body,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(body),
        headers=(),
    )


def said(offset: int, text: str) -> ConsumerRecord[bytes, bytes]:
    return record(offset, Said(trace_id=f"t{offset}", text=text).model_dump_json().encode())


class FakeStage:
    name = "test"
    log = structlog.get_logger()

    def __init__(self) -> None:
        self.dead: list[tuple[int, str]] = []

    async def dead_letter_record(self, rec: ConsumerRecord[bytes, bytes], error: Exception) -> None:
        self.dead.append((rec.offset, type(error).__name__))


class FakePublisher:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.sent: list[bytes] = []
        self.fail_with = fail_with

    async def publish(self, body: bytes, **options: Any) -> asyncio.Future[None]:
        assert options["no_confirm"] is True, "outputs are handed over unawaited"
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_with is not None:
            delivery.set_exception(self.fail_with)
        else:
            self.sent.append(body)
            delivery.set_result(None)
        return delivery


def batch(*records: ConsumerRecord[bytes, bytes]) -> Any:
    return SimpleNamespace(raw_message=tuple(records))


def echo(out_to: FakePublisher, seen: list[list[str]]) -> Any:
    async def step(items: Sequence[Item[Said]], out: Outbox) -> None:
        seen.append([i.event.text for i in items])
        for item in items:
            if item.event.text == "poison":
                raise ValueError("cannot handle this one")
            out.publish(out_to, item.event.text.encode(), key=item.event.trace_id.encode())

    return step


async def test_a_record_that_does_not_parse_is_dead_lettered_alone_and_the_rest_go_on() -> None:
    stage, publisher = FakeStage(), FakePublisher()
    seen: list[list[str]] = []
    msg = batch(said(0, "a"), record(1, b"{not json"), said(2, "b"))

    await process(stage, msg, Said, echo(publisher, seen))  # type: ignore[arg-type]

    assert stage.dead == [(1, "ValidationError")]
    assert seen == [["a", "b"]], "one step for the whole parsed batch"
    assert publisher.sent == [b"a", b"b"]


async def test_a_poison_record_fails_the_batch_and_only_it_becomes_a_dead_letter() -> None:
    stage, publisher = FakeStage(), FakePublisher()
    seen: list[list[str]] = []
    msg = batch(said(0, "a"), said(1, "poison"), said(2, "b"))

    await process(stage, msg, Said, echo(publisher, seen))  # type: ignore[arg-type]

    assert stage.dead == [(1, "ValueError")]
    assert seen[0] == ["a", "poison", "b"] and seen[1:] == [["a"], ["poison"], ["b"]]
    assert publisher.sent == [b"a", b"b"], "the failed batch's outputs were never handed over"


async def test_a_transient_failure_releases_the_batch_without_dead_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kernel, "TRANSIENT_RETRY_WINDOW_S", 0.0)
    stage = FakeStage()
    seen: list[list[str]] = []
    publisher = FakePublisher(fail_with=KafkaConnectionError("broker away"))
    msg = batch(said(0, "a"), said(1, "b"))

    with pytest.raises(KafkaConnectionError):
        await process(stage, msg, Said, echo(publisher, seen))  # type: ignore[arg-type]

    assert stage.dead == [], "an outage never makes a dead letter"
    assert publisher.sent == []


async def test_records_a_step_does_not_want_are_neither_parsed_nor_dead_lettered() -> None:
    stage, publisher = FakeStage(), FakePublisher()
    seen: list[list[str]] = []
    msg = batch(said(0, "a"), record(1, b"not for this step"))

    await process(
        stage,  # type: ignore[arg-type]
        msg,
        Said,
        echo(publisher, seen),
        wanted=lambda r: r.offset != 1,
    )

    assert stage.dead == [] and seen == [["a"]]


class FakeConsumer:
    """Replies to each poll with the next of ``replies`` (partition -> records)."""

    def __init__(self, *replies: dict[str, list[int]]) -> None:
        self.replies = list(replies)
        self.polls: list[dict[str, Any]] = []

    async def getmany(self, **options: Any) -> dict[str, list[int]]:
        self.polls.append(options)
        return self.replies.pop(0)


async def test_a_batch_subscription_polls_again_at_once_after_an_empty_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faststream.kafka import KafkaBroker

    from shared.stage import poll_promptly

    async def no_pause(*_: Any) -> None:
        raise AssertionError("slept after an empty poll")

    monkeypatch.setattr("anyio.sleep", no_pause)
    subscriber = KafkaBroker().subscriber("t", batch=True, max_records=7, batch_timeout_ms=30)
    poll_promptly(subscriber)
    consumer = FakeConsumer({}, {"p0": [1, 2], "p1": [3]})

    assert await subscriber.get_msg(consumer) == ()
    assert await subscriber.get_msg(consumer) == (1, 2, 3)
    assert consumer.polls == [{"timeout_ms": 30, "max_records": 7}] * 2


async def test_a_poll_that_returned_records_is_topped_up_with_what_arrived_meanwhile() -> None:
    from faststream.kafka import KafkaBroker

    from shared.stage import poll_promptly

    subscriber = KafkaBroker().subscriber("t", batch=True, max_records=7, batch_timeout_ms=30)
    poll_promptly(subscriber, top_up_ms=4)
    consumer = FakeConsumer(
        {"p0": [1, 2], "p1": [3]},
        {"p1": [4], "p2": [5]},  # the top-up: p1's next record, and p2's first
        {},  # an empty poll is not topped up
        {"p0": [6, 7, 8, 9, 10, 11, 12]},  # nor a full one
    )

    assert await subscriber.get_msg(consumer) == (1, 2, 3, 4, 5), "partition by partition"
    assert await subscriber.get_msg(consumer) == ()
    assert await subscriber.get_msg(consumer) == (6, 7, 8, 9, 10, 11, 12)
    assert consumer.polls == [
        {"timeout_ms": 30, "max_records": 7},
        {"timeout_ms": 4, "max_records": 4},
        {"timeout_ms": 30, "max_records": 7},
        {"timeout_ms": 30, "max_records": 7},
    ]


def test_a_stage_waits_for_its_side_subscriptions_records_longer_than_for_its_own() -> None:
    from faststream.kafka import KafkaBroker

    from shared.settings import get_settings
    from shared.stage import Stage

    settings = get_settings()
    stage = Stage(KafkaBroker(), "test", "1")
    main = stage.batch_subscriber("traces.test")
    side = stage.batch_subscriber("traces.side", purpose="coverage")

    assert main._connection_args["fetch_max_wait_ms"] == settings.kafka_fetch_max_wait_ms
    assert side._connection_args["fetch_max_wait_ms"] == settings.kafka_side_fetch_max_wait_ms
    assert settings.kafka_side_fetch_max_wait_ms > settings.kafka_fetch_max_wait_ms


class RefusingPublisher:
    """Refuses before handing over, as a producer whose buffer is full does."""

    async def publish(self, body: bytes, **options: Any) -> asyncio.Future[None]:
        raise KafkaConnectionError("no room")


async def test_delivering_gives_one_outcome_per_record_in_order_failures_included() -> None:
    good, bad = FakePublisher(), FakePublisher(fail_with=ValueError("refused by the broker"))
    refusing = RefusingPublisher()

    outcomes = await kernel.deliver(
        [
            (good, b"1", b"k", None),
            (refusing, b"2", b"k", None),
            (bad, b"3", None, None),
            (good, b"4", b"k", {"h": "v"}),
        ]
    )

    assert outcomes[0] is None and outcomes[3] is None, "acknowledged"
    assert isinstance(outcomes[1], KafkaConnectionError), "refused before the producer"
    assert isinstance(outcomes[2], ValueError), "failed at the broker"
    assert good.sent == [b"1", b"4"], "every record after a refusal is still handed over"
