"""`promote replay`: re-score history from traces.redacted under another policy.

The replay reads traces.redacted up to the end offsets it captured at start (so it ends
even while traffic keeps arriving), re-scores every trace with the same pure step the
scoring stage uses, and compares the result with each trace's current decision (the latest
record per trace on traces.scored).

- ``--dry-run`` writes nothing anywhere: partitions are assigned by hand to a consumer
  without a group (no offsets can be committed), budgets live in memory, nothing is
  published. It prints, and can save, the diff.
- Otherwise the new decisions go to traces.scored, promotions also to traces.promoted
  (keyed by pattern id, exactly as the stage publishes them), so the running fixture
  writer turns them into fixture versions stamped with the new policy. The budget is the
  PostgreSQL one, keyed by policy version: a replay under B never sees A's promotions.
  Offsets are committed in the replay's own group, ``trace-promoter.replay.<version>``,
  after each batch's records are acknowledged, so an interrupted replay resumes where it
  stopped when run again without ``--from``/``--from-beginning``.

Running the same replay twice changes nothing in the store: the budget excludes a trace's
own earlier promotion, so every trace is decided as before, and the fixture writer finds
each body already stored under its digest (the stage stamp's time is not part of a body).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError
from rich.markup import escape
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from promoter.context import console
from promoter.context import endpoints_for as _endpoints
from promoter.context import settings_for as _settings
from services.scoring import replay_logic, step
from services.scoring.policy import Policy, PolicyError, load_policy
from services.scoring.replay_logic import DecisionSummary, ReplayDiff
from services.scoring.store import BudgetStore, InMemoryBudgetStore, PostgresBudgetStore
from shared import __version__, topics
from shared.db import connect_pool, migrate
from shared.events import Decision, TraceRedacted
from shared.kafka import (
    admin_client,
    group_lag,
    make_consumer,
    make_producer,
    partitions_of,
    read_topic,
)
from shared.settings import get_settings
from shared.stage import now, stamp, to_bytes

REPLAY_STAGE = topics.REPLAY_STAGE
FETCH_TIMEOUT_MS = 1000


def replay_group(policy_version: str) -> str:
    return topics.consumer_group(f"{REPLAY_STAGE}.{policy_version}")


@dataclass(frozen=True)
class Start:
    """Where each partition's replay begins: its earliest retained record, the first record
    written at or after ``at`` (the Kafka record time, i.e. when the trace reached
    traces.redacted), or the replay group's committed offset (earliest if it has none)."""

    kind: Literal["beginning", "time", "committed"]
    at: datetime | None = None


@dataclass
class ReplayResult:
    diff: ReplayDiff
    replayed: int = 0
    published: int = 0
    promotions_published: int = 0
    skipped: list[str] = field(default_factory=list)


class ReplayTimeout(Exception):
    pass


def parse_from(value: str) -> datetime:
    """An ISO date (midnight UTC) or date-time; without a zone it is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError as exc:
            raise typer.BadParameter(
                f"{value!r} is not an ISO date or date-time", param_hint="--from"
            ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def current_decisions(bootstrap: str) -> dict[str, DecisionSummary]:
    summaries = []
    for value in await read_topic(bootstrap, topics.SCORED):
        try:
            summaries.append(replay_logic.summary_of_record(json.loads(value)))
        except (ValueError, KeyError, TypeError):
            continue  # not a decision this version can read; it cannot be "current" either
    return replay_logic.latest_by_trace(summaries)


async def _start_offsets(
    bootstrap: str,
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    start: Start,
    group: str,
    firsts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    if start.kind == "beginning":
        wanted = dict(firsts)
    elif start.kind == "time":
        assert start.at is not None
        ms = int(start.at.timestamp() * 1000)
        found = await consumer.offsets_for_times({tp: ms for tp in tps})
        # No record at or after that time in a partition: nothing of it to replay.
        wanted = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in tps}
    else:
        # Read through the admin client, which commits nothing: a dry run may look too.
        async with admin_client(bootstrap) as admin:
            committed = await admin.list_consumer_group_offsets(group)
        wanted = {}
        for tp in tps:
            meta = committed.get(tp)
            wanted[tp] = meta.offset if meta is not None and meta.offset >= 0 else firsts[tp]
    # Retention may have removed what a committed offset or a time pointed at.
    return {tp: max(firsts[tp], min(wanted[tp], ends[tp])) for tp in tps}


async def run_replay(
    bootstrap: str,
    policy: Policy,
    start: Start,
    *,
    dry_run: bool,
    dsn: str | None = None,
    timeout_s: float = 600.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Replays traces.redacted from ``start`` up to the end offsets seen at start."""
    deadline = time.monotonic() + timeout_s
    group = replay_group(policy.version)
    before = await current_decisions(bootstrap)

    async with admin_client(bootstrap) as admin:
        tps = (await partitions_of(admin, {topics.REDACTED}))[topics.REDACTED]

    after: dict[str, DecisionSummary] = {}
    result = ReplayResult(diff=replay_logic.diff({}, {}, policy.version))
    async with AsyncExitStack() as cleanup:
        store: BudgetStore
        if dry_run:
            store = InMemoryBudgetStore()
        else:
            if dsn is None:
                raise ValueError("a real replay needs the database (its budget is kept there)")
            pool = await connect_pool(dsn)
            cleanup.push_async_callback(pool.close)
            await migrate(pool)
            store = PostgresBudgetStore(pool)

        # No group for a dry run: such a consumer cannot commit, whatever happens below.
        consumer = make_consumer(
            get_settings(),
            bootstrap_servers=bootstrap,
            group_id=None if dry_run else group,
            client_id="promote-replay",
        )
        await consumer.start()
        cleanup.push_async_callback(consumer.stop)
        producer = None
        if not dry_run:
            producer = make_producer(get_settings(), "promote-replay", bootstrap_servers=bootstrap)
            await producer.start()
            cleanup.push_async_callback(producer.stop)

        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        firsts = await consumer.beginning_offsets(tps)
        starts = await _start_offsets(bootstrap, consumer, tps, start, group, firsts, ends)
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        total = sum(ends[tp] - starts[tp] for tp in tps)
        done = {tp: starts[tp] for tp in tps}
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        if on_progress:
            on_progress(0, total)
        while remaining:
            if time.monotonic() > deadline:
                raise ReplayTimeout(
                    f"replayed {sum(done[tp] - starts[tp] for tp in tps)} of {total} records"
                    f" in {timeout_s:.0f}s"
                )
            batch = await consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS)
            # Records that arrived after the replay started are not part of it.
            records = [r for tp, rs in batch.items() for r in rs if r.offset < ends[tp]]
            acks = await _replay_batch(records, policy, store, producer, result, after)
            if acks:
                await asyncio.gather(*acks)
            for tp in list(remaining):
                done[tp] = min(await consumer.position(tp), ends[tp])
                if done[tp] >= ends[tp]:
                    remaining.discard(tp)
            if not dry_run and batch:
                # Only after the broker acknowledged every output of the batch.
                await consumer.commit({tp: done[tp] for tp in batch})
            if on_progress:
                on_progress(sum(done[tp] - starts[tp] for tp in tps), total)
    result.diff = replay_logic.diff(before, after, policy.version)
    return result


async def _replay_batch(
    records: list[Any],
    policy: Policy,
    store: BudgetStore,
    producer: AIOKafkaProducer | None,
    result: ReplayResult,
    after: dict[str, DecisionSummary],
) -> list[asyncio.Future[Any]]:
    """The scoring stage's own step over one fetched batch, then its outputs handed over."""
    events = []
    for record in records:
        try:
            events.append(TraceRedacted.model_validate_json(record.value))
        except (ValidationError, ValueError, TypeError) as error:
            # The scoring stage dead-lettered it when it first came; a replay only reports it.
            result.skipped.append(
                f"{record.topic}[{record.partition}]@{record.offset}: {type(error).__name__}"
            )
    if not events:
        return []
    decided = await step.decide(
        events, policy, store, None, stamp(REPLAY_STAGE, __version__, now())
    )
    # Recorded before publishing: a crash in between re-decides alike (the batch's own
    # traces are left out of its budget facts).
    await store.record_promotions(step.promotions(decided, policy))
    result.replayed += len(decided)
    after.update((e.trace_id, replay_logic.summary_of_event(e)) for e in decided)
    sends: list[asyncio.Future[Any]] = []
    if producer is None:
        return sends
    # Marked as a replay's: the fixture writer withdraws promotions only on a replay's word.
    headers = [(topics.DECIDED_BY_HEADER, REPLAY_STAGE.encode())]
    for out in decided:
        body, key = to_bytes(out), out.pattern.pattern_id.encode()
        if out.decision == Decision.PROMOTE:
            sends.append(await producer.send(topics.PROMOTED, body, key=key, headers=headers))
            result.promotions_published += 1
        sends.append(await producer.send(topics.SCORED, body, key=key, headers=headers))
        result.published += 1
    return sends


# --- the command ---------------------------------------------------------------------


def _side(s: DecisionSummary | None) -> str:
    return "no decision" if s is None else f"{s.decision.value} {s.total:.2f}"


def print_diff(diff: ReplayDiff, dry_run: bool) -> None:
    verb = "would change" if dry_run else "changed"
    counts = Table(
        "newly promoted",
        "demoted",
        "other changes",
        "unchanged",
        title=f"replay under policy {diff.policy_version}: what {verb}",
    )
    counts.add_row(*(str(diff.counts[c]) for c in replay_logic.CATEGORIES))
    console.print(counts)
    for category in ("promoted", "demoted", "changed"):
        changes = getattr(diff, category)
        if not changes:
            continue
        console.rule(f"{replay_logic.TITLES[category]} ({len(changes)})")
        for c in changes:
            # A line per change and its reason below it: reasons are paragraphs, which a
            # table column would fold into a narrow tower.
            console.print(
                f"[bold]{c.trace_id}[/bold]  {c.pattern_id}  {_side(c.before)} → {_side(c.after)}",
                highlight=False,
            )
            console.print(Padding(escape(c.after.reason), (0, 0, 1, 4)), highlight=False)
    if diff.unchanged:
        console.print(f"{len(diff.unchanged)} unchanged (listed with their reasons by --save)")


def save_diff(diff: ReplayDiff, path: Path) -> None:
    if path.suffix.lower() == ".md":
        path.write_text(replay_logic.to_markdown(diff), encoding="utf-8")
    else:
        path.write_text(json.dumps(replay_logic.to_json(diff), indent=2) + "\n", encoding="utf-8")


def _start(from_: str | None, from_beginning: bool) -> Start:
    if from_ and from_beginning:
        raise typer.BadParameter("give --from or --from-beginning, not both")
    if from_beginning:
        return Start("beginning")
    if from_:
        return Start("time", parse_from(from_))
    return Start("committed")


def replay(
    policy_path: Annotated[
        Path,
        typer.Option(
            "--policy",
            help="Policy file to re-score under.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Replay records that reached traces.redacted at or after"
            " this ISO date or date-time (UTC unless given).",
        ),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Replay everything retained.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write nothing; print what would change.")
    ] = False,
    save: Annotated[
        Path | None, typer.Option("--save", help="Write the diff to PATH.json or PATH.md.")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="State folder (default ./.promote).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before giving up.")] = 600.0,
) -> None:
    """Re-score history from traces.redacted under another policy (without --from or
    --from-beginning: resume where this policy's last replay stopped)."""
    if save is not None and save.suffix.lower() not in (".json", ".md"):
        raise typer.BadParameter("must end in .json or .md", param_hint="--save")
    start = _start(from_, from_beginning)
    try:
        policy = load_policy(policy_path)
    except PolicyError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    endpoints = _endpoints(_settings(state_dir))
    bootstrap = endpoints.kafka_bootstrap_servers

    backlog = sum(
        asyncio.run(
            group_lag(bootstrap, topics.consumer_group("scoring"), [topics.REDACTED])
        ).values()
    )
    if backlog:
        console.print(
            f"[yellow]scoring has {backlog} trace(s) still to decide: their current"
            " decisions are not on traces.scored yet.[/yellow]"
        )
    mode = "dry run, nothing is written" if dry_run else f"group {replay_group(policy.version)}"
    console.print(f"replaying {topics.REDACTED} under policy {policy.version} ({mode})")

    from promoter.progress import RateColumn, interactive

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not interactive(),  # quiet when not on a terminal
    ) as progress:
        task = progress.add_task("re-scoring", total=None)

        def show(completed: int, total: int) -> None:
            progress.update(task, completed=completed, total=total)

        try:
            result = asyncio.run(
                run_replay(
                    bootstrap,
                    policy,
                    start,
                    dry_run=dry_run,
                    dsn=endpoints.database_url,
                    timeout_s=timeout,
                    on_progress=show,
                )
            )
        except ReplayTimeout as error:
            resume = "" if dry_run else " (offsets so far are committed: run again to resume)"
            console.print(f"[red]timed out: {error}{resume}[/red]")
            raise typer.Exit(1) from error

    print_diff(result.diff, dry_run)
    for line in result.skipped:
        console.print(f"[yellow]skipped unreadable record {line}[/yellow]")
    if not dry_run:
        console.print(
            f"published {result.published} decision(s) to {topics.SCORED},"
            f" {result.promotions_published} to {topics.PROMOTED}"
            " (`promote wait` until the fixture writer has them)"
        )
    if save is not None:
        save_diff(result.diff, save)
        console.print(f"diff saved to {save}")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
