"""The release-gate report reads pattern series from PostgreSQL and charts what degrades."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from promoter.exporting import gate_report
from promoter.supervisor import Endpoints
from shared.db import connect_pool, migrate

pytestmark = pytest.mark.e2e

# Far in the future, so that this test's days are the store's latest whatever else ran.
LAST_DAY = datetime(2099, 6, 30, tzinfo=UTC)


async def seed(dsn: str, agent: str, rising: str, steady: str) -> None:
    pool = await connect_pool(dsn)
    try:
        await migrate(pool)
        for i in range(17):
            day = LAST_DAY - timedelta(days=16 - i)
            await pool.execute(
                """INSERT INTO agent_series (agent, grain, start, agent_version, traces)
                   VALUES ($1, 'day', $2, 'v1', 300)""",
                agent,
                day,
            )
            for pattern_id, n in ((rising, 6 if i >= 14 else i % 2), (steady, 2)):
                await pool.execute(
                    """INSERT INTO pattern_series (pattern_id, grain, start, agent_version,
                           agent, occurrences, failures, retries, rescues, escalations,
                           latency_ms, tokens)
                       VALUES ($1, 'day', $2, 'v1', $3, $4, $4, 0, 0, 0, 0, 0)""",
                    pattern_id,
                    day,
                    agent,
                    n,
                )
        await pool.execute(
            """INSERT INTO pattern_coverage (pattern_id, fixture_version, updated_at)
               VALUES ($1, 1, now())""",
            rising,
        )
    finally:
        await pool.close()


def test_the_report_lists_a_rising_covered_pattern_with_its_chart(
    infra: Endpoints, tmp_path: Path
) -> None:
    token = secrets.token_hex(4)
    agent, rising, steady = f"agent-{token}", f"p3-rising-{token}", f"p3-steady-{token}"
    asyncio.run(seed(infra.database_url, agent, rising, steady))
    charts = tmp_path / "report-charts"
    markdown = asyncio.run(gate_report(infra.database_url, charts_dir=charts))
    section = markdown.split("## Degrading patterns", 1)[1]
    assert rising in section and steady not in section
    assert "covered but not protected" in section
    assert f"report-charts/{rising}.svg" in section
    assert (charts / f"{rising}.svg").read_bytes().startswith(b"<?xml")
