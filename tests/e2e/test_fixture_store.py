"""The fixture writer on the real broker and database: promoted traces become fixtures of
the right kinds, and a redelivered promotion changes nothing in the store."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import asyncpg
import pytest

from promoter.lag import wait_for_idle
from promoter.supervisor import Endpoints
from shared import topics
from shared.kafka import read_topic
from tests.e2e.test_pipeline import produce, run_cli
from tools.corpus.generate import generate

pytestmark = pytest.mark.e2e

# What a lesson of each family must at least yield when it is promoted.
EXPECTED_KINDS = {
    "wrong_side_effect": {"regression_case", "tool_use_assertion", "grader_example"},
    "approval_pressure": {"regression_case", "boundary_test"},
    "guardrail_hit": {"regression_case", "boundary_test"},
    "retrieval_miss": {"regression_case", "grader_example"},
}


async def snapshot(dsn: str) -> dict[str, object]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "versions": await conn.fetchval("SELECT count(*) FROM fixture_versions"),
            "current": sorted(
                tuple(r)
                for r in await conn.fetch("SELECT fixture_id, current_version FROM fixtures")
            ),
            "gate_log": await conn.fetchval("SELECT count(*) FROM gate_log"),
            "evidence": await conn.fetchval("SELECT count(*) FROM fixture_evidence"),
        }
    finally:
        await conn.close()


async def kinds_by_trace(dsn: str, trace_ids: list[str]) -> dict[str, set[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT v.source_trace_id, f.kind FROM fixture_versions v
               JOIN fixtures f USING (fixture_id) WHERE v.source_trace_id = ANY($1::text[])""",
            trace_ids,
        )
    finally:
        await conn.close()
    kinds: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        kinds[r["source_trace_id"]].add(r["kind"])
    return kinds


def test_promoted_traces_become_fixtures_of_the_right_kinds_and_redelivery_changes_nothing(
    pipeline: Endpoints, cli_env: dict[str, str], tmp_path: Path
) -> None:
    corpus = generate(seed=73)
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(item.trace.model_dump_json() + "\n" for item in corpus))
    assert run_cli("send", str(path), env=cli_env).returncode == 0
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=300)

    family = {item.trace.trace_id: item.labels.family for item in corpus}
    kinds = asyncio.run(kinds_by_trace(pipeline.database_url, list(family)))
    promoted_families = {family[t] for t in kinds}
    assert EXPECTED_KINDS.keys() <= promoted_families, "every family worth a fixture got one"
    for trace_id, got in kinds.items():
        assert EXPECTED_KINDS.get(family[trace_id], set()) <= got, (family[trace_id], got)
    assert not promoted_families & {"transient_outage", "one_off_noise"}

    before = asyncio.run(snapshot(pipeline.database_url))
    promotions = asyncio.run(read_topic(pipeline.kafka_bootstrap_servers, topics.PROMOTED))
    assert promotions
    again = [(json.loads(v)["pattern"]["pattern_id"].encode(), v) for v in promotions]
    asyncio.run(produce(pipeline.kafka_bootstrap_servers, topics.PROMOTED, again))
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=300)
    assert asyncio.run(snapshot(pipeline.database_url)) == before
