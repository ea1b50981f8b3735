"""`promote status | wait | top`: is the stack alive, has it caught up, what is it doing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from promoter import progress
from promoter.context import AsJson, StateDir, console, endpoints_for, settings_for
from promoter.lag import stage_lags, wait_for_idle
from promoter.supervisor import RECEIVER, STAGES, Stack


def status(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Liveness of each stage, lag of each consumer group, and the endpoints in use."""
    settings = settings_for(state_dir)
    stack = Stack(settings)
    endpoints = endpoints_for(settings)
    services = {
        name: {"pid": stack.stage_pid(name), "alive": stack.stage_pid(name) is not None}
        for name in stack.running_stage_names() or [*STAGES, RECEIVER]
    }
    try:
        lag: dict[str, dict[str, int]] | str = asyncio.run(
            stage_lags(endpoints.kafka_bootstrap_servers)
        )
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


def wait(
    timeout: Annotated[float, typer.Option(help="Seconds before giving up.")] = 300.0,
    state_dir: StateDir = None,
) -> None:
    """Block until every stage has caught up (lag 0 on every pipeline topic)."""
    endpoints = endpoints_for(settings_for(state_dir))
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


def top(
    once: Annotated[bool, typer.Option("--once", help="One reading, then exit.")] = False,
    state_dir: StateDir = None,
    as_json: AsJson = False,
) -> None:
    """Live view of every running stage: rate, lag, dead letters, the decision funnel
    (from each stage's /metrics, refreshed every second)."""
    state = settings_for(state_dir).state_dir
    if as_json:
        views = progress.snapshot(state)
        typer.echo(json.dumps({k: v and vars(v) for k, v in views.items()}, indent=2))
        return
    with contextlib.suppress(KeyboardInterrupt):
        progress.run_top(state, once=once or not progress.interactive(), console=console)


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(wait)
    app.command()(top)
