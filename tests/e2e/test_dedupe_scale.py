"""Dedupe on the real broker and database: three instances group exactly as one does, and
a corpus sent twice changes no pattern count."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from promoter.lag import wait_for_idle
from promoter.supervisor import Endpoints, Stack
from services.dedupe.logic import observe
from services.dedupe.store import InMemoryPatternStore
from shared import topics
from shared.events import Trace, TraceNormalized
from shared.kafka import read_topic
from tests.e2e.test_pipeline import run_cli
from tests.support.groups import wait_for_group
from tools.corpus.generate import generate

pytestmark = pytest.mark.e2e


# FastStream logs every handled batch ("Received", with its topic) at debug level: what
# shows that an instance worked.
LOG_EVERY_BATCH = {"PROMOTE_LOG_LEVEL": "DEBUG"}


def isolated_corpus(seed: int, tag: str) -> list[Trace]:
    """The generated corpus with its agents renamed, so its patterns share nothing with
    what other tests sent to the same store."""
    return [
        item.trace.model_copy(update={"agent_name": f"{item.trace.agent_name}-{tag}"})
        for item in generate(seed=seed)
    ]


def write(traces: list[Trace], path: Path) -> Path:
    path.write_text("".join(t.model_dump_json() + "\n" for t in traces))
    return path


async def stored_grouping(dsn: str, trace_ids: set[str]) -> tuple[set[frozenset[str]], list[int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT t.trace_id, t.pattern_id, p.occurrences
               FROM dedupe_traces t JOIN patterns p USING (pattern_id)
               WHERE t.trace_id = ANY($1::text[])""",
            list(trace_ids),
        )
    finally:
        await conn.close()
    return _grouping([(r["trace_id"], r["pattern_id"], r["occurrences"]) for r in rows])


def _grouping(rows: list[tuple[str, str, int]]) -> tuple[set[frozenset[str]], list[int]]:
    groups: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for trace_id, pattern_id, occurrences in rows:
        groups.setdefault(pattern_id, set()).add(trace_id)
        counts[pattern_id] = occurrences
    return {frozenset(g) for g in groups.values()}, sorted(counts.values())


async def reference_grouping(
    bootstrap: str, trace_ids: set[str]
) -> tuple[set[frozenset[str]], list[int]]:
    """What one dedupe instance decides, computed in-process with the in-memory store, for
    the traces in the order traces.normalized holds them: grouping depends on the order
    within a bucket, and one bucket lives on one partition whatever the instance count."""
    store = InMemoryPatternStore()
    rows: dict[str, str] = {}
    for value in await read_topic(bootstrap, topics.NORMALIZED):
        event = TraceNormalized.model_validate_json(value)
        if event.trace_id in trace_ids:
            recorded = await store.record(observe(event.trace, event.features))
            rows[event.trace_id] = recorded.pattern_id
    return _grouping([(t, p, (await store.pattern(p)).occurrences) for t, p in rows.items()])


def test_three_dedupe_instances_make_the_same_patterns_and_counts_as_one(
    pipeline: Endpoints, stack: Stack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    group = topics.consumer_group("dedupe")
    for instance in (1, 2):
        stack.start_stage("dedupe", pipeline, instance=instance, env=LOG_EVERY_BATCH)
    try:
        wait_for_group(pipeline.kafka_bootstrap_servers, group, members=3)
        traces = isolated_corpus(seed=67, tag="scale")
        sent = run_cli("send", str(write(traces, tmp_path / "t.jsonl")), env=cli_env)
        assert sent.returncode == 0, sent.stderr
        assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=300)

        ids = {t.trace_id for t in traces}
        expected = asyncio.run(reference_grouping(pipeline.kafka_bootstrap_servers, ids))
        assert len(set().union(*expected[0])) == len(ids), "every trace reached dedupe"
        assert asyncio.run(stored_grouping(pipeline.database_url, ids)) == expected
        busy = [
            name
            for name in ("dedupe.1", "dedupe.2")
            if any(
                '"Received"' in line and '"topic": "traces.normalized"' in line
                for line in (stack.state / "logs" / f"{name}.log").read_text().splitlines()
            )
        ]
        assert len(busy) == 2, "the work was really shared between instances"
    finally:
        for instance in (1, 2):
            stack.stop_stage(f"dedupe.{instance}")
        wait_for_group(pipeline.kafka_bootstrap_servers, group, members=1)


def test_sending_the_whole_corpus_twice_changes_no_pattern_count(
    pipeline: Endpoints, cli_env: dict[str, str], tmp_path: Path
) -> None:
    traces = isolated_corpus(seed=71, tag="twice")
    ids = {t.trace_id for t in traces}
    corpus_file = write(traces, tmp_path / "t.jsonl")

    assert run_cli("send", str(corpus_file), env=cli_env).returncode == 0
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=300)
    first = asyncio.run(stored_grouping(pipeline.database_url, ids))

    assert run_cli("send", str(corpus_file), env=cli_env).returncode == 0
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=300)
    assert asyncio.run(stored_grouping(pipeline.database_url, ids)) == first
    assert sum(first[1]) == len(ids), "every distinct trace counted exactly once"


def wait_for_log_after(path: Path, offset: int, needle: str, timeout_s: float) -> bool:
    """Polls the part of a log written after `offset` for a line holding `needle`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with path.open("rb") as log:
            log.seek(offset)
            if needle.encode() in log.read():
                return True
        time.sleep(0.05)
    return False


def test_scaling_dedupe_in_while_traces_flow_loses_and_double_counts_nothing(
    pipeline: Endpoints, stack: Stack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """One extra instance is killed outright (SIGKILL: nothing committed for what it was
    doing), the other stopped gracefully, while the first half of a corpus is in flight."""
    group = topics.consumer_group("dedupe")
    traces = isolated_corpus(seed=73, tag="scale-in")
    ids = {t.trace_id for t in traces}
    half = len(traces) // 2
    log = stack.state / "logs" / "dedupe.1.log"
    already = log.stat().st_size if log.exists() else 0
    for instance in (1, 2):
        stack.start_stage("dedupe", pipeline, instance=instance, env=LOG_EVERY_BATCH)
    try:
        wait_for_group(pipeline.kafka_bootstrap_servers, group, members=3)
        first = run_cli("send", str(write(traces[:half], tmp_path / "a.jsonl")), env=cli_env)
        assert first.returncode == 0, first.stderr
        assert wait_for_log_after(log, already, '"Received"', timeout_s=120), "it was working"
        killed = stack.stage_pid("dedupe.1")
        assert killed is not None
        os.killpg(killed, signal.SIGKILL)
        os.waitpid(killed, 0)
    finally:
        for instance in (1, 2):
            stack.stop_stage(f"dedupe.{instance}")
    second = run_cli("send", str(write(traces[half:], tmp_path / "b.jsonl")), env=cli_env)
    assert second.returncode == 0, second.stderr
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=300)
    wait_for_group(pipeline.kafka_bootstrap_servers, group, members=1)

    groups, counts = asyncio.run(stored_grouping(pipeline.database_url, ids))
    assert set().union(*groups) == ids, "every trace reached dedupe"
    assert sum(counts) == len(ids), "and was counted once, redeliveries included"
