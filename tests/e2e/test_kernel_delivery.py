"""The kernel's delivery on the real broker: a connected publisher's records go straight to
its aiokafka producer, with their keys and headers, and are counted by topic."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from promoter.supervisor import Endpoints
from shared import kernel
from shared.kafka import make_broker, producer_behind
from shared.ops import PUBLISHED
from shared.settings import Settings
from tools.bench.kafkautil import create_topics

pytestmark = pytest.mark.e2e


async def read_all(bootstrap: str, topic: str, wanted: int) -> list[tuple[bytes, bytes, dict]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        found: list[tuple[bytes, bytes, dict]] = []
        while len(found) < wanted:
            batch = await consumer.getmany(partition, timeout_ms=10_000)
            if not batch:
                break
            found += [(r.key, r.value, dict(r.headers)) for r in batch[partition]]
        return found
    finally:
        await consumer.stop()


def test_a_connected_publisher_hands_records_to_the_producer_with_keys_headers_and_counts(
    infra: Endpoints,
) -> None:
    topic = f"kernel-delivery-{secrets.token_hex(4)}"
    settings = Settings(kafka_bootstrap_servers=infra.kafka_bootstrap_servers)
    bodies = [f"record {i}".encode() for i in range(30)]

    async def story() -> tuple[bool, list[object], list[tuple[bytes, bytes, dict]], float]:
        await create_topics(infra.kafka_bootstrap_servers, [topic], partitions=1)
        broker = make_broker(settings, "kernel-delivery-test", logging.getLogger(__name__))
        publisher = broker.publisher(topic)
        await broker.start()
        try:
            counted = PUBLISHED.labels(topic, "acknowledged")
            before = counted._value.get()
            outcomes = await kernel.deliver(
                [
                    (publisher, body, f"k{i % 3}".encode(), {"content-type": "text/plain"})
                    if i % 2
                    else (publisher, body, f"k{i % 3}".encode(), None)
                    for i, body in enumerate(bodies)
                ]
            )
            direct = producer_behind(publisher) is not None
            return (
                direct,
                outcomes,
                await read_all(infra.kafka_bootstrap_servers, topic, len(bodies)),
                counted._value.get() - before,
            )
        finally:
            await broker.stop()

    direct, outcomes, found, counted = asyncio.run(story())

    assert direct, "a connected broker's publisher has a producer behind it"
    assert not [o for o in outcomes if isinstance(o, BaseException)], "all acknowledged"
    assert [value for _, value, _ in found] == bodies, "in order, nothing lost or doubled"
    assert [key for key, _, _ in found] == [f"k{i % 3}".encode() for i in range(len(bodies))]
    assert [h.get("content-type") for _, _, h in found] == [
        b"text/plain" if i % 2 else None for i in range(len(bodies))
    ], "headers as given, none added"
    assert counted == len(bodies)


def test_a_publisher_of_an_unconnected_broker_has_no_producer_behind_it() -> None:
    broker = make_broker(Settings(), "kernel-delivery-test", logging.getLogger(__name__))
    assert producer_behind(broker.publisher("any-topic")) is None
