"""Dedupe shell: traces.normalized → patterns in the store → traces.deduped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import Context, ContextRepo, FastStream
from faststream.kafka.annotations import KafkaMessage

from services.dedupe import logic
from services.dedupe.store import PatternStore, PostgresPatternStore
from services.dedupe.trajectory import trajectory
from shared import __version__, topics
from shared.db import open_store_pool
from shared.events import FixtureIndexed, TraceDeduped, TraceNormalized, advance
from shared.kafka import make_broker
from shared.log import configure_logging
from shared.ops import instrument
from shared.retention import retention
from shared.settings import get_settings
from shared.stage import Stage, parse, to_bytes

settings = get_settings()
logger = configure_logging("dedupe", settings.log_level)
broker = make_broker(settings, "dedupe", logger)
stage = Stage(broker, "dedupe", __version__)
deduped = broker.publisher(topics.DEDUPED)


@asynccontextmanager
async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
    pool = await open_store_pool(settings.dsn(), stage.name)
    context.set_global(
        "store", PostgresPatternStore(pool, max_exemplars=settings.dedupe_max_exemplars)
    )
    async with retention(pool, stage.name, settings):
        yield
    await pool.close()


app = FastStream(broker, logger=logger, lifespan=lifespan)
instrument(app, broker, stage.name, database=True)


@stage.subscriber(topics.NORMALIZED)
@stage.guarded
async def on_normalized(msg: KafkaMessage, store: PatternStore = Context()) -> None:
    event = parse(TraceNormalized, msg)
    observation = logic.observe(event.trace, event.features)
    recorded = await store.record(observation)
    today = observation.seen_at.date()
    days = await store.days(recorded.pattern_id, observation.agent, today)
    pattern = logic.with_trend(await store.pattern(recorded.pattern_id), days, today)
    if logic.should_forward(recorded, pattern.covered_by_fixture, logic.is_rising(pattern)):
        baseline = await store.baseline(observation.agent)
        reference, paths = await store.reference(observation)
        path_report = trajectory(event.trace, paths, reference)
        out = advance(
            event,
            TraceDeduped,
            stage.stamp(),
            pattern=pattern,
            baseline=baseline,
            trajectory=path_report,
        )
        await deduped.publish(to_bytes(out), key=pattern.pattern_id.encode())
    await store.mark_forwarded(event.trace_id)


@stage.subscriber(topics.FIXTURES_INDEX, purpose=topics.COVERAGE)
@stage.guarded
async def on_fixture_indexed(msg: KafkaMessage, store: PatternStore = Context()) -> None:
    event = parse(FixtureIndexed, msg)
    if logic.covers(event):
        await store.set_coverage(event.pattern_id, event.version, event.at)
    else:
        await store.clear_coverage(event.pattern_id)
