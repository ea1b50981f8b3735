"""Kafka plumbing of the harness: bench topics, producing with send times, reading what a
run appended, and watching consumer-group lag with long-lived clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.kafka import admin_client, make_consumer, make_producer, partitions_of
from shared.settings import Settings

CLIENT_ID = "promote-bench"


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    # The product's consumer (fetches sized to its message limit), joining no group.
    return make_consumer(Settings(), bootstrap_servers=bootstrap, client_id=CLIENT_ID)


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    trace_id: str | None = None


def quiet_kafka_logs() -> None:
    # Refused connections while clients start, rebalances of the hop processes: expected.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                n,
                num_partitions=partitions,
                replication_factor=1 if "," not in bootstrap else 3,
                topic_configs={"retention.ms": str(3_600_000)},
            )
            for n in names
            if n not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
        # Wait until every partition has a leader: a producer started earlier would fail.
        deadline = time.monotonic() + 30
        while True:
            try:
                await partitions_of(admin, set(names))
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)


@dataclass
class Sent:
    first_send_perf: float
    first_send_wall: float
    acked_perf: float
    count: int
    send_wall: dict[str, float]  # trace id -> wall-clock time just before its send


async def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[Message],
    *,
    pace_per_s: float | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> Sent:
    """Publishes messages (as fast as the producer goes, or paced at ``pace_per_s``); the
    producer is started before the clock starts. Returns when every send is acknowledged.
    The producer is `promote send`'s: the one configuration of shared/kafka.py."""
    producer = make_producer(Settings(), CLIENT_ID, bootstrap_servers=bootstrap)
    await producer.start()
    try:
        futures = []
        send_wall: dict[str, float] = {}
        first_perf = time.perf_counter()
        first_wall = time.time()
        for i, m in enumerate(messages):
            if pace_per_s:
                due = first_perf + i / pace_per_s
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if m.trace_id is not None:
                send_wall[m.trace_id] = time.time()
            futures.append(
                await producer.send(topic, m.value, key=m.key, headers=list(m.headers) or None)
            )
            if on_sent is not None and i % 50 == 0:
                on_sent(i)
        for future in futures:
            await future
        if on_sent is not None:
            on_sent(len(messages))
        return Sent(first_perf, first_wall, time.perf_counter(), len(messages), send_wall)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    async with admin_client(bootstrap) as admin:
        tps = [tp for tps in (await partitions_of(admin, set(topics))).values() for tp in tps]
    consumer = _consumer(bootstrap)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Record:
    topic: str
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


async def read_since(
    bootstrap: str, starts: dict[TopicPartition, int], topics: Sequence[str] | None = None
) -> list[Record]:
    """Every record appended after ``starts`` (offsets taken before a run) up to the end
    offsets seen now, without joining any consumer group."""
    tps = [tp for tp in starts if topics is None or tp.topic in topics]
    if not tps:
        return []
    consumer = _consumer(bootstrap)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        out: list[Record] = []
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                out.extend(
                    Record(tp.topic, r.timestamp, r.key, r.value)
                    for r in records
                    if r.offset < ends[tp]
                )
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return out
    finally:
        await consumer.stop()


def counts_since(
    starts: dict[TopicPartition, int], ends: dict[TopicPartition, int]
) -> dict[str, int]:
    """Records appended per topic between two end-offset snapshots."""
    out: dict[str, int] = {}
    for tp, end in ends.items():
        out[tp.topic] = out.get(tp.topic, 0) + end - starts.get(tp, 0)
    return out


class LagWatcher:
    """Consumer-group lag with clients kept open, so it can be polled every few ms."""

    admin: AIOKafkaAdminClient

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer = _consumer(bootstrap)
        self._tps: dict[str, list[TopicPartition]] = {}
        self._open = contextlib.AsyncExitStack()

    async def __aenter__(self) -> LagWatcher:
        self.admin = await self._open.enter_async_context(admin_client(self.bootstrap))
        await self.consumer.start()
        self._open.push_async_callback(self.consumer.stop)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._open.aclose()

    async def lag(self, group: str, topics: Sequence[str]) -> int:
        missing = {t for t in topics if t not in self._tps}
        if missing:
            self._tps.update(await partitions_of(self.admin, missing))
        tps = [tp for t in topics for tp in self._tps[t]]
        ends = await self.consumer.end_offsets(tps)
        committed = await self.admin.list_consumer_group_offsets(group)
        starts: dict[TopicPartition, int] = {}
        total = 0
        for tp in tps:
            meta = committed.get(tp)
            if meta is None or meta.offset < 0:
                # Never committed: everything retained is still to do (as groups_lag).
                if not starts:
                    starts = await self.consumer.beginning_offsets(tps)
                position = starts[tp]
            else:
                position = meta.offset
            total += max(0, ends[tp] - position)
        return total

    async def wait_zero(
        self,
        group: str,
        topics: Sequence[str],
        timeout_s: float,
        interval_s: float = 0.05,
        on_lag: Callable[[int], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> float:
        """perf_counter time at which the group's lag was first seen at 0."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check is not None:
                check()
            lag = await self.lag(group, topics)
            if on_lag is not None:
                on_lag(lag)
            if lag == 0:
                return time.perf_counter()
            await asyncio.sleep(interval_s)
        raise TimeoutError(f"group {group} still lagging after {timeout_s:.0f}s")

    async def wait_idle(
        self,
        wanted: dict[str, tuple[str, ...]],
        timeout_s: float,
        interval_s: float = 0.5,
        on_lag: Callable[[int], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> float:
        """The same rule as `promote wait` (promoter.lag.wait_for_idle): every group at lag
        0 on two readings in a row, ``interval_s`` apart. perf_counter time of the second."""
        deadline = time.monotonic() + timeout_s
        idle = 0
        while time.monotonic() < deadline:
            if check is not None:
                check()
            busy = 0
            for group, topics in wanted.items():
                busy += await self.lag(group, topics)
            if on_lag is not None:
                on_lag(busy)
            idle = idle + 1 if busy == 0 else 0
            if idle >= 2:
                return time.perf_counter()
            await asyncio.sleep(interval_s)
        raise TimeoutError(f"still busy after {timeout_s:.0f}s")
