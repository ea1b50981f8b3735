"""Retention on the real PostgreSQL server: only expired per-trace rows are deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from promoter.supervisor import Endpoints
from shared.db import connect_pool
from shared.retention import prune, retained_tables
from shared.settings import Settings

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def test_retention_deletes_expired_per_trace_rows_and_keeps_recent_ones(
    infra: Endpoints,
) -> None:
    pool = await connect_pool(infra.database_url)
    old, new = NOW - timedelta(days=400), NOW - timedelta(days=1)
    try:
        for i, seen in enumerate((old, new)):
            await pool.execute(
                """INSERT INTO dedupe_traces (trace_id, content_sha256, pattern_id, seen_at,
                                              recorded_at)
                   VALUES ($1, 'x', 'p-retention', $2, $2) ON CONFLICT DO NOTHING""",
                f"retention-{i}",
                seen,
            )
            await pool.execute(
                """INSERT INTO decisions (trace_id, policy_version, pattern_id, decision, total,
                                          scores, reason, decided_at)
                   VALUES ($1, 'retention', 'p', 'hold', 0, '{}', 'r', $2)
                   ON CONFLICT DO NOTHING""",
                f"retention-{i}",
                seen,
            )
            await pool.execute(
                """INSERT INTO scoring_promotions (trace_id, policy_version, pattern_id, day)
                   VALUES ($1, 'retention', 'p', $2) ON CONFLICT DO NOTHING""",
                f"retention-{i}",
                seen.date(),
            )
        rules = retained_tables(Settings())
        deleted = {r.table: await prune(pool, r, NOW) for r in rules.values()}
        assert all(count >= 1 for count in deleted.values()), deleted
        for rule in rules.values():
            kept = await pool.fetch(
                f"SELECT trace_id FROM {rule.table} WHERE trace_id LIKE 'retention-%'"
            )
            assert [r["trace_id"] for r in kept] == ["retention-1"], rule.table
    finally:
        await pool.close()


async def test_retention_set_to_zero_keeps_every_row(infra: Endpoints) -> None:
    pool = await connect_pool(infra.database_url)
    try:
        rule = retained_tables(Settings(retention_decisions_days=0))["fixture_writer"]
        assert await prune(pool, rule, NOW + timedelta(days=10_000)) == 0
    finally:
        await pool.close()


async def test_a_trace_that_happened_long_ago_is_kept_as_long_as_a_recent_one(
    infra: Endpoints,
) -> None:
    """dedupe_traces counts from when the trace was recorded: a late or replayed trace's
    row must survive the sweep, or its redelivery is counted twice."""
    pool = await connect_pool(infra.database_url)
    try:
        await pool.execute(
            """INSERT INTO dedupe_traces (trace_id, content_sha256, pattern_id, seen_at)
               VALUES ('retention-late', 'x', 'p-retention', $1) ON CONFLICT DO NOTHING""",
            datetime.now(UTC) - timedelta(days=400),
        )
        await prune(pool, retained_tables(Settings())["dedupe"], datetime.now(UTC))
        kept = await pool.fetchval(
            "SELECT count(*) FROM dedupe_traces WHERE trace_id = 'retention-late'"
        )
        assert kept == 1
    finally:
        await pool.close()
