"""Scoring shell: traces.redacted → a decision on traces.scored (and traces.promoted)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from faststream import ContextRepo, FastStream

from services.scoring import step
from services.scoring.policy import DEFAULT_POLICY_PATH, load_policy
from services.scoring.store import BudgetStore, PostgresBudgetStore
from services.scoring.verdicts import PostgresVerdictStore, VerdictStore, pattern_verdict
from shared import __version__, topics
from shared.db import open_store_pool
from shared.events import CaseReviewed, Decision, TraceRedacted, TraceScored, Verdict
from shared.kafka import make_broker
from shared.kernel import Item, Outbox, process
from shared.log import configure_logging
from shared.ops import decided as decided_metric
from shared.ops import instrument
from shared.retention import retention
from shared.settings import get_settings
from shared.stage import KafkaMessage, Resolved, Stage, to_bytes_passing_trace

settings = get_settings()
logger = configure_logging("scoring", settings.log_level)
policy = load_policy(settings.policy_path or DEFAULT_POLICY_PATH)
broker = make_broker(settings, "scoring", logger)
stage = Stage(broker, "scoring", __version__)
scored = broker.publisher(topics.SCORED)
promoted = broker.publisher(topics.PROMOTED)


@asynccontextmanager
async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
    pool = await open_store_pool(settings.dsn(), stage.name)
    context.set_global("store", PostgresBudgetStore(pool))
    context.set_global("verdicts", PostgresVerdictStore(pool))
    stage.log.info("policy_loaded", policy_version=policy.version)
    async with retention(pool, stage.name, settings):
        yield
    await pool.close()


app = FastStream(broker, logger=logger, lifespan=lifespan)
instrument(app, broker, stage.name, database=True)


@stage.batch_subscriber(topics.REDACTED)
async def on_redacted(
    msg: KafkaMessage,
    store: BudgetStore = Resolved(),
    # Absent only where a test wires the budget store alone: then no verdict is known.
    verdicts: VerdictStore | None = Resolved(default=None),
) -> None:
    async def score(items: Sequence[Item[TraceRedacted]], out: Outbox) -> None:
        decided = await step.decide(
            [i.event for i in items], policy, store, verdicts, stage.stamp()
        )
        # A promotion goes to both topics as the same bytes: serialised once, its trace
        # copied from the record it came in.
        bodies = [
            to_bytes_passing_trace(event, i.event, i.record.value)
            for event, i in zip(decided, items, strict=True)
        ]
        await publish_decisions(decided, bodies, store, out)

    await process(stage, msg, TraceRedacted, score)


async def publish_decisions(
    decided: list[TraceScored], bodies: list[bytes], store: BudgetStore, out: Outbox
) -> None:
    headers = {topics.DECIDED_BY_HEADER: stage.name}
    for event, body in zip(decided, bodies, strict=True):
        if event.decision == Decision.PROMOTE:
            out.publish(promoted, body, key=event.pattern.pattern_id.encode(), headers=headers)
    # Published, then recorded: a publish that fails spends no slot of the pattern's
    # budget. A crash in between re-reads the batch; its budget facts exclude the batch's
    # own traces, so it re-decides the same way and the fixture writer absorbs the second
    # copy (idempotent by trace and fixture).
    await out.flush()
    await store.record_promotions(step.promotions(decided, policy))
    weights = policy.weights.as_dict()
    for event, body in zip(decided, bodies, strict=True):
        out.publish(scored, body, key=event.pattern.pattern_id.encode(), headers=headers)
        decided_metric(event.decision.value, event.scores, weights)


@stage.batch_subscriber(topics.REVIEWED, purpose=topics.REVIEWS)
async def on_reviewed(msg: KafkaMessage, verdicts: VerdictStore = Resolved()) -> None:
    """A person's verdict on a pattern: its later traces follow it (see verdicts.py). A
    fixture retired by hand says nothing about the pattern's later traces."""

    async def follow(items: Sequence[Item[CaseReviewed]], out: Outbox) -> None:
        for item in items:
            if item.event.verdict != Verdict.RETIRE:
                await verdicts.record(pattern_verdict(item.event))

    await process(stage, msg, CaseReviewed, follow)
