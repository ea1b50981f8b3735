"""What people watching long work see (issue 16): progress bars with rate and ETA, lag
draining, and `promote top`. Everything here is quiet when stdout is not a terminal (or
with --json): scripts and CI logs get the one-line results the commands always printed."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from shared import ops

Advance = Callable[[int], None]


def interactive(as_json: bool = False) -> bool:
    return not as_json and sys.stdout.isatty()


@contextlib.contextmanager
def bar(description: str, total: int | None, *, show: bool) -> Iterator[Advance]:
    """A progress bar with count, rate and ETA; a no-op when not shown."""
    if not show:
        yield lambda n: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.0f}/s" if task.speed else "", style="progress.data.speed")


def lag_table(lags: dict[str, dict[str, int]], started: dict[str, int]) -> Table:
    table = Table(title="Draining lag", expand=False)
    table.add_column("consumer group")
    table.add_column("topic")
    table.add_column("lag", justify="right")
    table.add_column("drained", justify="right")
    for group, per_topic in sorted(lags.items()):
        for topic, lag in sorted(per_topic.items()):
            first = started.get(f"{group}/{topic}", lag)
            done = 100.0 if first == 0 else 100.0 * max(0, first - lag) / first
            table.add_row(group.removeprefix("trace-promoter."), topic, str(lag), f"{done:.0f}%")
    return table


# --- promote top ----------------------------------------------------------------------------


@dataclass
class StageView:
    consumed: float = 0.0
    lag: float = 0.0
    dead_letters: float = 0.0
    decisions: dict[str, float] = field(default_factory=dict)
    fixtures: float = 0.0


def scrape(url: str, timeout_s: float = 2.0) -> StageView:
    view = StageView()
    text = httpx.get(f"{url}/metrics", timeout=timeout_s).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "faststream_received_messages_total":
                view.consumed += s.value
            elif s.name == "promoter_consumer_lag":
                view.lag += s.value
            elif s.name == "promoter_dead_letters_total":
                view.dead_letters += s.value
            elif s.name == "promoter_decisions_total":
                key = s.labels["decision"]
                view.decisions[key] = view.decisions.get(key, 0.0) + s.value
            elif s.name == "promoter_fixture_changes_total" and s.labels["change"] in (
                "written",
                "versioned",
            ):
                view.fixtures += s.value
    return view


def top_table(
    now: dict[str, StageView | None], before: dict[str, StageView | None], seconds: float
) -> Table:
    table = Table(title="promote top (every second; Ctrl-C to leave)")
    for name, justify in (
        ("stage", "left"),
        ("msg/s", "right"),
        ("lag", "right"),
        ("dead letters", "right"),
        ("funnel", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for stage, view in sorted(now.items()):
        if view is None:
            table.add_row(stage, "-", "-", "-", "[red]not answering[/red]")
            continue
        previous = before.get(stage)
        rate = (view.consumed - previous.consumed) / seconds if previous and seconds else 0.0
        funnel = ""
        if view.decisions:
            funnel = "  ".join(f"{k} {v:.0f}" for k, v in sorted(view.decisions.items()))
        if view.fixtures:
            funnel = f"fixtures written {view.fixtures:.0f}"
        table.add_row(stage, f"{rate:.1f}", f"{view.lag:.0f}", f"{view.dead_letters:.0f}", funnel)
    return table


def snapshot(state_dir: Path) -> dict[str, StageView | None]:
    views: dict[str, StageView | None] = {}
    for name, url in ops.endpoints(state_dir).items():
        try:
            views[name] = scrape(url)
        except (httpx.HTTPError, ValueError):
            views[name] = None
    return views


def run_top(state_dir: Path, *, once: bool, console: Console) -> None:
    before = snapshot(state_dir)
    at = time.monotonic()
    if once:
        console.print(top_table(before, {}, 0.0))
        return
    with Live(top_table(before, {}, 0.0), console=console, refresh_per_second=4) as live:
        while True:
            time.sleep(1.0)
            now, t = snapshot(state_dir), time.monotonic()
            live.update(top_table(now, before, t - at))
            before, at = now, t
