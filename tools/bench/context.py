"""What every benchmark section shares: the plan, the stack, progress output, results."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from promoter.supervisor import Endpoints, Stack
from tools.bench.procs import Processes


@dataclass(frozen=True)
class Plan:
    """How much of everything: ``quick`` is a smoke run (under three minutes), the full run
    takes its time: long runs (at least 20,000 traces end to end and per stage, 100,000
    records per Kafka tool run) for stable medians."""

    quick: bool
    reps: int  # repetitions of every timed run; the report gives their median
    perf_records: int  # measured records per Kafka perf-tool run
    perf_warmup_records: int  # sent first by ProducerPerformance, left out of its figures
    corpus_scale: int  # generate(seed, scale): ~163 complete traces per unit
    latency_seconds: float  # paced sending per latency repetition
    isolation_events: int  # events per isolated stage run
    growth_sizes: tuple[int, ...]
    growth_traces: int  # traces whose store calls are timed per size and repetition
    presidio_other_share: float  # share of the non-PII traces whose strings are compared
    profile_events: int
    compute_events: int  # events per stage for the pure-compute (in-process) rates
    # The one-record-at-a-time pass-through chain of before the batched kernel, for
    # comparison, on this many of the corpus' traces (0: not run).
    single_chain_messages: int = 0
    # Extras of the full run: a profile of the end-to-end bottleneck when it is not the
    # slowest stage.
    extras: bool = True
    assembly_quiet_ms: int = 50
    assembly_max_wait_ms: int = 5_000
    seed: int = 7

    @staticmethod
    def make(quick: bool) -> Plan:
        if quick:
            return Plan(
                quick=True,
                reps=1,
                perf_records=5_000,
                perf_warmup_records=1_000,
                corpus_scale=1,
                latency_seconds=4.0,
                isolation_events=40,
                growth_sizes=(10_000,),
                growth_traces=100,
                presidio_other_share=0.06,
                profile_events=40,
                compute_events=40,
                extras=False,
            )
        return Plan(
            quick=False,
            reps=3,
            perf_records=100_000,
            perf_warmup_records=20_000,
            corpus_scale=125,  # ~20,400 traces
            latency_seconds=30.0,
            isolation_events=20_000,
            growth_sizes=(10_000, 100_000, 1_000_000),
            growth_traces=1_000,
            presidio_other_share=0.15,
            profile_events=200,
            compute_events=2_000,
            single_chain_messages=1_000,
        )


class Reporter:
    """Progress on stderr: one line per finished step, a live bar for the current one."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.started = time.monotonic()

    def __enter__(self) -> Reporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        self.progress.console.print(f"[dim]{elapsed:7.1f}s[/dim] {message}", highlight=False)

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[TaskHandle]:
        task_id = self.progress.add_task(description, total=total)
        handle = TaskHandle(self.progress, task_id)
        started = time.monotonic()
        try:
            yield handle
        finally:
            self.progress.remove_task(task_id)
            if handle.summary is not None:
                self.log(
                    f"{description}: {handle.summary} "
                    f"[dim]({time.monotonic() - started:.1f}s)[/dim]"
                )


@dataclass
class TaskHandle:
    progress: Progress
    task_id: TaskID
    summary: str | None = None

    def update(
        self,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {}
        if completed is not None:
            kwargs["completed"] = completed
        if total is not None:
            kwargs["total"] = total
        if description is not None:
            kwargs["description"] = description
        self.progress.update(self.task_id, **kwargs)

    def done(self, summary: str) -> None:
        self.summary = summary


@dataclass
class Context:
    plan: Plan
    stack: Stack
    endpoints: Endpoints
    procs: Processes
    reporter: Reporter
    work: Path
    results: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.endpoints.kafka_bootstrap_servers

    @property
    def dsn(self) -> str:
        return self.endpoints.database_url
