"""The pipeline itself: end-to-end throughput, per-stage throughput in isolation, latency
at half the measured maximum rate, memory of each service, and a profile of the slowest
stage. Every stage runs as its own process (promoter.supervisor.Stack), as `promote up`
runs them."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from promoter.supervisor import STAGES
from shared import topics
from tools.bench import events, profile, stats
from tools.bench.context import Context, TaskHandle
from tools.bench.kafkautil import (
    LagWatcher,
    Message,
    counts_since,
    end_offsets,
    produce,
    read_since,
)
from tools.bench.procs import RssSampler, cpu_snapshot, cpu_spent

PIPELINE_GROUPS: dict[str, tuple[str, ...]] = {
    topics.consumer_group(s): (topics.PIPELINE_INPUT[s],) for s in STAGES
}
PIPELINE_TOPICS = [s.name for s in topics.topic_specs(1, 1)]
# Every group a stage consumes with, with its topics: a thawed stage must have caught up
# on all of them before a measurement starts (dedupe also follows fixtures.index).
STAGE_GROUPS = topics.STAGE_GROUPS


# --- state -----------------------------------------------------------------------------


# Dedupe's knowledge of patterns (not their coverage): kept between latency repetitions.
PATTERN_KNOWLEDGE = frozenset(
    {
        "patterns",
        "pattern_members",
        "pattern_member_counts",
        "dedupe_traces",
        "pattern_intents",
        "pattern_intent_bands",
        "pattern_exemplars",
    }
)


async def reset_state(dsn: str, keep: frozenset[str] = frozenset()) -> None:
    """Empties every table of the pipeline but ``keep`` (and the migrations log), so each
    repetition starts from the same store: by default an empty one, where no pattern is
    known, no budget spent, no fixture written."""
    conn = await asyncpg.connect(dsn)
    try:
        names = [
            r["tablename"]
            for r in await conn.fetch(
                """SELECT tablename FROM pg_tables WHERE schemaname = current_schema()
               AND tablename <> 'schema_migrations'"""
            )
            if r["tablename"] not in keep
        ]
        if names:
            await conn.execute("TRUNCATE " + ", ".join(f'"{n}"' for n in names))
    finally:
        await conn.close()


def stage_pids(ctx: Context) -> dict[str, int]:
    pids = {}
    for stage in STAGES:
        pid = ctx.stack.stage_pid(stage)
        if pid is None:
            raise RuntimeError(f"stage {stage} is not running; see {ctx.stack.state / 'logs'}")
        pids[stage] = pid
    return pids


def start_stages(ctx: Context) -> dict[str, int]:
    for stage in STAGES:
        ctx.stack.start_stage(stage, ctx.endpoints)
    return stage_pids(ctx)


def check_stages(ctx: Context) -> None:
    """Raises as soon as a stage process has died, instead of waiting out a timeout."""
    dead = [s for s in STAGES if ctx.stack.stage_pid(s) is None]
    if dead:
        raise RuntimeError(f"stage(s) {', '.join(dead)} exited; see {ctx.stack.state / 'logs'}")


def stop_stages(ctx: Context) -> None:
    ctx.procs.thaw(list(ctx.procs.frozen))
    for stage in STAGES:
        ctx.stack.stop_stage(stage)


def _lag_reporter(task: TaskHandle, label: str) -> Callable[[int], None]:
    def show(lag: int) -> None:
        task.update(description=f"{label} (lag {lag})")

    return show


# --- warm-up -----------------------------------------------------------------------------


async def _warm_up(ctx: Context, raw: Message, promoted: Message, timeout_s: float) -> None:
    """One trace through the whole pipeline and one promotion through the fixture writer
    (whose first privacy check builds Presidio's analyzer): no cold start is timed."""
    await produce(ctx.bootstrap, topics.RAW, [raw])
    await produce(ctx.bootstrap, topics.PROMOTED, [promoted])
    async with LagWatcher(ctx.bootstrap) as watcher:
        await watcher.wait_idle(PIPELINE_GROUPS, timeout_s, check=lambda: check_stages(ctx))


# --- end to end ----------------------------------------------------------------------------


def cpu_per_trace(
    spent: dict[str, float], stages: Sequence[str], traces: int
) -> dict[str, float | None]:
    """CPU milliseconds per sent trace of each stage and of all of them together."""
    out: dict[str, float | None] = {
        s: spent[s] * 1000.0 / traces if s in spent and traces else None for s in stages
    }
    known = [v for s, v in out.items() if s in stages and v is not None]
    out["total"] = sum(known) if len(known) == len(stages) else None
    return out


async def _e2e_once(
    ctx: Context, messages: list[Message], task: TaskHandle, cpu_pids: dict[str, int]
) -> dict[str, Any]:
    await reset_state(ctx.dsn)
    starts = await end_offsets(ctx.bootstrap, PIPELINE_TOPICS)
    timeout = max(180.0, len(messages) * 1.0)
    async with LagWatcher(ctx.bootstrap) as watcher:
        task.update(description="pipeline: sending")
        cpu_before = cpu_snapshot(cpu_pids)
        sent = await produce(
            ctx.bootstrap,
            topics.RAW,
            messages,
            on_sent=lambda n: task.update(completed=n, total=len(messages)),
        )
        idle_at = await watcher.wait_idle(
            PIPELINE_GROUPS,
            timeout,
            on_lag=_lag_reporter(task, "pipeline: draining"),
            check=lambda: check_stages(ctx),
        )
        cpu = cpu_spent(cpu_before, cpu_snapshot(cpu_pids))
    ends = await end_offsets(ctx.bootstrap, PIPELINE_TOPICS)
    funnel = counts_since(starts, ends)
    scored = await read_since(ctx.bootstrap, starts, [topics.SCORED])
    last_decision = (
        max(r.timestamp_ms for r in scored) / 1000.0 - sent.first_send_wall if scored else None
    )
    seconds = idle_at - sent.first_send_perf
    return {
        "traces": len(messages),
        "seconds_to_idle": seconds,
        "traces_per_s": stats.rate(len(messages), seconds),
        "seconds_to_last_decision": last_decision,
        "traces_per_s_to_last_decision": (
            stats.rate(len(messages), last_decision) if last_decision else None
        ),
        "funnel": funnel,
        # CPU seconds (user + system, with children) of each process from the first send
        # until idle, and per sent trace for the five stages.
        "cpu_seconds": cpu,
        "cpu_ms_per_trace": cpu_per_trace(cpu, STAGES, len(messages)),
    }


def end_to_end(ctx: Context, messages: list[Message], pids: dict[str, int]) -> dict[str, Any]:
    reps = []
    others = {
        "kafka broker": ctx.stack.kafka.pid(),
        "postgresql (all backends)": ctx.stack.postgres.pid(),
    }
    sampled = {**pids, **{k: v for k, v in others.items() if v is not None}}
    with RssSampler(sampled) as rss:
        for rep in range(ctx.plan.reps):
            with ctx.reporter.task(
                f"pipeline end to end, run {rep + 1}/{ctx.plan.reps}", total=len(messages)
            ) as task:
                result = asyncio.run(_e2e_once(ctx, messages, task, sampled))
                reps.append(result)
                total_cpu = result["cpu_ms_per_trace"].get("total")
                task.done(
                    f"{result['traces_per_s']:.1f} traces/s "
                    f"({result['traces']} traces in {result['seconds_to_idle']:.1f}s), "
                    f"{stats.fmt(total_cpu)} CPU ms per trace"
                )
    return {
        "traces_per_s": stats.measurement([r["traces_per_s"] for r in reps], "traces/s"),
        "traces_per_s_to_last_decision": stats.measurement(
            [
                r["traces_per_s_to_last_decision"]
                for r in reps
                if r["traces_per_s_to_last_decision"]
            ],
            "traces/s",
        ),
        "cpu_ms_per_trace": {
            name: stats.median_of([r["cpu_ms_per_trace"] for r in reps], name)
            for name in (*STAGES, "total")
        },
        "cpu_ms_per_trace_others": {
            name: stats.median_of(
                [
                    {name: r["cpu_seconds"][name] * 1000.0 / r["traces"]}
                    for r in reps
                    if name in r["cpu_seconds"]
                ],
                name,
            )
            for name in others
            if others[name] is not None
        },
        "runs": reps,
        "rss_peak_bytes": rss.peak,
        "rss_end_bytes": rss.last,
    }


# --- latency ---------------------------------------------------------------------------------


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _latency_once(
    ctx: Context, messages: list[Message], rate: float, task: TaskHandle
) -> dict[str, Any]:
    # The patterns the end-to-end run made known stay; their coverage, budgets, decisions
    # and fixtures go: traces of recurring patterns are promotable from the first one on.
    await reset_state(ctx.dsn, keep=PATTERN_KNOWLEDGE)
    starts = await end_offsets(ctx.bootstrap, PIPELINE_TOPICS)
    async with LagWatcher(ctx.bootstrap) as watcher:
        sent = await produce(
            ctx.bootstrap,
            topics.RAW,
            messages,
            pace_per_s=rate,
            on_sent=lambda n: task.update(completed=n, total=len(messages)),
        )
        await watcher.wait_idle(
            PIPELINE_GROUPS,
            max(180.0, len(messages) * 1.0),
            on_lag=_lag_reporter(task, "latency: draining"),
            check=lambda: check_stages(ctx),
        )
    records = await read_since(ctx.bootstrap, starts, [topics.SCORED, topics.FIXTURES_INDEX])
    to_decision: list[float] = []
    for r in records:
        if r.topic != topics.SCORED or r.value is None:
            continue
        trace_id = json.loads(r.value)["trace_id"]
        if trace_id in sent.send_wall:
            to_decision.append((r.timestamp_ms / 1000.0 - sent.send_wall[trace_id]) * 1000.0)
    # A fixture is written when its coverage is published on fixtures.index, stamped with
    # the same `at` as the decision row the fixture writer recorded for the trace.
    indexed: dict[tuple[str, datetime], float] = {}
    for r in records:
        if r.topic == topics.FIXTURES_INDEX and r.value is not None:
            doc = json.loads(r.value)
            key = (doc["pattern_id"], _parse_time(doc["at"]))
            indexed[key] = min(indexed.get(key, float("inf")), r.timestamp_ms / 1000.0)
    conn = await asyncpg.connect(ctx.dsn)
    try:
        rows = await conn.fetch(
            "SELECT trace_id, pattern_id, decided_at FROM decisions WHERE trace_id = ANY($1)",
            list(sent.send_wall),
        )
    finally:
        await conn.close()
    to_fixture: list[float] = []
    for row in rows:
        written = indexed.get((row["pattern_id"], row["decided_at"]))
        if written is not None:
            to_fixture.append((written - sent.send_wall[row["trace_id"]]) * 1000.0)
    # The assembly waits its quiet period after a trace's last span before it releases the
    # trace: a wait of configuration, not of work, taken out by arithmetic.
    quiet = float(ctx.plan.assembly_quiet_ms)
    return {
        "traces": len(messages),
        "rate_per_s": rate,
        "send_to_decision_ms": stats.latency_summary(to_decision),
        "send_to_fixture_ms": stats.latency_summary(to_fixture),
        "send_to_decision_ms_excl_quiet": stats.latency_summary(
            [max(0.0, x - quiet) for x in to_decision]
        ),
        "send_to_fixture_ms_excl_quiet": stats.latency_summary(
            [max(0.0, x - quiet) for x in to_fixture]
        ),
        "promoted_without_fixture": len(rows) - len(to_fixture),
    }


def latency(ctx: Context, pools: list[list[Message]], max_rate: float) -> dict[str, Any]:
    """One pool of traces per repetition (new trace ids each time: a trace id dedupe has
    seen is a redelivery), sent at half ``max_rate``."""
    rate = max_rate / 2.0
    wanted = max(10, int(rate * ctx.plan.latency_seconds))
    reps = []
    messages: list[Message] = []
    for rep in range(ctx.plan.reps):
        messages = pools[rep][:wanted]
        with ctx.reporter.task(
            f"latency at {rate:.1f} traces/s, run {rep + 1}/{ctx.plan.reps}", total=len(messages)
        ) as task:
            result = asyncio.run(_latency_once(ctx, messages, rate, task))
            reps.append(result)
            d, f = result["send_to_decision_ms"], result["send_to_fixture_ms"]
            task.done(
                f"decision p50 {stats.fmt(d['p50'])} ms (n={d['n']}), "
                f"fixture p50 {stats.fmt(f['p50'])} ms (n={f['n']})"
            )

    def med(kind: str, key: str) -> float | None:
        return stats.median_of([r[kind] for r in reps], key)

    return {
        "rate_per_s": rate,
        "fraction_of_max": 0.5,
        "traces_per_run": len(messages),
        "assembly_quiet_ms": ctx.plan.assembly_quiet_ms,
        "send_to_decision_ms": {
            k: med("send_to_decision_ms", k) for k in ("p50", "p95", "p99", "max", "n")
        },
        "send_to_fixture_ms": {
            k: med("send_to_fixture_ms", k) for k in ("p50", "p95", "p99", "max", "n")
        },
        "send_to_decision_ms_excl_quiet": {
            k: med("send_to_decision_ms_excl_quiet", k) for k in ("p50", "p95", "p99", "max", "n")
        },
        "send_to_fixture_ms_excl_quiet": {
            k: med("send_to_fixture_ms_excl_quiet", k) for k in ("p50", "p95", "p99", "max", "n")
        },
        "runs": reps,
    }


# --- isolation ---------------------------------------------------------------------------------

# Downstream first: what a measured stage publishes lands only on stages already measured
# (and frozen), never in the input of one still to be measured.
ISOLATION_ORDER = tuple(reversed(STAGES))


def _inputs_of(stage: str, inputs: events.StageInputs) -> list[Message]:
    return {
        "ingest": inputs.raw,
        "dedupe": inputs.normalized,
        "redaction": inputs.deduped,
        "scoring": inputs.redacted,
        "fixture_writer": inputs.promoted,
    }[stage]


async def _settle(ctx: Context, stage: str, warm: Message) -> None:
    """A thawed stage may have been dropped from its group while frozen: one message
    through it proves it is back and consuming, then every group of it must be idle."""
    await produce(ctx.bootstrap, topics.PIPELINE_INPUT[stage], [warm])
    async with LagWatcher(ctx.bootstrap) as watcher:
        for group, group_topics in STAGE_GROUPS[stage].items():
            await watcher.wait_zero(
                group, group_topics, 120.0, interval_s=0.1, check=lambda: check_stages(ctx)
            )


async def _isolated_once(
    ctx: Context,
    stage: str,
    messages: list[Message],
    task: TaskHandle,
    cpu: dict[str, float] | None = None,
    pid: int | None = None,
) -> float:
    """The stage's rate alone; with ``cpu`` and ``pid``, the CPU seconds the stage used
    from the first send to lag 0 go to ``cpu["seconds"]``."""
    await reset_state(ctx.dsn)
    group = topics.consumer_group(stage)
    source = topics.PIPELINE_INPUT[stage]
    watched = {stage: pid} if pid is not None else {}
    async with LagWatcher(ctx.bootstrap) as watcher:
        before = cpu_snapshot(watched)
        sent = await produce(ctx.bootstrap, source, messages)

        def show(lag: int) -> None:
            task.update(completed=len(messages) - lag, total=len(messages))

        done_at = await watcher.wait_zero(
            group,
            (source,),
            max(120.0, len(messages) * 2.0),
            on_lag=show,
            check=lambda: check_stages(ctx),
        )
        spent = cpu_spent(before, cpu_snapshot(watched))
    if cpu is not None and stage in spent:
        cpu["seconds"] = spent[stage]
    return stats.rate(len(messages), done_at - sent.first_send_perf)


def isolation(ctx: Context, inputs: events.StageInputs, pids: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stage in ISOLATION_ORDER:
        messages = _inputs_of(stage, inputs)[: ctx.plan.isolation_events]
        if not messages:
            out[stage] = {"error": "no input events could be built"}
            continue
        ctx.procs.freeze(pid for s, pid in pids.items() if s != stage)
        ctx.procs.thaw([pids[stage]])
        asyncio.run(_settle(ctx, stage, messages[0]))
        reps = []
        cpu_ms: list[float] = []
        for rep in range(ctx.plan.reps):
            with ctx.reporter.task(
                f"{stage} alone, run {rep + 1}/{ctx.plan.reps}", total=len(messages)
            ) as task:
                cpu: dict[str, float] = {}
                per_s = asyncio.run(_isolated_once(ctx, stage, messages, task, cpu, pids[stage]))
                reps.append(per_s)
                if "seconds" in cpu:
                    cpu_ms.append(cpu["seconds"] * 1000.0 / len(messages))
                task.done(f"{per_s:.1f} traces/s ({len(messages)} events)")
        out[stage] = {
            "traces_per_s": stats.measurement(reps, "traces/s"),
            "cpu_ms_per_event": stats.measurement(cpu_ms, "CPU ms/event"),
            "events": len(messages),
            "input_bytes_median": stats.median(len(m.value) for m in messages),
        }
    return out


# --- profile of the slowest stage --------------------------------------------------------------


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_stage(
    ctx: Context, stage: str, messages: list[Message], pids: dict[str, int]
) -> dict[str, Any]:
    """py-spy samples the stage process (all threads, 100 Hz) while it works through
    ``messages`` alone; the raw stacks are summarised by bench.profile."""
    binary = py_spy()
    if binary is None:
        return {"stage": stage, "error": "py-spy is not installed (pip install py-spy)"}
    ctx.procs.freeze(pid for s, pid in pids.items() if s != stage)
    ctx.procs.thaw([pids[stage]])
    asyncio.run(_settle(ctx, stage, messages[0]))
    asyncio.run(reset_state(ctx.dsn))
    raw_path = ctx.work / f"profile-{stage}.txt"
    log = (ctx.work / "py-spy.log").open("wb")
    spy = subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pids[stage]),
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(raw_path),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(1.0)  # py-spy attaches
        with ctx.reporter.task(f"profiling {stage} with py-spy", total=len(messages)) as task:
            per_s = asyncio.run(_isolated_once(ctx, stage, messages, task))
            task.done(f"{per_s:.1f} traces/s while sampled")
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        log.close()
    if not raw_path.exists():
        tail = (ctx.work / "py-spy.log").read_text(errors="replace")[-500:]
        return {"stage": stage, "error": f"py-spy wrote no profile: {tail}"}
    summary = profile.summarise(raw_path.read_text(errors="replace"))
    return {
        "stage": stage,
        "events": len(messages),
        "traces_per_s_sampled": per_s,
        "tool": "py-spy record --rate 100 (blocking, all threads)",
        **summary,
    }


def second_pass_repetition(messages: list[Message]) -> dict[str, int]:
    """How many of the strings the fixture writer's privacy check analyses, promotion after
    promotion, were already analysed for an earlier promotion (pure, in-process)."""
    from services.fixture_writer import logic as fixture_logic
    from shared.events import TraceScored

    seen: set[str] = set()
    checked = repeated = 0
    for m in messages:
        event = TraceScored.model_validate_json(m.value)
        for text in fixture_logic.unique_strings(fixture_logic.build_fixtures(event)):
            checked += 1
            if text in seen:
                repeated += 1
            seen.add(text)
    return {"checked": checked, "repeated": repeated, "distinct": len(seen)}
