"""What every `promote` command shares: one console, the settings of a state folder, and
the endpoints of the stack running from it. Command modules import this, never the CLI
(promoter.cli only assembles them), so a command can be added or moved without a cycle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from promoter.supervisor import Endpoints, Stack
from shared.settings import Settings

console = Console()

StateDir = Annotated[
    Path | None, typer.Option("--state-dir", help="State folder (default ./.promote).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def settings_for(state_dir: Path | None) -> Settings:
    """The settings of the environment, with another state folder when one is given."""
    return Settings(state_dir=state_dir) if state_dir else Settings()


def endpoints_for(settings: Settings) -> Endpoints:
    """The broker and database in use: the configured ones, else those `promote up` recorded
    in the state folder; exits (code 2) when there are neither."""
    recorded = Stack(settings).endpoints()
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
