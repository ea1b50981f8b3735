"""Retention of the tables that grow by one row per trace.

| table                | time column  | setting                                   | default  |
|----------------------|--------------|-------------------------------------------|----------|
| dedupe_traces        | recorded_at  | PROMOTE_RETENTION_DEDUPE_TRACES_DAYS      | 30 days  |
| decisions            | decided_at   | PROMOTE_RETENTION_DECISIONS_DAYS          | 180 days |
| scoring_promotions   | day          | PROMOTE_RETENTION_SCORING_PROMOTIONS_DAYS | 180 days |

dedupe_traces counts from when dedupe recorded the trace, not from when the trace happened
(seen_at): a late or replayed trace's row would otherwise be deleted at the next sweep, and
its redelivery counted twice (the chaos suite found this with the committed real runs).
0 keeps rows for ever. Each owning stage (dedupe, fixture writer, scoring) deletes its
expired rows at start and then every PROMOTE_RETENTION_INTERVAL_S, in batches, so a sweep
never holds long locks. What is kept elsewhere is per pattern or per fixture (patterns,
fixtures, gate log), which grows with lessons, not with traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import structlog

from shared.errors import is_transient
from shared.settings import Settings

BATCH_ROWS = 5_000


@dataclass(frozen=True)
class Retained:
    table: str
    column: str
    days: int
    by_date: bool = False


def retained_tables(settings: Settings) -> dict[str, Retained]:
    return {
        "dedupe": Retained("dedupe_traces", "recorded_at", settings.retention_dedupe_traces_days),
        "fixture_writer": Retained("decisions", "decided_at", settings.retention_decisions_days),
        "scoring": Retained(
            "scoring_promotions",
            "day",
            settings.retention_scoring_promotions_days,
            by_date=True,
        ),
    }


async def prune(pool: asyncpg.Pool, rule: Retained, now: datetime) -> int:
    """Deletes the rows of ``rule.table`` older than its retention; returns how many."""
    if rule.days <= 0:
        return 0
    cutoff_at = now - timedelta(days=rule.days)
    cutoff: datetime | date = cutoff_at.date() if rule.by_date else cutoff_at
    deleted = 0
    while True:
        status = await pool.execute(
            f"""DELETE FROM {rule.table} WHERE ctid IN (
                    SELECT ctid FROM {rule.table} WHERE {rule.column} < $1 LIMIT $2)""",
            cutoff,
            BATCH_ROWS,
        )
        count = int(status.split()[-1])
        deleted += count
        if count < BATCH_ROWS:
            return deleted


async def prune_forever(pool: asyncpg.Pool, rule: Retained, interval_s: float) -> None:
    log = structlog.get_logger().bind(table=rule.table)
    while True:
        try:
            deleted = await prune(pool, rule, datetime.now(UTC))
            if deleted:
                log.info("retention_pruned", rows=deleted, days=rule.days)
        except Exception as error:
            # The next sweep tries again; retention never stops a stage.
            log.warning(
                "retention_deferred",
                error_class=type(error).__name__,
                transient=is_transient(error),
            )
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def retention(pool: asyncpg.Pool, stage: str, settings: Settings) -> AsyncIterator[None]:
    """Runs the stage's retention sweep in the background while the block runs."""
    rule = retained_tables(settings).get(stage)
    if rule is None or rule.days <= 0:
        yield
        return
    task = asyncio.create_task(prune_forever(pool, rule, settings.retention_interval_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
