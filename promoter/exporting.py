"""`promote export` and `promote report`: the fixture store → files offline suites and
release gates consume. The formats themselves are pure functions in
services/fixture_writer/exports.py and report.py; this module reads PostgreSQL and writes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from promoter.charts import draw
from promoter.context import StateDir, console, endpoints_for, settings_for
from services.fixture_writer.degrading import PatternSeries, degrading, render_degrading
from services.fixture_writer.exports import EXPORTERS, ExportRow, export
from services.fixture_writer.logic import FixtureKind
from services.fixture_writer.report import GateEntry, render_report
from services.fixture_writer.reviewed import render_verdicts
from shared.db import connect_pool
from shared.trends import BASELINE_DAYS, RECENT_DAYS, DayCount

FORMATS = tuple(EXPORTERS)
KINDS = tuple(k.value for k in FixtureKind)


def _json(value: Any) -> Any:
    # asyncpg hands jsonb over as text unless a codec is set on every connection.
    return json.loads(value) if isinstance(value, str) else value


async def read_export_rows(
    pool: asyncpg.Pool, since: datetime | None = None, kind: str | None = None
) -> list[ExportRow]:
    """The current version of every active fixture (written at or after `since`, of `kind`
    when given), with the evidence of that version."""
    records = await pool.fetch(
        """SELECT f.fixture_id, f.kind, f.current_version AS version, v.body, v.body_sha256,
                  v.created_at,
                  e.source_trace_ids, e.first_seen, e.last_seen, e.occurrences, e.scores,
                  COALESCE(e.policy_version, v.policy_version) AS policy_version, e.reason
           FROM fixtures f
           JOIN fixture_versions v
             ON v.fixture_id = f.fixture_id AND v.version = f.current_version
           LEFT JOIN fixture_evidence e
             ON e.fixture_id = f.fixture_id AND e.version = f.current_version
           WHERE f.status = 'active'
             AND ($1::timestamptz IS NULL OR v.created_at >= $1)
             AND ($2::text IS NULL OR f.kind = $2)
           ORDER BY f.fixture_id""",
        since,
        kind,
    )
    return [
        ExportRow(
            fixture_id=r["fixture_id"],
            kind=r["kind"],
            version=r["version"],
            body=_json(r["body"]),
            created_at=r["created_at"],
            source_trace_ids=tuple(r["source_trace_ids"] or ()),
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
            occurrences=r["occurrences"],
            scores=_json(r["scores"]) or {},
            policy_version=r["policy_version"],
            reason=r["reason"],
            body_sha256=r["body_sha256"],
        )
        for r in records
    ]


async def read_gate_entries(pool: asyncpg.Pool, since: datetime | None = None) -> list[GateEntry]:
    """The release-gate log from `since` on, each line with the evidence of its version."""
    records = await pool.fetch(
        """SELECT g.at, g.action, g.fixture_id, g.version, g.kind, g.pattern_id, g.criteria,
                  g.reason, e.source_trace_ids,
                  COALESCE(NULLIF(g.policy_version, ''), e.policy_version) AS policy_version,
                  e.occurrences,
                  e.first_seen, e.last_seen
           FROM gate_log g
           LEFT JOIN fixture_evidence e ON e.fixture_id = g.fixture_id AND e.version = g.version
           WHERE $1::timestamptz IS NULL OR g.at >= $1
           ORDER BY g.at, g.id""",
        since,
    )
    return [
        GateEntry(
            at=r["at"],
            action=r["action"],
            fixture_id=r["fixture_id"],
            version=r["version"],
            kind=r["kind"],
            pattern_id=r["pattern_id"],
            criteria=tuple(r["criteria"] or ()),
            reason=r["reason"],
            source_trace_ids=tuple(r["source_trace_ids"] or ()),
            policy_version=r["policy_version"],
            occurrences=r["occurrences"],
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
        )
        for r in records
    ]


def write_files(files: dict[str, str], out: Path, progress: Progress | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    task = progress.add_task("writing files", total=len(files)) if progress else None
    written = []
    for name, text in sorted(files.items()):
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
        if progress is not None and task is not None:
            progress.advance(task)
    return written


async def export_fixtures(
    dsn: str,
    fmt: str,
    out: Path,
    *,
    since: datetime | None = None,
    kind: str | None = None,
    console: Console | None = None,
) -> tuple[int, list[Path]]:
    """Reads, renders and writes one export; returns how many fixtures and which files."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        reading = progress.add_task("reading fixtures", total=None)
        pool = await connect_pool(dsn)
        try:
            rows = await read_export_rows(pool, since, kind)
        finally:
            await pool.close()
        progress.update(reading, total=len(rows), completed=len(rows))
        files = export(fmt, progress.track(rows, description=f"rendering {fmt}"))
        return len(rows), write_files(files, out, progress)


async def read_pattern_series(pool: asyncpg.Pool) -> tuple[list[PatternSeries], date | None]:
    """Every pattern's daily series over the trend windows before the latest day the store
    has seen (event time, so a replayed or late stream is judged on its own days)."""
    latest = await pool.fetchval("SELECT max(start)::date FROM pattern_series WHERE grain = 'day'")
    if latest is None:
        return [], None
    since = latest - timedelta(days=RECENT_DAYS + BASELINE_DAYS)
    rows = await pool.fetch(
        """WITH traffic AS (
               SELECT agent, start::date AS day, sum(traces)::int AS traces FROM agent_series
               WHERE grain = 'day' AND start::date >= $1 GROUP BY 1, 2),
           seen AS (
               SELECT pattern_id, agent, start::date AS day, sum(occurrences)::int AS n,
                      sum(rescues)::int AS rescues
               FROM pattern_series WHERE grain = 'day' AND start::date >= $1 GROUP BY 1, 2, 3)
           SELECT p.pattern_id, p.agent, t.day, coalesce(s.n, 0) AS n,
                  coalesce(s.rescues, 0) AS rescues, t.traces,
                  c.pattern_id IS NOT NULL AS covered
           FROM (SELECT DISTINCT pattern_id, agent FROM seen) p
           JOIN traffic t ON t.agent = p.agent
           LEFT JOIN seen s ON s.pattern_id = p.pattern_id AND s.day = t.day
           LEFT JOIN pattern_coverage c ON c.pattern_id = p.pattern_id
           ORDER BY p.pattern_id, t.day""",
        since,
    )
    grouped: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        grouped.setdefault(r["pattern_id"], []).append(r)
    return [
        PatternSeries(
            pattern_id=pattern_id,
            agent=rs[0]["agent"],
            covered=rs[0]["covered"],
            days=tuple(DayCount(r["day"], r["n"], r["traces"], r["rescues"]) for r in rs),
        )
        for pattern_id, rs in grouped.items()
    ], latest


async def read_verdicts(pool: asyncpg.Pool, since: datetime | None) -> list[dict[str, Any]]:
    """People's verdicts on held cases (services/review), newest first."""
    rows = await pool.fetch(
        """SELECT verdict_id, pattern_id, verdict, reviewer, reason, expected, trace_ids, at
           FROM review_verdicts WHERE $1::timestamptz IS NULL OR at >= $1
           ORDER BY at DESC, verdict_id""",
        since,
    )
    return [{**dict(r), "expected": _json(r["expected"])} for r in rows]


async def gate_report(
    dsn: str, since: datetime | None = None, charts_dir: Path | None = None
) -> str:
    """The release-gate report as Markdown, straight from the store; with ``charts_dir``,
    a trend chart of each degrading pattern is drawn there and linked."""
    pool = await connect_pool(dsn)
    try:
        entries = await read_gate_entries(pool, since)
        series, today = await read_pattern_series(pool)
        verdicts = await read_verdicts(pool, since)
    finally:
        await pool.close()
    markdown = render_report(entries, since)
    if verdicts:
        markdown = markdown.rstrip("\n") + "\n" + "\n".join(render_verdicts(verdicts)) + "\n"
    if today is None:
        return markdown
    items = degrading(series, today)
    charts: dict[str, str] = {}
    if charts_dir is not None:
        for item in items:
            path = draw(item, charts_dir)
            charts[item.series.pattern_id] = f"{charts_dir.name}/{path.name}"
    return markdown + "\n".join(render_degrading(items, charts, today)) + "\n"


def parse_since(value: str | None) -> datetime | None:
    """An ISO date or date-time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO date or date-time (2026-11-01, 2026-11-01T08:00:00Z)",
            param_hint="--since",
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


Since = Annotated[
    str | None, typer.Option("--since", help="Only what changed from this ISO date(-time) on.")
]


def register(app: typer.Typer) -> None:
    """Adds `export` and `report` to the CLI."""

    @app.command("export")
    def export_command(
        fmt: Annotated[str, typer.Option("--format", help="|".join(FORMATS))],
        out: Annotated[Path, typer.Option("--out", help="Folder to write the files into.")],
        since: Since = None,
        kind: Annotated[str | None, typer.Option("--kind", help="|".join(KINDS))] = None,
        state_dir: StateDir = None,
    ) -> None:
        """Export the current fixtures for an offline suite."""
        if fmt not in FORMATS:
            raise typer.BadParameter(
                f"unknown format {fmt!r}; one of {', '.join(FORMATS)}", param_hint="--format"
            )
        if kind is not None and kind not in KINDS:
            raise typer.BadParameter(
                f"unknown kind {kind!r}; one of {', '.join(KINDS)}", param_hint="--kind"
            )
        endpoints = endpoints_for(settings_for(state_dir))
        count, files = asyncio.run(
            export_fixtures(
                endpoints.database_url,
                fmt,
                out,
                since=parse_since(since),
                kind=kind,
                console=console,
            )
        )
        console.print(f"exported {count} fixture(s) as {fmt} to {out}:")
        for path in files:
            console.print(f"  {path}")

    @app.command("report")
    def report_command(
        since: Since = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Write the Markdown here, not to stdout.")
        ] = None,
        state_dir: StateDir = None,
    ) -> None:
        """The release-gate report (Markdown): fixtures added, versioned or retired, and why."""
        endpoints = endpoints_for(settings_for(state_dir))
        charts = None if out is None else out.parent / f"{out.stem}-charts"
        markdown = asyncio.run(gate_report(endpoints.database_url, parse_since(since), charts))
        if out is None:
            # Plain echo: rich would read [brackets] in reasons as markup.
            typer.echo(markdown, nl=False)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown, encoding="utf-8")
        console.print(f"wrote the release-gate report to {out}")
