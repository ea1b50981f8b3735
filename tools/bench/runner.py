"""Runs every benchmark section in order and writes BENCHMARKS.md and the JSON results.

The harness starts its own broker and database in a temporary state folder (or uses
KAFKA_BOOTSTRAP_SERVERS / PROMOTE_DATABASE_URL when set) and stops every process it
started — stages, pass-through hops, profiler, broker, database — on any exit, SIGTERM
and Ctrl-C included. A section that fails is reported as failed; the others still run.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from promoter.supervisor import Stack
from shared.settings import Settings
from tools.bench import (
    ceilings,
    compute,
    events,
    fixes,
    growth,
    machine,
    pipeline,
    redaction,
    replay_rate,
    report,
)
from tools.bench.context import Context, Plan, Reporter
from tools.bench.kafkautil import quiet_kafka_logs
from tools.bench.procs import Processes
from tools.bench.stats import median
from tools.corpus.generate import generate

EXTERNAL_SCHEMA = "promote_bench"


class Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(f"stopped by signal {signum}")


def _settings(state: Path, plan: Plan) -> Settings:
    settings = Settings(
        state_dir=state,
        assembly_quiet_ms=plan.assembly_quiet_ms,
        assembly_max_wait_ms=plan.assembly_max_wait_ms,
    )
    if settings.database_url:
        # A server we were given: the pipeline's tables go to a schema of their own, which
        # every stage reaches through the URL's search_path.
        asyncio.run(_create_schema(settings.database_url))
        separator = "&" if "?" in settings.database_url else "?"
        url = f"{settings.database_url}{separator}search_path={EXTERNAL_SCHEMA}"
        settings = settings.model_copy(update={"database_url": url})
        settings.__pydantic_fields_set__.add("database_url")
    return settings


async def _create_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {EXTERNAL_SCHEMA}")
    finally:
        await conn.close()


async def _postgres_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def _section(ctx: Context, name: str, work: Callable[[], Any]) -> Any:
    """Runs one section; its result goes to results[name] (dotted: nested)."""
    try:
        value = work()
    except Interrupted:
        raise
    except Exception as error:
        ctx.errors.append({"section": name, "error": f"{type(error).__name__}: {error}"[:500]})
        ctx.reporter.log(f"[red]{name} failed: {type(error).__name__}: {error}[/red]")
        (ctx.work / "errors.log").open("a").write(f"--- {name}\n{traceback.format_exc()}\n")
        return None
    if value is None:
        return None
    node = ctx.results
    *parents, leaf = name.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return value


def _pipeline(ctx: Context, messages: list[events.Message]) -> None:
    plan = ctx.plan
    with ctx.reporter.task("building each stage's input events in-process") as task:
        needed = max(plan.isolation_events, plan.profile_events, plan.compute_events)
        scale = max(1, math.ceil(needed / 90))  # ~60 % of ~163 traces per unit are promoted
        iso_traces = [c.trace for c in events.corpus(plan.seed + 200, scale)]
        inputs = events.stage_inputs(iso_traces, promoted_wanted=needed)
        task.done(f"{len(inputs.raw)} traces, {len(inputs.promoted)} promotions")
    with ctx.reporter.task("starting the five stages and warming them up") as task:
        pids = pipeline.start_stages(ctx)
        asyncio.run(pipeline._warm_up(ctx, inputs.raw[0], inputs.promoted[0], 300.0))
        task.done("every stage has handled a message")
    e2e = _section(ctx, "pipeline.end_to_end", lambda: pipeline.end_to_end(ctx, messages, pids))
    if e2e and e2e["traces_per_s"]["median"]:
        max_rate = e2e["traces_per_s"]["median"]
        wanted = int(max_rate / 2 * plan.latency_seconds) + 10
        scale = max(1, math.ceil(wanted / 140))
        pools = [
            _first_sends(
                events.raw_messages([c.trace for c in events.corpus(plan.seed + 100 + r, scale)])
            )
            for r in range(plan.reps)
        ]
        _section(ctx, "pipeline.latency", lambda: pipeline.latency(ctx, pools, max_rate))
    iso = _section(ctx, "pipeline.isolation", lambda: pipeline.isolation(ctx, inputs, pids))
    if iso:
        view = {"pipeline": {"isolation": iso, "end_to_end": e2e or {}}}
        targets: dict[str, str] = {}
        slowest = report.slowest_stage(view)
        if slowest:
            targets[slowest[0]] = "the slowest stage alone"
        neck = report.bottleneck_stage(view)
        if neck and (plan.extras or not targets):
            reason = "the end-to-end bottleneck (rate alone ÷ share of traces reaching it)"
            targets[neck[0]] = (targets[neck[0]] + "; " + reason) if neck[0] in targets else reason
        _section(ctx, "pipeline.profiles", lambda: _profiles(ctx, inputs, pids, targets))
    _section(ctx, "pipeline.fixes", lambda: fixes.profiling_fixes(ctx, inputs))
    with ctx.reporter.task("stopping the stages") as task:
        pipeline.stop_stages(ctx)
        task.done("stopped")
    # With the stage processes gone, nothing competes with the in-process timing.
    _section(ctx, "pipeline.compute", lambda: compute.pure_rates(ctx, inputs))


def _profiles(
    ctx: Context, inputs: events.StageInputs, pids: dict[str, int], targets: dict[str, str]
) -> list[dict[str, Any]]:
    out = []
    for stage, why in targets.items():
        messages = pipeline._inputs_of(stage, inputs)[: ctx.plan.profile_events]
        found = {"why": why, **pipeline.profile_stage(ctx, stage, messages, pids)}
        if stage == "fixture_writer":
            found["second_pass_strings"] = pipeline.second_pass_repetition(messages)
        out.append(found)
    return out


def _first_sends(messages: list[events.Message]) -> list[events.Message]:
    """Latency needs one send per trace id: exact re-sends are left out."""
    seen: set[str | None] = set()
    out = []
    for m in messages:
        if m.trace_id not in seen:
            seen.add(m.trace_id)
            out.append(m)
    return out


def run(
    quick: bool,
    out: Path,
    json_out: Path,
    state_dir: Path | None = None,
    keep_state: bool = False,
    command: str = "python -m bench",
) -> int:
    plan = Plan.make(quick)
    quiet_kafka_logs()
    work = state_dir or Path(tempfile.mkdtemp(prefix="promote-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": command,
        "quick": quick,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": asdict(plan),
    }
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    procs = Processes(work / "logs")
    stack: Stack | None = None
    ctx: Context | None = None
    code = 0
    with Reporter() as reporter:
        try:
            reporter.log(f"benchmark ({'quick' if quick else 'full'}), state in {work}")
            results["machine"] = machine.describe()
            settings = _settings(work / "state", plan)
            stack = Stack(settings)
            with reporter.task("starting Kafka and PostgreSQL") as task:
                endpoints = stack.start_infrastructure()
                task.done(f"Kafka {endpoints.kafka_bootstrap_servers}, PostgreSQL ready")
            results["machine"].update(
                kafka_managed=endpoints.kafka_managed,
                postgres_managed=endpoints.postgres_managed,
                postgresql=asyncio.run(_postgres_version(endpoints.database_url)),
            )
            results["settings"] = {"partitions": settings.topic_partitions}
            if not endpoints.kafka_managed:
                reporter.log(
                    "[yellow]using the given Kafka cluster: the stages join the "
                    "pipeline's consumer groups there; use a cluster of your own[/yellow]"
                )
            ctx = Context(plan, stack, endpoints, procs, reporter, work, results)
            everything = generate(seed=plan.seed, scale=plan.corpus_scale)
            corpus = events.corpus(plan.seed, plan.corpus_scale)
            messages = events.raw_messages([c.trace for c in corpus])
            sizes = [len(m.value) for m in messages]
            results["corpus"] = {
                "traces": len(messages),
                "incomplete_dropped": len(everything) - len(corpus),
                "median_bytes": median(sizes),
                "spans_median": median(len(c.trace.spans) for c in corpus),
            }
            record_size = int(median(sizes))
            _section(ctx, "ceilings.kafka_tools", lambda: ceilings.perf_tools(ctx, record_size))
            _section(
                ctx,
                "ceilings.chain",
                lambda: ceilings.pass_through_chain(ctx, messages, "batched"),
            )
            if plan.single_chain_messages:
                # Before the batched kernel, for comparison: cheap on a slice of the corpus.
                first = messages[: plan.single_chain_messages]
                _section(
                    ctx,
                    "ceilings.chain_single",
                    lambda: ceilings.pass_through_chain(ctx, first, "single"),
                )
            _section(ctx, "pipeline.run", lambda: _pipeline(ctx, messages))
            _section(ctx, "replay", lambda: replay_rate.replay_rate(ctx))
            _section(ctx, "growth", lambda: growth.growth(ctx))
            _section(ctx, "redaction", lambda: redaction.compare(ctx, everything))
        except (Interrupted, KeyboardInterrupt) as stop:
            code = 130
            results.setdefault("errors", []).append(
                {"section": "run", "error": f"interrupted: {stop}"}
            )
        except Exception as error:
            code = 1
            results.setdefault("errors", []).append(
                {"section": "run", "error": f"{type(error).__name__}: {error}"[:500]}
            )
            reporter.log(f"[red]{traceback.format_exc()}[/red]")
        finally:
            with reporter.task("stopping everything the benchmark started") as task:
                procs.stop_all()
                if stack is not None:
                    stack.down()
                task.done("stopped")
            for s, handler in previous.items():
                signal.signal(s, handler)
    if ctx is not None:
        results.setdefault("errors", []).extend(ctx.errors)
    results.setdefault("errors", [])
    results.setdefault("machine", {})["load_average_at_end"] = machine.load_average()
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["ratios"] = report.ratios(results)
    for path in (json_out, out):
        path.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    out.write_text(report.render(results), encoding="utf-8")
    print(f"wrote {out} and {json_out} in {results['duration_s']:.0f}s", file=sys.stderr)
    if results["errors"]:
        print(f"{len(results['errors'])} section(s) failed: see {out}", file=sys.stderr)
        code = code or 1
    if keep_state or state_dir is not None:
        print(f"state and logs kept in {work}", file=sys.stderr)
    elif code == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"state and logs kept for inspection in {work}", file=sys.stderr)
    return code
