"""Kafka plumbing shared by every stage: the broker factory and topic administration."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from shared import topics
from shared.settings import Settings


def make_broker(settings: Settings, client_id: str) -> KafkaBroker:
    # Idempotent producer with acks=all: a publish returns only once the broker has the
    # record, and retries cannot duplicate it; offsets are committed after that.
    return KafkaBroker(
        settings.bootstrap_servers(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        linger_ms=5,
        graceful_timeout=20.0,
    )


async def ensure_topics(bootstrap: str, settings: Settings) -> list[str]:
    """Creates missing pipeline topics; returns the names it created. Never relies on
    broker auto-creation, so partition counts and retention are always what was asked."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="promote-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        for spec in topics.topic_specs(settings.raw_retention_ms, settings.kept_retention_ms):
            if spec.name in existing:
                continue
            config = {"retention.ms": str(spec.retention_ms)}
            if spec.compacted:
                config = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
            wanted.append(
                NewTopic(
                    spec.name,
                    num_partitions=settings.topic_partitions,
                    replication_factor=1 if _single_node(bootstrap) else 3,
                    topic_configs=config,
                )
            )
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another `up` raced us; the topics exist, which is all we need
        return [t.name for t in wanted]
    finally:
        await admin.close()


def _single_node(bootstrap: str) -> bool:
    return len([s for s in bootstrap.split(",") if s.strip()]) == 1


async def group_lag(
    bootstrap: str, group: str, topic_names: Iterable[str]
) -> dict[str, int]:
    """Records not yet committed by `group`, per topic (a group that never committed
    counts everything from the earliest retained offset)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="promote-admin")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        lag: dict[str, int] = {}
        for name in topic_names:
            partitions = consumer.partitions_for_topic(name)
            if partitions is None:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(name) or set()
            tps = [TopicPartition(name, p) for p in sorted(partitions)]
            if not tps:
                lag[name] = 0
                continue
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            total = 0
            for tp in tps:
                meta = committed.get(tp)
                position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
                total += max(0, ends[tp] - position)
            lag[name] = total
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Everything currently retained in a topic, without joining any consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                values.extend(r.value for r in records if r.value is not None)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return values
    finally:
        await consumer.stop()
