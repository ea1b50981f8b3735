"""Fixture writer shell: traces.promoted → typed fixtures in PostgreSQL → fixtures.index."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from faststream import ContextRepo, FastStream

from services.fixture_writer import logic
from services.fixture_writer.reviewed import reviewed_case, reviewed_drafts
from services.fixture_writer.store import (
    HAND_POLICY,
    FixtureStore,
    FixtureWrites,
    PostgresFixtureStore,
)
from services.redaction.second_pass import find_leaks
from shared import __version__, topics
from shared.db import open_store_pool
from shared.events import CaseReviewed, TraceScored, Verdict
from shared.kafka import make_broker
from shared.kernel import Item, Outbox, headers_of, process
from shared.log import configure_logging
from shared.ops import fixture_change, instrument
from shared.retention import retention
from shared.settings import get_settings
from shared.stage import KafkaMessage, Resolved, Stage, now, to_bytes

settings = get_settings()
logger = configure_logging("fixture_writer", settings.log_level)
broker = make_broker(settings, "fixture_writer", logger)
stage = Stage(broker, "fixture_writer", __version__)
index = broker.publisher(topics.FIXTURES_INDEX)


@asynccontextmanager
async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
    pool = await open_store_pool(settings.dsn(), stage.name)
    context.set_global("store", PostgresFixtureStore(pool))
    async with retention(pool, stage.name, settings):
        yield
    await pool.close()


app = FastStream(broker, logger=logger, lifespan=lifespan)
instrument(app, broker, stage.name, database=True)


@stage.batch_subscriber(topics.PROMOTED)
async def on_promoted(msg: KafkaMessage, store: FixtureStore = Resolved()) -> None:
    async def write(items: Sequence[Item[TraceScored]], out: Outbox) -> None:
        await promote_batch(store, [item.event for item in items], now())

    await process(stage, msg, TraceScored, write)


async def promote_batch(store: FixtureStore, events: Sequence[TraceScored], at: datetime) -> None:
    """A batch of promotions in one transaction; the coverage it changed is read and
    published once it is committed (another connection would not see it before). The
    privacy check, pure and the costliest step, runs before the transaction opens."""
    checked = [(event, checked_drafts(logic.build_fixtures(event))) for event in events]
    changed: dict[tuple[str, str], None] = {}  # (pattern, policy), in arrival order
    async with store.batch() as session:
        await session.prefetch([(event, drafts.clean) for event, drafts in checked])
        for event, drafts in checked:
            if await write_checked(session, event, drafts, at):
                changed[(event.pattern.pattern_id, event.policy_version)] = None
    await publish_coverage(store, list(changed), at)


@stage.batch_subscriber(topics.REVIEWED, purpose=topics.REVIEWS)
async def on_reviewed(msg: KafkaMessage, store: FixtureStore = Resolved()) -> None:
    async def follow(items: Sequence[Item[CaseReviewed]], out: Outbox) -> None:
        for item in items:
            await follow_verdict(store, item.event)

    await process(stage, msg, CaseReviewed, follow)


async def follow_verdict(store: FixtureStore, verdict: CaseReviewed) -> None:
    """A person promoted a held case (its fixtures carry their expected behaviour) or
    retired a fixture by hand (the gate log says who and why). Other verdicts write nothing
    here (scoring follows rejections)."""
    if verdict.verdict == Verdict.PROMOTE and verdict.case is not None:
        case, at = reviewed_case(verdict), now()
        if await write_promoted(store, case, reviewed_drafts(verdict), at):
            await publish_coverage(store, [(case.pattern.pattern_id, case.policy_version)], at)
    elif verdict.verdict == Verdict.RETIRE and verdict.fixture_id is not None:
        retirement = logic.hand_retirement(verdict)
        at = now()
        pattern_id = await store.retire_by_hand(retirement, at)
        if pattern_id is not None:
            fixture_change("retired")
            await publish_coverage(store, [(pattern_id, HAND_POLICY)], at)


@dataclass(frozen=True)
class Checked:
    """A promotion's drafts after the write-time privacy check."""

    clean: list[logic.FixtureDraft]
    blocked: list[tuple[logic.FixtureDraft, list[str]]]


def checked_drafts(drafts: list[logic.FixtureDraft]) -> Checked:
    return Checked(*logic.privacy_checked(drafts, find_leaks))


async def write_promoted(
    store: FixtureWrites, event: TraceScored, drafts: list[logic.FixtureDraft], at: datetime
) -> bool:
    """Writes a promotion's fixtures; True when the pattern's coverage changed."""
    return await write_checked(store, event, checked_drafts(drafts), at)


async def write_checked(
    store: FixtureWrites, event: TraceScored, drafts: Checked, at: datetime
) -> bool:
    await store.record_decision(event, at)
    for draft, reasons in drafts.blocked:
        await store.block(draft.fixture_id, event.trace_id, "; ".join(reasons), at)
        stage.log.warning("fixture_blocked", fixture_id=draft.fixture_id, reasons=reasons)
    fixture_change("blocked", len(drafts.blocked))
    written = [await store.write(draft, event, at) for draft in drafts.clean]
    for w in written:
        if w.created:
            fixture_change("written" if w.version <= 1 else "versioned")
        elif w.restored:
            fixture_change("restored")
    if any(w.superseded for w in written):
        stage.log.info("promotion_superseded", trace_id=event.trace_id)
    return any(not w.superseded for w in written)


@stage.batch_subscriber(topics.SCORED, purpose=topics.WITHDRAWALS)
async def on_scored(msg: KafkaMessage, store: FixtureStore = Resolved()) -> None:
    async def withdraw(items: Sequence[Item[TraceScored]], out: Outbox) -> None:
        for item in items:
            await withdraw_promotion(store, item.event)

    # A live decision never re-decides a trace, so it withdraws nothing: not even parsed.
    await process(
        stage,
        msg,
        TraceScored,
        withdraw,
        wanted=lambda record: topics.replayed(headers_of(record)),
    )


async def withdraw_promotion(store: FixtureStore, event: TraceScored) -> None:
    if not logic.withdraws_promotion(event):
        return
    at = now()
    withdrawal = await store.withdraw(event, at)
    for fixture_id, action, version in withdrawal.changed:
        stage.log.info(action, fixture_id=fixture_id, version=version, trace_id=event.trace_id)
        fixture_change(action)
    if withdrawal.sourced:
        await publish_coverage(store, [(withdrawal.pattern_id, event.policy_version)], at)


async def publish_coverage(
    store: FixtureStore, changed: Sequence[tuple[str, str]], at: datetime
) -> None:
    """Publishes the coverage of each changed (pattern, policy), all read in one
    transaction. Each record is handed to the producer under its pattern's lock (so records
    of one pattern are queued in the order their states were read), but the broker's
    acknowledgements are awaited after the transaction and locks are released: a slow
    Kafka holds no database connection, transaction or advisory lock."""
    if not changed:
        return
    async with store.active_fixtures_of(pattern_id for pattern_id, _ in changed) as active:
        deliveries = [
            await index.publish(
                to_bytes(logic.active_coverage(pattern_id, active[pattern_id], policy, at)),
                key=pattern_id.encode(),
                no_confirm=True,
            )
            for pattern_id, policy in changed
        ]
    for delivery in deliveries:
        if delivery is not None:
            await delivery
