"""`promote bench`: the benchmark harness as a `promote` command, added through the
`promote.commands` entry point (pyproject.toml) where the tools are importable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Smoke run (under two minutes).")] = False,
    out: Annotated[Path, typer.Option("--out", help="Markdown report.")] = Path("BENCHMARKS.md"),
    json_out: Annotated[Path, typer.Option("--json", help="JSON results.")] = Path("bench.json"),
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="State folder (kept); default temporary.")
    ] = None,
) -> None:
    """Measure throughput, ceilings, latency, redaction vs Presidio, store growth and replay
    on a broker and database of the benchmark's own; write BENCHMARKS.md and bench.json."""
    from tools.bench.runner import run  # heavy imports only when the command runs

    command = "promote bench" + (" --quick" if quick else "")
    code = run(quick, out, json_out, state_dir, False, command)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
