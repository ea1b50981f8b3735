"""`promote fixtures | decisions | dlq`: what the pipeline has produced, read back from the
fixture store and the decision and dead-letter topics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.table import Table

from promoter.context import AsJson, StateDir, console, endpoints_for, settings_for
from shared import topics
from shared.db import connect_pool
from shared.kafka import read_topic


async def current_fixtures(dsn: str) -> list[dict[str, Any]]:
    """Every fixture at its current version, with the reason it was promoted."""
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


def fixtures(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """The fixtures in the store (current versions)."""
    endpoints = endpoints_for(settings_for(state_dir))
    rows = asyncio.run(current_fixtures(endpoints.database_url))
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


def decisions(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Every scoring decision on traces.scored."""
    endpoints = endpoints_for(settings_for(state_dir))
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


def dlq(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Dead letters on traces.dlq: stage, error class, message, trace id."""
    endpoints = endpoints_for(settings_for(state_dir))
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


def register(app: typer.Typer) -> None:
    app.command()(fixtures)
    app.command()(decisions)
    app.command()(dlq)
