"""Scoring shell: traces.redacted → a decision on traces.scored (and traces.promoted)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import Context, ContextRepo, FastStream
from faststream.kafka.annotations import KafkaMessage

from services.scoring import logic
from services.scoring.policy import DEFAULT_POLICY_PATH, load_policy
from services.scoring.store import BudgetStore, PostgresBudgetStore
from services.scoring.verdicts import (
    PostgresVerdictStore,
    VerdictStore,
    follow_verdict,
    pattern_verdict,
)
from shared import __version__, topics
from shared.db import open_store_pool
from shared.events import CaseReviewed, Decision, TraceRedacted, Verdict
from shared.kafka import make_broker
from shared.log import configure_logging
from shared.ops import decided, instrument
from shared.retention import retention
from shared.settings import get_settings
from shared.stage import Stage, parse, to_bytes

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


@stage.subscriber(topics.REDACTED)
@stage.guarded
async def on_redacted(
    msg: KafkaMessage,
    store: BudgetStore = Context(),
    # Absent only where a test wires the budget store alone: then no verdict is known.
    verdicts: VerdictStore | None = Context(default=None),
) -> None:
    event = parse(TraceRedacted, msg)
    day = logic.budget_day(event)
    pattern_id = event.pattern.pattern_id
    budget = await store.budget(
        event.trace_id, pattern_id, policy.version, day, count_today=policy.budgets.counts_days
    )
    out = follow_verdict(
        logic.scored_event(event, policy, budget, stage.stamp()),
        await verdicts.verdict(pattern_id) if verdicts is not None else None,
    )
    body, key = to_bytes(out), pattern_id.encode()
    headers = {topics.DECIDED_BY_HEADER: stage.name}
    if out.decision == Decision.PROMOTE:
        # Published, then recorded: a publish that fails spends no slot of the pattern's
        # budget. A crash in between re-reads the trace; its budget query excludes the
        # trace itself, so it re-decides the same way and the fixture writer absorbs the
        # second copy (idempotent by trace and fixture).
        await promoted.publish(body, key=key, headers=headers)
        await store.record_promotion(event.trace_id, pattern_id, policy.version, day)
    await scored.publish(body, key=key, headers=headers)
    decided(out.decision.value, out.scores, policy.weights.as_dict())


@stage.subscriber(topics.REVIEWED, purpose=topics.REVIEWS)
@stage.guarded
async def on_reviewed(msg: KafkaMessage, verdicts: VerdictStore = Context()) -> None:
    """A person's verdict on a pattern: its later traces follow it (see verdicts.py). A
    fixture retired by hand says nothing about the pattern's later traces."""
    verdict = parse(CaseReviewed, msg)
    if verdict.verdict != Verdict.RETIRE:
        await verdicts.record(pattern_verdict(verdict))
