"""`promote`: the one entry point a user needs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from promoter import exporting, progress, replay, sending
from promoter.review_cli import review_app
from promoter.supervisor import (
    API_KEY_FILE,
    RECEIVER,
    REVIEW,
    REVIEW_HTTP,
    REVIEW_KEY_FILE,
    STAGES,
    Endpoints,
    Stack,
)
from shared import topics
from shared.db import connect_pool, migrate
from shared.kafka import ensure_topics, groups_lag, read_topic
from shared.settings import Settings

app = typer.Typer(
    help="Trace Promoter: production agent traces → offline test fixtures.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(review_app, name="review")
console = Console()
DEMO_MAX_WAIT_MS = 5_000

StateDir = Annotated[
    Path | None, typer.Option("--state-dir", help="State folder (default ./.promote).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _settings(state_dir: Path | None) -> Settings:
    return Settings(state_dir=state_dir) if state_dir else Settings()


def _endpoints(settings: Settings) -> Endpoints:
    stack = Stack(settings)
    recorded = stack.endpoints()
    bootstrap = settings.kafka_bootstrap_servers or (
        recorded.kafka_bootstrap_servers if recorded else None
    )
    dsn = settings.database_url or (recorded.database_url if recorded else None)
    if not bootstrap or not dsn:
        console.print("[red]Nothing is running here: run `promote up` first.[/red]")
        raise typer.Exit(2)
    return Endpoints(
        bootstrap,
        dsn,
        kafka_managed=recorded.kafka_managed if recorded else False,
        postgres_managed=recorded.postgres_managed if recorded else False,
        ingest_http=recorded.ingest_http if recorded else None,
        review_http=recorded.review_http if recorded else None,
    )


@app.command()
def up(state_dir: StateDir = None) -> None:
    """Start the local broker, database and all five stages in the background."""
    stack = Stack(_settings(state_dir))
    endpoints = stack.up()
    console.print(f"Kafka     {endpoints.kafka_bootstrap_servers}")
    console.print(f"Postgres  {endpoints.public()['database_url']}")
    for stage in (*STAGES, RECEIVER, REVIEW, REVIEW_HTTP):
        console.print(f"{stage:<15} pid {stack.stage_pid(stage)}")
    console.print(f"OTLP/HTTP {endpoints.ingest_http} (API key in {stack.state / API_KEY_FILE})")
    key_file = stack.state / REVIEW_KEY_FILE
    console.print(f"Review    {endpoints.review_http} (review key in {key_file})")


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop every stage, then the local broker and database."""
    Stack(_settings(state_dir)).down()
    console.print("stopped")


@app.command("topics")
def topics_create(state_dir: StateDir = None) -> None:
    """Create the pipeline topics on the configured cluster (idempotent)."""
    settings = _settings(state_dir)
    created = asyncio.run(ensure_topics(settings.bootstrap_servers(), settings))
    console.print(f"created: {', '.join(created) or 'nothing new'}")


@app.command("migrate")
def migrate_db(state_dir: StateDir = None) -> None:
    """Apply database migrations (idempotent)."""
    endpoints = _endpoints(_settings(state_dir))

    async def run() -> list[str]:
        pool = await connect_pool(endpoints.database_url)
        try:
            return await migrate(pool)
        finally:
            await pool.close()

    applied = asyncio.run(run())
    console.print(f"applied: {', '.join(applied) or 'nothing new'}")


async def _lags(bootstrap: str) -> dict[str, dict[str, int]]:
    groups = {g: t for stage in STAGES for g, t in topics.STAGE_GROUPS[stage].items()}
    by_group = await groups_lag(bootstrap, groups)
    return {
        stage: {t: n for g in topics.STAGE_GROUPS[stage] for t, n in by_group[g].items()}
        for stage in STAGES
    }


@app.command()
def status(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Liveness of each stage, lag of each consumer group, and the endpoints in use."""
    settings = _settings(state_dir)
    stack = Stack(settings)
    endpoints = _endpoints(settings)
    services = {
        name: {"pid": stack.stage_pid(name), "alive": stack.stage_pid(name) is not None}
        for name in stack.running_stage_names() or [*STAGES, RECEIVER]
    }
    try:
        lag: dict[str, dict[str, int]] | str = asyncio.run(_lags(endpoints.kafka_bootstrap_servers))
    except Exception as error:  # status must report an unreachable broker, not crash on it
        lag = f"unavailable: {error}"
    report: dict[str, Any] = {"endpoints": endpoints.public(), "services": services, "lag": lag}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table("service", "pid", "alive", "lag")
    for name, info in services.items():
        stage_lag = lag.get(name.split(".")[0], {}) if isinstance(lag, dict) else {}
        table.add_row(
            name,
            str(info["pid"] or "-"),
            "yes" if info["alive"] else "no",
            ", ".join(f"{t}={n}" for t, n in stage_lag.items()) or "-",
        )
    console.print(table)
    for key, value in endpoints.public().items():
        console.print(f"{key}: {value}")


@app.command()
def send(
    paths: Annotated[list[str], typer.Argument(help="Files, folders, or - for stdin.")],
    fmt: Annotated[str, typer.Option("--format", help="auto|otlp-json|otlp-proto|native")] = "auto",
    state_dir: StateDir = None,
) -> None:
    """Publish trace files to traces.raw."""
    if fmt not in ("auto", "otlp-json", "otlp-proto", "native"):
        raise typer.BadParameter(f"unknown format {fmt!r}", param_hint="--format")
    endpoints = _endpoints(_settings(state_dir))
    batch = list(sending.messages(paths, fmt))  # type: ignore[arg-type]
    with progress.bar("sending", len(batch), show=progress.interactive()) as advance:
        sent = asyncio.run(sending.send(endpoints.kafka_bootstrap_servers, batch, advance))
    console.print(f"sent {sent} message(s) to {topics.RAW}")


@app.command()
def wait(
    timeout: Annotated[float, typer.Option(help="Seconds before giving up.")] = 300.0,
    state_dir: StateDir = None,
) -> None:
    """Block until every stage has caught up (lag 0 on every pipeline topic)."""
    endpoints = _endpoints(_settings(state_dir))
    if progress.interactive():
        started: dict[str, int] = {}
        with Live(console=console, refresh_per_second=4, transient=True) as live:

            def show(lags: dict[str, dict[str, int]]) -> None:
                for group, per_topic in lags.items():
                    for name, lag in per_topic.items():
                        started.setdefault(f"{group}/{name}", lag)
                live.update(progress.lag_table(lags, started))

            idle = wait_for_idle(endpoints.kafka_bootstrap_servers, timeout, on_lags=show)
    else:
        idle = wait_for_idle(endpoints.kafka_bootstrap_servers, timeout)
    if not idle:
        console.print(f"[red]still busy after {timeout:.0f}s[/red]")
        raise typer.Exit(1)
    console.print("idle")


@app.command()
def top(
    once: Annotated[bool, typer.Option("--once", help="One reading, then exit.")] = False,
    state_dir: StateDir = None,
    as_json: AsJson = False,
) -> None:
    """Live view of every running stage: rate, lag, dead letters, the decision funnel
    (from each stage's /metrics, refreshed every second)."""
    state = _settings(state_dir).state_dir
    if as_json:
        views = progress.snapshot(state)
        typer.echo(json.dumps({k: v and vars(v) for k, v in views.items()}, indent=2))
        return
    with contextlib.suppress(KeyboardInterrupt):
        progress.run_top(state, once=once or not progress.interactive(), console=console)


def wait_for_idle(
    bootstrap: str,
    timeout_s: float,
    on_lags: Callable[[dict[str, dict[str, int]]], None] | None = None,
) -> bool:
    """Stages commit only after their outputs are acknowledged, so reading lags in
    pipeline order cannot miss a record moving downstream; two idle readings in a row
    guard against a record fetched but not yet committed between them."""
    deadline = time.monotonic() + timeout_s
    idle_readings = 0
    while time.monotonic() < deadline:
        try:
            lags = asyncio.run(_lags(bootstrap))
        except KafkaError:
            # A broker that just started has no group coordinator yet: busy, not broken.
            lags = {"unknown": {"unknown": 1}}
        if on_lags is not None:
            on_lags(lags)
        busy = sum(n for per_topic in lags.values() for n in per_topic.values())
        idle_readings = idle_readings + 1 if busy == 0 else 0
        if idle_readings >= 2:
            return True
        time.sleep(0.5)
    return False


async def _fixtures(dsn: str) -> list[dict[str, Any]]:
    pool = await connect_pool(dsn)
    try:
        rows = await pool.fetch(
            """SELECT f.fixture_id, f.pattern_id, f.kind, f.current_version, f.status,
                      v.policy_version, v.source_trace_id, v.body->>'reason' AS reason
               FROM fixtures f JOIN fixture_versions v
                 ON v.fixture_id = f.fixture_id AND v.version = f.current_version
               ORDER BY f.pattern_id, f.kind"""
        )
        return [dict(r) for r in rows]
    finally:
        await pool.close()


@app.command()
def fixtures(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """The fixtures in the store (current versions)."""
    endpoints = _endpoints(_settings(state_dir))
    rows = asyncio.run(_fixtures(endpoints.database_url))
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("fixture", "kind", "v", "policy", "source trace", "reason")
    for r in rows:
        table.add_row(
            r["fixture_id"],
            r["kind"],
            str(r["current_version"]),
            r["policy_version"],
            r["source_trace_id"][:12],
            (r["reason"] or "")[:90],
        )
    console.print(table)
    console.print(f"{len(rows)} fixture(s)")


def _decision_summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "trace_id": doc["trace_id"],
        "pattern_id": doc["pattern"]["pattern_id"],
        "decision": doc["decision"],
        "total": doc["total"],
        "scores": {k: v["score"] for k, v in doc["scores"].items()},
        "reason": doc["reason"],
        "policy_version": doc["policy_version"],
    }


@app.command()
def decisions(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Every scoring decision on traces.scored."""
    endpoints = _endpoints(_settings(state_dir))
    raw = asyncio.run(read_topic(endpoints.kafka_bootstrap_servers, topics.SCORED))
    rows = [_decision_summary(json.loads(v)) for v in raw]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("trace", "pattern", "decision", "total", "policy", "reason")
    for r in rows:
        table.add_row(
            r["trace_id"][:12],
            r["pattern_id"],
            r["decision"],
            f"{r['total']:.2f}",
            r["policy_version"],
            r["reason"][:80],
        )
    console.print(table)


@app.command()
def dlq(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Dead letters on traces.dlq: stage, error class, message, trace id."""
    endpoints = _endpoints(_settings(state_dir))
    rows = [
        json.loads(v)
        for v in asyncio.run(read_topic(endpoints.kafka_bootstrap_servers, topics.DLQ))
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("stage", "error", "message", "trace", "source")
    for r in rows:
        table.add_row(
            r["stage"],
            r["error_class"],
            r["message"][:70],
            r.get("trace_id") or "-",
            f"{r['source_topic']}[{r['source_partition']}]@{r['source_offset']}",
        )
    console.print(table)


@app.command()
def demo(
    state_dir: StateDir = None,
    seed: Annotated[int, typer.Option(help="Corpus seed.")] = 7,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the pipeline.")] = 600.0,
) -> None:
    """Start everything, stream the generated corpus through, show what was promoted and why."""
    from tools.corpus.files import write_demo_files

    settings = _settings(state_dir)
    if "PROMOTE_ASSEMBLY_MAX_WAIT_MS" not in os.environ:
        # The corpus holds one trace whose root never ends; don't make the demo wait long.
        settings = settings.model_copy(update={"assembly_max_wait_ms": DEMO_MAX_WAIT_MS})
        settings.__pydantic_fields_set__.add("assembly_max_wait_ms")
    stack = Stack(settings)
    console.rule("starting the local stack")
    endpoints = stack.up()
    folder = stack.state / "demo"
    files = write_demo_files(folder, seed=seed)
    console.rule(f"sending the demo corpus (seed {seed}) from {folder}")
    batch = list(sending.messages([str(f) for f in files]))
    sent = asyncio.run(sending.send(endpoints.kafka_bootstrap_servers, batch))
    console.print(f"sent {sent} message(s)")
    console.rule("waiting for the pipeline")
    if not wait_for_idle(endpoints.kafka_bootstrap_servers, timeout):
        console.print("[red]the pipeline did not drain in time; see `promote status`[/red]")
        raise typer.Exit(1)
    raw = asyncio.run(read_topic(endpoints.kafka_bootstrap_servers, topics.SCORED))
    counts: dict[str, int] = {}
    for value in raw:
        decision = json.loads(value)["decision"]
        counts[decision] = counts.get(decision, 0) + 1
    console.rule("decisions")
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none")
    console.rule("promoted fixtures")
    rows = asyncio.run(_fixtures(endpoints.database_url))
    for r in rows:
        console.print(
            f"[bold]{r['fixture_id']}[/bold] v{r['current_version']} "
            f"({r['kind']}, policy {r['policy_version']})"
        )
        console.print(f"  {r['reason']}")
    console.print(
        f"{len(rows)} fixture(s) in the store; dead letters: "
        f"{len(asyncio.run(read_topic(endpoints.kafka_bootstrap_servers, topics.DLQ)))}"
    )
    exports = stack.state / "exports"
    for fmt in ("jsonl", "pytest", "promptfoo", "deepeval", "openai-evals"):
        asyncio.run(
            exporting.export_fixtures(
                endpoints.database_url, fmt, exports / fmt, since=None, kind=None, console=console
            )
        )
    report = stack.state / "release-gate.md"
    report.write_text(asyncio.run(exporting.gate_report(endpoints.database_url, None)))
    console.rule("release-gate report")
    typer.echo(report.read_text())
    console.print(f"Exports: {exports}/{{jsonl,pytest,promptfoo,deepeval,openai-evals}}")
    console.print(f"Release-gate report: {report}")
    console.print("The stack is still running: `promote status`, `promote down`.")


replay.register(app)
exporting.register(app)

try:
    from tools.bench.cli import register as register_bench
except ImportError:  # the benchmark harness ships with the repository, not the image
    pass
else:
    register_bench(app)
