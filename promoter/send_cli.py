"""`promote send`: the command; reading and publishing the files is promoter.sending's."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from promoter import progress, sending
from promoter.context import StateDir, console, endpoints_for, settings_for
from shared import topics


def send(
    paths: Annotated[list[str], typer.Argument(help="Files, folders, or - for stdin.")],
    fmt: Annotated[str, typer.Option("--format", help="auto|otlp-json|otlp-proto|native")] = "auto",
    state_dir: StateDir = None,
) -> None:
    """Publish trace files to traces.raw."""
    if fmt not in ("auto", "otlp-json", "otlp-proto", "native"):
        raise typer.BadParameter(f"unknown format {fmt!r}", param_hint="--format")
    endpoints = endpoints_for(settings_for(state_dir))
    batch = list(sending.messages(paths, fmt))  # type: ignore[arg-type]
    with progress.bar("sending", len(batch), show=progress.interactive()) as advance:
        sent = asyncio.run(sending.send(endpoints.kafka_bootstrap_servers, batch, advance))
    console.print(f"sent {sent} message(s) to {topics.RAW}")


def register(app: typer.Typer) -> None:
    app.command()(send)
