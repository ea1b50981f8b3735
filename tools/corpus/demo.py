"""`promote demo`: start everything, stream the generated corpus through, show what was
promoted and why. A tool's command, not the product's: the corpus it sends is generated
here (tools.corpus), so the command is added to `promote` through the `promote.commands`
entry point (pyproject.toml) where the tools are installed, and is absent where they are not."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Annotated

import typer

from promoter import exporting, sending
from promoter.catalog import current_fixtures
from promoter.context import StateDir, console, settings_for
from promoter.lag import wait_for_idle
from promoter.supervisor import Stack
from shared import topics
from shared.kafka import read_topic

DEMO_MAX_WAIT_MS = 5_000


def demo(
    state_dir: StateDir = None,
    seed: Annotated[int, typer.Option(help="Corpus seed.")] = 7,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the pipeline.")] = 600.0,
) -> None:
    """Start everything, stream the generated corpus through, show what was promoted and why."""
    from tools.corpus.files import write_demo_files  # the generator only when the demo runs

    settings = settings_for(state_dir)
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
    rows = asyncio.run(current_fixtures(endpoints.database_url))
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


def register(app: typer.Typer) -> None:
    app.command()(demo)
