"""Dedupe shell: traces.normalized → patterns in the store → traces.deduped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiokafka import ConsumerRebalanceListener, TopicPartition
from faststream import ContextRepo, FastStream

from services.dedupe import logic
from services.dedupe.store import PatternSession, PatternStore, PostgresPatternStore
from services.dedupe.trajectory import trajectory
from shared import __version__, topics
from shared.db import open_store_pool
from shared.events import FixtureIndexed, TraceDeduped, TraceNormalized, advance
from shared.kafka import make_broker
from shared.kernel import Item, Outbox, process
from shared.log import configure_logging
from shared.ops import instrument
from shared.retention import retention
from shared.settings import get_settings
from shared.stage import KafkaMessage, Resolved, Stage, to_bytes_passing_trace

settings = get_settings()
logger = configure_logging("dedupe", settings.log_level)
broker = make_broker(settings, "dedupe", logger)
stage = Stage(broker, "dedupe", __version__)
deduped = broker.publisher(topics.DEDUPED)


@asynccontextmanager
async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
    pool = await open_store_pool(settings.dsn(), stage.name)
    store = PostgresPatternStore(
        pool,
        max_exemplars=settings.dedupe_max_exemplars,
        kept_patterns=settings.dedupe_kept_patterns,
    )
    revocations.store = store
    context.set_global("store", store)
    async with retention(pool, stage.name, settings):
        yield
    await pool.close()


app = FastStream(broker, logger=logger, lifespan=lifespan)
instrument(app, broker, stage.name, database=True)


class ForgetRevokedBuckets(ConsumerRebalanceListener):
    """What the store kept of the buckets of a partition is dropped when the partition
    goes: its next owner writes them. (The store's version check would catch it too, one
    batch later: this keeps memory to the partitions held.)"""

    store: PatternStore | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked and self.store is not None:
            self.store.forget()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


revocations = ForgetRevokedBuckets()


@stage.batch_subscriber(topics.NORMALIZED, listener=revocations)
async def on_normalized(msg: KafkaMessage, store: PatternStore = Resolved()) -> None:
    async def dedupe(items: Sequence[Item[TraceNormalized]], out: Outbox) -> None:
        observations = [
            logic.observe(i.event.trace, i.event.features, i.record.value) for i in items
        ]
        # One transaction for the batch: its traces are recorded in order under their
        # buckets' locks, and what goes on is published only once it is committed.
        async with store.batch(o.bucket for o in observations) as session:
            await session.prefetch(observations)
            for item, observation in zip(items, observations, strict=True):
                forwarded = await deduped_event(session, item.event, observation)
                if forwarded is not None:
                    body = to_bytes_passing_trace(forwarded, item.event, item.record.value)
                    out.publish(deduped, body, key=forwarded.pattern.pattern_id.encode())
        await out.flush()
        await store.mark_forwarded([o.trace_id for o in observations])

    await process(stage, msg, TraceNormalized, dedupe)


async def deduped_event(
    session: PatternSession, event: TraceNormalized, observation: logic.Observation
) -> TraceDeduped | None:
    recorded = await session.record(observation)
    if not logic.may_forward(recorded):
        return None
    today = observation.seen_at.date()
    days = await session.days(recorded.pattern_id, observation.agent, today)
    pattern = logic.with_trend(await session.pattern(recorded.pattern_id), days, today)
    if not logic.should_forward(recorded, pattern.covered_by_fixture, logic.is_rising(pattern)):
        return None
    reference, paths = await session.reference(observation)
    return advance(
        event,
        TraceDeduped,
        stage.stamp(),
        pattern=pattern,
        baseline=await session.baseline(observation.agent),
        trajectory=trajectory(event.trace, paths, reference),
    )


@stage.batch_subscriber(topics.FIXTURES_INDEX, purpose=topics.COVERAGE)
async def on_fixture_indexed(msg: KafkaMessage, store: PatternStore = Resolved()) -> None:
    async def follow(items: Sequence[Item[FixtureIndexed]], out: Outbox) -> None:
        for item in items:
            event = item.event
            if logic.covers(event):
                await store.set_coverage(event.pattern_id, event.version, event.at)
            else:
                await store.clear_coverage(event.pattern_id)

    await process(stage, msg, FixtureIndexed, follow)
