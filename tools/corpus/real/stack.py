"""The converted runs through the real pipeline, and the facts read back from it.

A fresh stack per corpus, started as the end-to-end tests start theirs (``Stack`` on a state
folder of its own, ``start_infrastructure``, one process per stage); traces are published to
``traces.raw`` with ``promote send``'s functions, the run waits as ``promote wait`` does, and
the facts come from the store and the topics: each trace's pattern (``dedupe_traces``), its
decision (``traces.scored``), which traces went on past dedupe (``traces.deduped``), the
fixtures sourced from the traces, and the dead letters.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from promoter import sending
from promoter.lag import wait_for_idle
from promoter.supervisor import STAGES, Endpoints, Stack
from shared import topics
from shared.kafka import groups_lag, read_topic
from shared.settings import Settings

# promote wait's wait runs in slices this long, the stage processes checked between slices.
WAIT_SLICE_S = 20.0


@dataclass(frozen=True)
class Grouped:
    pattern_id: str
    near_copy: bool
    # dedupe_traces.forwarded: dedupe has handled the trace (set whether or not it went on;
    # what went on is read from traces.deduped).
    forwarded: bool = True


@dataclass(frozen=True)
class Decided:
    decision: str
    pattern_id: str
    reason: str
    policy_version: str


@dataclass(frozen=True)
class FixtureRow:
    fixture_id: str
    pattern_id: str
    kind: str
    status: str
    source_trace_id: str


@dataclass(frozen=True)
class DeadLetter:
    stage: str
    error_class: str
    message: str


@dataclass
class StackFacts:
    """What the pipeline did with a set of traces, restricted to those traces."""

    grouped: dict[str, Grouped] = field(default_factory=dict)
    decided: dict[str, Decided] = field(default_factory=dict)
    forwarded: set[str] = field(default_factory=set)
    fixtures: list[FixtureRow] = field(default_factory=list)
    dead: dict[str, DeadLetter] = field(default_factory=dict)
    # Dead letters without a trace id (a payload ingest could not read): in a fresh stack
    # they are ours; in a shared one they cannot be attributed.
    unattributed_dead_letters: int = 0
    covered_patterns: set[str] = field(default_factory=set)
    idle: bool = True
    # Stages whose process exited while the traces were in flight: the last error in each log.
    exited_stages: dict[str, str] = field(default_factory=dict)
    # When the wait gave up: records not yet committed, per consumer group and topic.
    lag: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def write_documents(documents: Iterable[dict[str, Any]], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for document in documents:
            out.write(json.dumps(document, ensure_ascii=False) + "\n")
    return path


def send_documents(bootstrap: str, documents: list[dict[str, Any]]) -> int:
    """OTLP JSON documents to traces.raw, one message each, keyed by trace id, exactly as
    ``promote send traces.jsonl`` publishes them."""
    with tempfile.TemporaryDirectory(prefix="real-runs-") as folder:
        path = write_documents(documents, Path(folder) / "traces.jsonl")
        batch = list(sending.messages([str(path)], "otlp-json"))
    return asyncio.run(sending.send(bootstrap, batch))


async def _rows(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def _json_values(values: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for value in values:
        try:
            document = json.loads(value)
        except ValueError:
            continue
        if isinstance(document, dict):
            out.append(document)
    return out


async def collect_facts(
    endpoints: Endpoints, trace_ids: Iterable[str], *, fresh_stack: bool = False
) -> StackFacts:
    """The facts about ``trace_ids``: other traces in a shared store are left out."""
    ours = set(trace_ids)
    wanted = sorted(ours)
    dsn, bootstrap = endpoints.database_url, endpoints.kafka_bootstrap_servers
    facts = StackFacts()
    for row in await _rows(
        dsn,
        """SELECT trace_id, pattern_id, near_copy, forwarded FROM dedupe_traces
           WHERE trace_id = ANY($1::text[])""",
        wanted,
    ):
        facts.grouped[row["trace_id"]] = Grouped(
            row["pattern_id"], row["near_copy"], row["forwarded"]
        )
    for document in _json_values(await read_topic(bootstrap, topics.SCORED)):
        trace_id = document.get("trace_id")
        if trace_id in ours:
            # The last decision on the topic wins (a redelivery re-derives the same one).
            facts.decided[trace_id] = Decided(
                decision=str(document.get("decision")),
                pattern_id=str((document.get("pattern") or {}).get("pattern_id")),
                reason=str(document.get("reason", "")),
                policy_version=str(document.get("policy_version", "")),
            )
    facts.forwarded = {
        d["trace_id"]
        for d in _json_values(await read_topic(bootstrap, topics.DEDUPED))
        if d.get("trace_id") in ours
    }
    for row in await _rows(
        dsn,
        """SELECT DISTINCT f.fixture_id, f.pattern_id, f.kind, f.status, v.source_trace_id
           FROM fixtures f JOIN fixture_versions v USING (fixture_id)
           WHERE v.source_trace_id = ANY($1::text[])
           ORDER BY f.fixture_id, v.source_trace_id""",
        wanted,
    ):
        facts.fixtures.append(
            FixtureRow(
                row["fixture_id"],
                row["pattern_id"],
                row["kind"],
                row["status"],
                row["source_trace_id"],
            )
        )
    for document in _json_values(await read_topic(bootstrap, topics.DLQ)):
        trace_id = document.get("trace_id")
        letter = DeadLetter(
            str(document.get("stage")),
            str(document.get("error_class")),
            str(document.get("message", ""))[:300],
        )
        if trace_id in ours:
            facts.dead.setdefault(trace_id, letter)
        elif trace_id is None and fresh_stack:
            facts.unattributed_dead_letters += 1
    facts.covered_patterns = {
        r["pattern_id"] for r in await _rows(dsn, "SELECT pattern_id FROM pattern_coverage")
    }
    return facts


def wait_until_idle(
    bootstrap: str, timeout_s: float, exited: Callable[[], list[str]] = list
) -> tuple[bool, list[str]]:
    """``promote wait``'s wait, in slices, giving up early when a stage process has exited
    (its consumer group would never catch up): (idle, exited stages)."""
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        if wait_for_idle(bootstrap, min(remaining, WAIT_SLICE_S)):
            return True, []
        if gone := exited():
            return False, gone
    return False, []


def run_through(
    endpoints: Endpoints,
    documents: list[dict[str, Any]],
    trace_ids: list[str],
    *,
    timeout_s: float,
    fresh_stack: bool = False,
    exited: Callable[[], list[str]] = list,
    log_dir: Path | None = None,
) -> StackFacts:
    """Send, wait until every consumer group has caught up, and read the facts back."""
    started = time.monotonic()
    send_documents(endpoints.kafka_bootstrap_servers, documents)
    sent = time.monotonic()
    idle, gone = wait_until_idle(endpoints.kafka_bootstrap_servers, timeout_s, exited)
    waited = time.monotonic()
    facts = asyncio.run(collect_facts(endpoints, trace_ids, fresh_stack=fresh_stack))
    facts.idle = idle
    facts.exited_stages = {stage: _last_error(log_dir, stage) for stage in gone}
    if not idle:
        facts.lag = asyncio.run(_lag(endpoints.kafka_bootstrap_servers))
    facts.seconds = {
        "send": round(sent - started, 2),
        "wait": round(waited - sent, 2),
        "collect": round(time.monotonic() - waited, 2),
    }
    return facts


def _last_error(log_dir: Path | None, stage: str) -> str:
    """The last line of a stage's log that reports an error (not asyncio's closing noise)."""
    path = None if log_dir is None else log_dir / f"{stage}.log"
    if path is None or not path.exists():
        return "exited (no log)"
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [
        ln
        for ln in lines
        if ("error" in ln.lower() or "Traceback" in ln or "exception" in ln.lower())
        and "Unclosed" not in ln
    ]
    chosen = errors[-1] if errors else (lines[-1] if lines else "exited (empty log)")
    return chosen[:400]


async def _lag(bootstrap: str) -> dict[str, dict[str, int]]:
    groups = {g: t for stage in STAGES for g, t in topics.STAGE_GROUPS[stage].items()}
    lags = await groups_lag(bootstrap, groups)
    return {g: {t: n for t, n in per.items() if n} for g, per in lags.items() if any(per.values())}


def _let_postgres_traverse(state: Path) -> None:
    """As root the embedded server runs as a system user of its own, which ``pg_ctl stop``
    needs to reach the data folder through the state folder; ``Stack`` makes the state folder
    0700 again when a stage starts (``Stack.api_key``), after the server has opened it, so
    that ``Stack.down`` could not stop the server. Traversal (not reading) is given back on
    this evaluation's own temporary state folder before stopping."""
    if os.geteuid() == 0 and state.exists():
        state.chmod(state.stat().st_mode | stat.S_IXGRP | stat.S_IXOTH)


def on_fresh_stack(
    documents: list[dict[str, Any]],
    trace_ids: list[str],
    state_dir: Path,
    *,
    timeout_s: float,
) -> StackFacts:
    """A stack of its own in ``state_dir``: started, fed, read and stopped."""
    started = time.monotonic()
    stack = Stack(Settings(state_dir=state_dir))
    try:
        endpoints = stack.start_infrastructure()
        for stage in STAGES:
            stack.start_stage(stage, endpoints)
        up = time.monotonic()
        facts = run_through(
            endpoints,
            documents,
            trace_ids,
            timeout_s=timeout_s,
            fresh_stack=True,
            exited=lambda: [s for s in STAGES if stack.stage_pid(s) is None],
            log_dir=stack.state / "logs",
        )
        facts.seconds["start"] = round(up - started, 2)
    finally:
        stopping = time.monotonic()
        _let_postgres_traverse(stack.state)
        stack.down()
    facts.seconds["stop"] = round(time.monotonic() - stopping, 2)
    return facts
