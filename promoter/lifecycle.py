"""`promote up | down | topics | migrate`: the local stack's life, and the one-off setup of a
cluster and a database that someone else runs."""

from __future__ import annotations

import asyncio

import typer

from promoter.context import StateDir, console, endpoints_for, settings_for
from promoter.supervisor import (
    API_KEY_FILE,
    RECEIVER,
    REVIEW,
    REVIEW_HTTP,
    REVIEW_KEY_FILE,
    STAGES,
    Stack,
)
from shared.db import connect_pool, migrate
from shared.kafka import ensure_topics


def up(state_dir: StateDir = None) -> None:
    """Start the local broker, database and all five stages in the background."""
    stack = Stack(settings_for(state_dir))
    endpoints = stack.up()
    console.print(f"Kafka     {endpoints.kafka_bootstrap_servers}")
    console.print(f"Postgres  {endpoints.public()['database_url']}")
    for stage in (*STAGES, RECEIVER, REVIEW, REVIEW_HTTP):
        console.print(f"{stage:<15} pid {stack.stage_pid(stage)}")
    console.print(f"OTLP/HTTP {endpoints.ingest_http} (API key in {stack.state / API_KEY_FILE})")
    key_file = stack.state / REVIEW_KEY_FILE
    console.print(f"Review    {endpoints.review_http} (review key in {key_file})")


def down(state_dir: StateDir = None) -> None:
    """Stop every stage, then the local broker and database."""
    Stack(settings_for(state_dir)).down()
    console.print("stopped")


def topics_create(state_dir: StateDir = None) -> None:
    """Create the pipeline topics on the configured cluster (idempotent)."""
    settings = settings_for(state_dir)
    created = asyncio.run(ensure_topics(settings.bootstrap_servers(), settings))
    console.print(f"created: {', '.join(created) or 'nothing new'}")


def migrate_db(state_dir: StateDir = None) -> None:
    """Apply database migrations (idempotent)."""
    endpoints = endpoints_for(settings_for(state_dir))

    async def run() -> list[str]:
        pool = await connect_pool(endpoints.database_url)
        try:
            return await migrate(pool)
        finally:
            await pool.close()

    applied = asyncio.run(run())
    console.print(f"applied: {', '.join(applied) or 'nothing new'}")


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command("topics")(topics_create)
    app.command("migrate")(migrate_db)
