"""The committed slice: about 60 runs of both corpora, chosen for recurring failures.

Per corpus: the five tasks with the most failed runs among those that also have at least two
successful runs (ties by task id), three failed and two successful runs of each; and three
tasks that failed exactly once, that failure and one success each. Within a task, runs are
taken round-robin over agent versions, so a recurring failure spans versions.

    python -m tools.corpus.real slice --corpora ../shared/corpora --out tools/corpus/real/data
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tools.corpus.real.model import ConvertedRun

SLICE_FILE = "slice.jsonl"
LABELS_FILE = "labels.jsonl"
DATA_DIR = Path(__file__).parent / "data"
RECURRING_TASKS = 5
FAILURES_PER_TASK = 3
SUCCESSES_PER_TASK = 2
ONE_OFF_TASKS = 3


def _task_key(task: str) -> tuple[int, str]:
    return (int(task), task) if task.isdigit() else (1 << 30, task)


def _round_robin(runs: Sequence[ConvertedRun], count: int) -> list[ConvertedRun]:
    by_version: dict[str, list[ConvertedRun]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: r.run.run_id):
        by_version[run.run.agent_version].append(run)
    queues = [by_version[v] for v in sorted(by_version)]
    picked: list[ConvertedRun] = []
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def choose(runs: Iterable[ConvertedRun]) -> list[ConvertedRun]:
    """The slice's runs of one corpus."""
    failures: dict[str, list[ConvertedRun]] = defaultdict(list)
    successes: dict[str, list[ConvertedRun]] = defaultdict(list)
    for run in runs:
        (failures if run.run.outcome == "failure" else successes)[run.run.task].append(run)
    recurring = sorted(
        (t for t in failures if len(failures[t]) >= 2 and len(successes[t]) >= 2),
        key=lambda t: (-len(failures[t]), _task_key(t)),
    )[:RECURRING_TASKS]
    one_off = sorted(
        (t for t in failures if len(failures[t]) == 1 and successes[t]), key=_task_key
    )[:ONE_OFF_TASKS]
    picked: list[ConvertedRun] = []
    for task in recurring:
        picked += _round_robin(failures[task], FAILURES_PER_TASK)
        picked += _round_robin(successes[task], SUCCESSES_PER_TASK)
    for task in one_off:
        picked += failures[task] + _round_robin(successes[task], 1)
    return picked


def write_slice(runs: Iterable[ConvertedRun], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(runs, key=lambda c: (c.run.start, c.run.run_id))
    with (
        (out / SLICE_FILE).open("w", encoding="utf-8", newline="\n") as traces,
        (out / LABELS_FILE).open("w", encoding="utf-8", newline="\n") as labels,
    ):
        for converted in ordered:
            traces.write(json.dumps(converted.document, ensure_ascii=False) + "\n")
            labels.write(json.dumps(converted.label(), ensure_ascii=False) + "\n")
    return len(ordered)


def read_slice(folder: Path = DATA_DIR) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(OTLP JSON document, label) per committed run, in file order."""
    with (
        (folder / SLICE_FILE).open(encoding="utf-8") as traces,
        (folder / LABELS_FILE).open(encoding="utf-8") as labels,
    ):
        pairs = [(json.loads(t), json.loads(lb)) for t, lb in zip(traces, labels, strict=True) if t]
    return pairs
