"""`promote review list | show | promote | reject | snooze`: the review app's verdicts for
teams that script. The same core and the same event as the web app (services/review)."""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from promoter.context import AsJson, StateDir, console, endpoints_for, settings_for
from services.review import logic
from services.review.store import PostgresReviewStore
from services.review.verdicts import KafkaVerdicts, give, retirement
from shared.db import connect_pool
from shared.events import CRITERIA, CaseReviewed, Verdict
from shared.settings import Settings

KINDS = ", ".join(logic.FIXTURE_KINDS)
review_app = typer.Typer(help="Held cases and verdicts (the review app, scripted).")
Reviewer = Annotated[
    str | None, typer.Option("--reviewer", help="Who gives the verdict (default: your login).")
]
WholePattern = Annotated[
    bool, typer.Option("--whole-pattern", help="Every open case of the case's pattern.")
]


def _settings(state_dir: Path | None) -> Settings:
    base = settings_for(state_dir)
    endpoints = endpoints_for(base)
    return base.model_copy(
        update={
            "kafka_bootstrap_servers": endpoints.kafka_bootstrap_servers,
            "database_url": endpoints.database_url,
        }
    )


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[PostgresReviewStore]:
    pool = await connect_pool(settings.dsn())
    try:
        yield PostgresReviewStore(pool)
    finally:
        await pool.close()


def _case_json(case: logic.Case) -> dict[str, Any]:
    return {
        "trace_id": case.trace_id,
        "pattern_id": case.pattern_id,
        "agent": case.agent,
        "held_at": case.held_at.isoformat(),
        "total": case.total,
        "risk": case.risk,
        "policy_version": case.policy_version,
        "status": case.status,
        "reason": case.event.reason,
    }


@review_app.command("list")
def list_cases(
    agent: Annotated[str | None, typer.Option(help="Only this agent's cases.")] = None,
    criterion: Annotated[
        str | None, typer.Option(help="Only cases this criterion carries.")
    ] = None,
    state_dir: StateDir = None,
    as_json: AsJson = False,
) -> None:
    """Open held cases, grouped by pattern, riskiest and oldest first."""
    settings = _settings(state_dir)

    async def run() -> list[logic.PatternGroup]:
        async with _store(settings) as store:
            filters = logic.Filters(agent=agent, criterion=criterion)
            return logic.queue(await store.cases(), filters, datetime.now(UTC))

    groups = asyncio.run(run())
    if as_json:
        rows = [
            {"pattern_id": g.pattern_id, "agent": g.agent, "risk": g.risk,
             "cases": [_case_json(c) for c in g.cases]}
            for g in groups
        ]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("pattern", "agent", "trace", "total", "risk", "held at", "reason")
    for g in groups:
        for c in g.cases:
            held = c.held_at.strftime("%Y-%m-%d %H:%M")
            table.add_row(
                g.pattern_id, c.agent, c.trace_id, f"{c.total:.2f}", f"{c.risk:.2f}", held,
                c.event.reason[:80],
            )  # fmt: skip
    console.print(table)


@review_app.command()
def show(trace_id: str, state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """One case: the criteria with their evidence, why it was held, and the conversation."""
    settings = _settings(state_dir)

    async def run() -> logic.Case | None:
        async with _store(settings) as store:
            return await store.case(trace_id)

    case = asyncio.run(run())
    if case is None:
        console.print(f"[red]no case {trace_id}[/red]")
        raise typer.Exit(1)
    turns = logic.conversation(case.event.trace)
    if as_json:
        out = {
            **_case_json(case),
            "scores": {k: v.model_dump(mode="json") for k, v in case.event.scores.items()},
            "conversation": [t.__dict__ for t in turns],
        }
        typer.echo(json.dumps(out, indent=2))
        return
    console.print(f"case {case.trace_id}  pattern {case.pattern_id}  agent {case.agent}")
    console.print(f"held under {case.policy_version}: {case.event.reason}", markup=False)
    for name in CRITERIA:
        score = case.event.scores.get(name)
        console.print(f"  {name:<22} {score.score if score else 0:.2f}", markup=False)
    for t in turns:
        text = t.text
        if t.role == "tool":
            text = f"{t.tool_name}({t.arguments or ''}) -> {t.result or ''}"
        console.print(f"[{t.role}] {text}", markup=False)


async def _publish(settings: Settings, store: PostgresReviewStore, event: CaseReviewed) -> None:
    """Give a verdict from the command line: published (acknowledged), then recorded."""
    publisher = KafkaVerdicts(settings)
    await publisher.start()
    try:
        await give(store, publisher.publish, event)
    finally:
        await publisher.stop()


def _give(
    state_dir: Path | None,
    trace_id: str,
    verdict: Verdict,
    reviewer: str | None,
    whole_pattern: bool,
    **fields: Any,
) -> None:
    settings = _settings(state_dir)

    async def run() -> str:
        async with _store(settings) as store:
            case = await store.case(trace_id)
            if case is None:
                raise typer.BadParameter(f"no case {trace_id}", param_hint="TRACE_ID")
            now = datetime.now(UTC)
            cases = [case]
            if whole_pattern:
                cases += [
                    c
                    for c in await store.cases()
                    if c.pattern_id == case.pattern_id
                    and c.trace_id != trace_id
                    and logic.open_now(c, now)
                ]
            try:
                event = logic.build_verdict(
                    cases, verdict, reviewer or getpass.getuser(), now,
                    whole_pattern=whole_pattern, **fields,
                )  # fmt: skip
            except logic.InvalidVerdict as error:
                raise typer.BadParameter(str(error)) from None
            await _publish(settings, store, event)
            return event.verdict_id

    verdict_id = asyncio.run(run())
    console.print(f"{verdict.value}: verdict {verdict_id} on {trace_id}")


@review_app.command()
def promote(
    trace_id: str,
    answer: Annotated[str | None, typer.Option(help="The correct answer.")] = None,
    tool_call: Annotated[
        list[str] | None, typer.Option(help="A tool call that should have happened (repeat).")
    ] = None,
    must_not: Annotated[
        list[str] | None, typer.Option(help="Something that must not happen (repeat).")
    ] = None,
    kind: Annotated[list[str] | None, typer.Option(help=f"Fixture kind (repeat): {KINDS}.")] = None,
    reviewer: Reviewer = None,
    whole_pattern: WholePattern = False,
    state_dir: StateDir = None,
) -> None:
    """Promote a held case with the expected behaviour: fixtures follow within seconds."""
    _give(
        state_dir, trace_id, Verdict.PROMOTE, reviewer, whole_pattern,
        answer=answer, tool_calls=tuple(tool_call or ()), must_not=tuple(must_not or ()),
        kinds=tuple(kind or ()),
    )  # fmt: skip


@review_app.command()
def reject(
    trace_id: str,
    reason: Annotated[str, typer.Option(help="Why the case is no lesson.")],
    reviewer: Reviewer = None,
    whole_pattern: WholePattern = False,
    state_dir: StateDir = None,
) -> None:
    """Reject a held case (with --whole-pattern, the pattern's later traces are rejected too)."""
    _give(state_dir, trace_id, Verdict.REJECT, reviewer, whole_pattern, reason=reason)


@review_app.command()
def retire(
    fixture_id: str,
    reason: Annotated[str, typer.Option(help="Why the fixture leaves the suite (gate log).")],
    reviewer: Reviewer = None,
    state_dir: StateDir = None,
) -> None:
    """Retire a fixture by hand: the fixture writer takes it out of every export."""
    settings = _settings(state_dir)

    async def run() -> str:
        async with _store(settings) as store:
            who = reviewer or getpass.getuser()
            try:
                event = await retirement(store, fixture_id, reason, who, datetime.now(UTC))
            except logic.InvalidVerdict as error:
                raise typer.BadParameter(str(error)) from None
            if event is None:
                raise typer.BadParameter(f"no fixture {fixture_id}", param_hint="FIXTURE_ID")
            await _publish(settings, store, event)
            return event.verdict_id

    verdict_id = asyncio.run(run())
    console.print(f"retire: verdict {verdict_id} on {fixture_id}")


@review_app.command()
def snooze(
    trace_id: str,
    days: Annotated[float, typer.Option(help="Days until the case is back in the queue.")] = 1.0,
    reviewer: Reviewer = None,
    whole_pattern: WholePattern = False,
    state_dir: StateDir = None,
) -> None:
    """Put a held case aside for some days."""
    _give(state_dir, trace_id, Verdict.SNOOZE, reviewer, whole_pattern, snooze_days=days)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
