"""Replay end to end, on the real broker and database with every stage running: the corpus
is decided under the default policy, then replayed under the strict one, first as a dry run
(nothing written anywhere, the diff saved), then for real (decisions stamped with the strict
version, fixture versions written by the running fixture writer, fixtures that rested on a
withdrawn promotion superseded, reverted or retired), then once more (nothing new in the
store); last, a policy that promotes nothing retires every fixture the corpus sourced (out of
exports, patterns uncovered) and a replay under the first policy restores them.

Other e2e tests share the broker and the database, and their corpora share pattern ids with
this one: assertions about traces are scoped to this test's trace ids, assertions about the
store compare snapshots taken while the pipeline is idle."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from promoter.exporting import read_export_rows
from promoter.lag import wait_for_idle
from promoter.replay import replay_group
from promoter.supervisor import Endpoints
from services.fixture_writer.exports import ExportRow
from services.scoring.policy import DEFAULT_POLICY_PATH, STRICT_POLICY_PATH, load_policy
from services.scoring.replay_logic import CATEGORIES
from shared import topics
from shared.db import connect_pool
from shared.kafka import group_lag, partitions_of, read_topic
from tests.e2e.test_pipeline import fetch, run_cli
from tools.corpus.files import write_demo_files

pytestmark = pytest.mark.e2e

SEED = 31  # no other test sends this corpus
OUTPUT_TOPICS = (topics.SCORED, topics.PROMOTED, topics.FIXTURES_INDEX)


def store_snapshot(dsn: str) -> dict[str, Any]:
    counts = asyncio.run(
        fetch(
            dsn,
            """
        SELECT (SELECT count(*) FROM fixture_versions) AS fixture_versions,
               (SELECT count(*) FROM fixtures) AS fixtures,
               (SELECT count(*) FROM fixture_evidence) AS fixture_evidence,
               (SELECT count(*) FROM gate_log) AS gate_log,
               (SELECT count(*) FROM decisions) AS decisions,
               (SELECT count(*) FROM scoring_promotions) AS scoring_promotions""",
        )
    )[0]
    versions = asyncio.run(
        fetch(dsn, "SELECT fixture_id, max(version) AS v FROM fixture_versions GROUP BY fixture_id")
    )
    return {**dict(counts), "max_versions": {r["fixture_id"]: r["v"] for r in versions}}


async def _end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        tps = [
            tp for tps in (await partitions_of(admin, set(OUTPUT_TOPICS))).values() for tp in tps
        ]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str) -> dict[TopicPartition, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return dict(await admin.list_consumer_group_offsets(group))
    finally:
        await admin.close()


async def current_sources(dsn: str, trace_ids: set[str]) -> list[asyncpg.Record]:
    """Active fixtures whose current version one of these traces sourced."""
    return await fetch(
        dsn,
        """SELECT f.fixture_id FROM fixtures f
           JOIN fixture_versions v
             ON v.fixture_id = f.fixture_id AND v.version = f.current_version
           WHERE f.status = 'active' AND v.source_trace_id = ANY($1::text[])""",
        sorted(trace_ids),
    )


async def export_rows(dsn: str) -> list[ExportRow]:
    pool = await connect_pool(dsn)
    try:
        return await read_export_rows(pool)
    finally:
        await pool.close()


def decisions_on_topic(bootstrap: str) -> list[dict[str, Any]]:
    return [json.loads(v) for v in asyncio.run(read_topic(bootstrap, topics.SCORED))]


def listed(diff: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["trace_id"]: c for category in CATEGORIES for c in diff[category]}


def replay(*args: str, env: dict[str, str], policy: Path = STRICT_POLICY_PATH) -> str:
    done = run_cli("replay", "--policy", str(policy), *args, "--timeout", "300", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_replay_under_a_stricter_policy_dry_run_then_for_real(
    pipeline: Endpoints, cli_env: dict[str, str], tmp_path: Path
) -> None:
    bootstrap, dsn = pipeline.kafka_bootstrap_servers, pipeline.database_url
    default, strict = load_policy(DEFAULT_POLICY_PATH), load_policy(STRICT_POLICY_PATH)
    files = write_demo_files(tmp_path / "corpus", seed=SEED)
    mine = {json.loads(line)["trace_id"] for line in (tmp_path / "corpus" / "labels.jsonl").open()}
    sent = run_cli("send", *map(str, files), env=cli_env)
    assert sent.returncode == 0, sent.stderr
    assert wait_for_idle(bootstrap, timeout_s=300)

    redacted = {
        json.loads(v)["trace_id"] for v in asyncio.run(read_topic(bootstrap, topics.REDACTED))
    }
    replayed = mine & redacted
    assert replayed, "some of the corpus reached traces.redacted"
    under_default = {
        d["trace_id"]
        for d in decisions_on_topic(bootstrap)
        if d["policy_version"] == default.version
    }
    assert replayed <= under_default, "the live run decided them under policy A"

    # --- dry run: the diff, and nothing written anywhere ---------------------------------
    store_before = store_snapshot(dsn)
    offsets_before = asyncio.run(_end_offsets(bootstrap))
    dry_path = tmp_path / "diff.json"
    printed = replay("--from-beginning", "--dry-run", "--save", str(dry_path), env=cli_env)
    (tmp_path / "dry-run.txt").write_text(printed)
    assert store_snapshot(dsn) == store_before, "a dry run leaves the store as it was"
    assert asyncio.run(_end_offsets(bootstrap)) == offsets_before, "and publishes nothing"
    assert asyncio.run(_committed(bootstrap, replay_group(strict.version))) == {}, (
        "and commits no offsets"
    )

    dry = json.loads(dry_path.read_text())
    assert dry["policy_version"] == strict.version
    assert dry["demoted"], "the stricter policy demotes some of A's promotions"
    for change in dry["demoted"]:
        assert change["before"]["decision"] == "promote"
        assert change["before"]["policy_version"] == default.version
        assert change["after"]["decision"] in ("hold", "reject")
        assert change["after"]["policy_version"] == strict.version
        assert change["after"]["reason"]
    assert replayed <= set(listed(dry)), "every replayed trace of this corpus is judged"
    assert "would change" in printed and f"Demoted ({len(dry['demoted'])})" in printed

    # --from a time: everything was written after 2000, nothing after 2100.
    since_2000, since_2100 = tmp_path / "since-2000.json", tmp_path / "since-2100.json"
    replay("--from", "2000-01-01", "--dry-run", "--save", str(since_2000), env=cli_env)
    replay("--from", "2100-01-01T00:00:00Z", "--dry-run", "--save", str(since_2100), env=cli_env)
    assert json.loads(since_2000.read_text())["counts"] == dry["counts"]
    assert sum(json.loads(since_2100.read_text())["counts"].values()) == 0
    assert store_snapshot(dsn) == store_before

    # --- the real replay: decisions stamped B, fixtures written under B ------------------
    demoted = {c["trace_id"] for c in dry["demoted"]}
    assert asyncio.run(current_sources(dsn, demoted)), "some fixtures rest on what B withdraws"
    real_path = tmp_path / "real.json"
    printed = replay("--from-beginning", "--save", str(real_path), env=cli_env)
    (tmp_path / "real.txt").write_text(printed)
    assert wait_for_idle(bootstrap, timeout_s=300)
    real = json.loads(real_path.read_text())
    assert {t: c["after"]["decision"] for t, c in listed(real).items()} == {
        t: c["after"]["decision"] for t, c in listed(dry).items()
    }, "the dry run predicted exactly what the real run decided"

    latest = {d["trace_id"]: d for d in decisions_on_topic(bootstrap)}
    for trace_id in replayed:
        assert latest[trace_id]["policy_version"] == strict.version
        assert latest[trace_id]["stages"][-1]["stage"] == "replay"

    promoted_under_b = {t for t, c in listed(real).items() if c["after"]["decision"] == "promote"}
    assert promoted_under_b
    written = asyncio.run(
        fetch(
            dsn,
            "SELECT DISTINCT source_trace_id FROM fixture_versions WHERE policy_version = $1",
            strict.version,
        )
    )
    blocked = asyncio.run(fetch(dsn, "SELECT DISTINCT source_trace_id FROM blocked_fixtures"))
    assert written, "the fixture writer stored fixture versions under policy B"
    assert promoted_under_b <= {r["source_trace_id"] for r in written} | {
        r["source_trace_id"] for r in blocked
    }, "every promotion of the replay reached the fixture writer"
    # Each was superseded by a version B promotes, fell back to one, or was retired.
    assert not asyncio.run(current_sources(dsn, demoted)), (
        "no active fixture rests on a promotion the new policy withdrew"
    )
    assert (
        sum(
            asyncio.run(
                group_lag(bootstrap, replay_group(strict.version), [topics.REDACTED])
            ).values()
        )
        == 0
    ), "the replay group committed its progress"
    resumed = tmp_path / "resumed.json"
    replay("--dry-run", "--save", str(resumed), env=cli_env)
    assert sum(json.loads(resumed.read_text())["counts"].values()) == 0, (
        "without --from, a replay resumes after what its group already replayed"
    )

    # --- the same replay again: same decisions, nothing new in the store -----------------
    store_after_real = store_snapshot(dsn)
    again_path = tmp_path / "again.json"
    replay("--from-beginning", "--save", str(again_path), env=cli_env)
    assert wait_for_idle(bootstrap, timeout_s=300)
    again = json.loads(again_path.read_text())
    assert again["counts"]["promoted"] == again["counts"]["demoted"] == 0
    for change in again["changed"]:
        # A trace held before a later trace of its pattern was promoted now finds the
        # pattern's budget spent: the policy rejects it rather than ask for a review.
        assert (change["before"]["decision"], change["after"]["decision"]) == ("hold", "reject")
        assert "budget" in change["after"]["reason"]
    assert store_snapshot(dsn) == store_after_real, "a repeated replay duplicates nothing"

    # --- a policy that promotes nothing retires them all; the first policy restores them --
    # Other tests' corpora share these patterns, so "ours" is every active fixture of this
    # corpus's patterns that rests on a trace a replay re-decides (one on traces.redacted).
    replayable = {
        json.loads(v)["trace_id"] for v in asyncio.run(read_topic(bootstrap, topics.REDACTED))
    }
    patterns = sorted({c["pattern_id"] for c in listed(dry).values()})
    ours = asyncio.run(resting_on(dsn, replayable, patterns))
    assert ours, "this corpus's patterns have active fixtures"
    freeze = freeze_policy(tmp_path, default_path=DEFAULT_POLICY_PATH)
    replay("--from-beginning", env=cli_env, policy=freeze)
    assert wait_for_idle(bootstrap, timeout_s=300)
    assert not asyncio.run(resting_on(dsn, replayable, patterns)), "none of them stays active"
    assert set(ours) <= asyncio.run(logged(dsn, "retired", load_policy(freeze).version))
    assert not set(ours) & exported_ids(dsn), "exports leave retired fixtures out"
    emptied = asyncio.run(patterns_without_active_fixtures(dsn)) & set(ours.values())
    assert emptied, "some of these patterns have no active fixture left"
    assert not asyncio.run(covered(dsn, emptied)), "those are uncovered again for dedupe"

    replay("--from-beginning", env=cli_env, policy=DEFAULT_POLICY_PATH)
    assert wait_for_idle(bootstrap, timeout_s=300)
    assert set(asyncio.run(resting_on(dsn, replayable, patterns))) >= set(ours)
    assert set(ours) <= asyncio.run(logged(dsn, "restored", default.version))
    assert set(ours) <= exported_ids(dsn)
    assert asyncio.run(covered(dsn, emptied)) == emptied, "and covered again"


async def resting_on(dsn: str, trace_ids: set[str], patterns: list[str]) -> dict[str, str]:
    """Active fixtures of these patterns whose current version one of these traces sourced,
    with their pattern."""
    rows = await fetch(
        dsn,
        """SELECT f.fixture_id, f.pattern_id FROM fixtures f
           JOIN fixture_versions v
             ON v.fixture_id = f.fixture_id AND v.version = f.current_version
           WHERE f.status = 'active' AND v.source_trace_id = ANY($1::text[])
             AND f.pattern_id = ANY($2::text[])""",
        sorted(trace_ids),
        patterns,
    )
    return {r["fixture_id"]: r["pattern_id"] for r in rows}


async def patterns_without_active_fixtures(dsn: str) -> set[str]:
    rows = await fetch(
        dsn,
        "SELECT pattern_id FROM fixtures GROUP BY pattern_id HAVING bool_and(status = 'retired')",
    )
    return {r["pattern_id"] for r in rows}


def freeze_policy(tmp_path: Path, default_path: Path) -> Path:
    """The default policy under a new version, with a recurrence bar no pattern reaches:
    every trace is rejected as one-off noise."""
    text = default_path.read_text()
    text = re.sub(r"^version: .*$", f'version: "test-freeze-{tmp_path.name}"', text, flags=re.M)
    text = re.sub(r"min_occurrences: \d+", "min_occurrences: 1000000", text)
    path = tmp_path / "freeze.yaml"
    path.write_text(text)
    return path


async def logged(dsn: str, action: str, policy_version: str) -> set[str]:
    rows = await fetch(
        dsn,
        "SELECT fixture_id FROM gate_log WHERE action = $1 AND policy_version = $2",
        action,
        policy_version,
    )
    return {r["fixture_id"] for r in rows}


async def covered(dsn: str, patterns: set[str]) -> set[str]:
    rows = await fetch(
        dsn,
        "SELECT pattern_id FROM pattern_coverage WHERE pattern_id = ANY($1::text[])",
        sorted(patterns),
    )
    return {r["pattern_id"] for r in rows}


def exported_ids(dsn: str) -> set[str]:
    return {row.fixture_id for row in asyncio.run(export_rows(dsn))}
