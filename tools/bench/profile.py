"""Summaries of py-spy's raw (collapsed) stacks: where a stage process spends its time.

A line of py-spy's raw output is ``frame;frame;...;leaf COUNT`` with frames written
``function (path/file.py:line)``, the root first.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Component of a sample: the first of these found walking from the leaf towards the root,
# so that a json.loads inside the redaction logic counts as redaction, a pydantic call from
# FastStream's parser as pydantic. (path fragment, component name)
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("services/redaction/", "redaction logic (services/redaction)"),
    ("services/scoring/", "scoring logic (services/scoring)"),
    ("services/dedupe/", "dedupe logic and store (services/dedupe)"),
    ("services/fixture_writer/", "fixture writer (services/fixture_writer)"),
    ("services/ingest/", "ingest decode/assembly (services/ingest)"),
    ("shared/features", "feature derivation (shared/features.py)"),
    ("shared/templating", "message templating (shared/templating.py)"),
    ("presidio", "Presidio (second pass)"),
    ("pydantic", "pydantic (parse / serialise events)"),
    ("asyncpg", "asyncpg (PostgreSQL)"),
    ("aiokafka", "aiokafka (Kafka client)"),
    ("faststream", "FastStream (framework)"),
    ("structlog", "logging"),
    ("logging/", "logging"),
)
OTHER = "other (interpreter, asyncio loop, stdlib)"
# Leaf frames of a thread that waits (the event loop in select(), an idle worker thread):
# py-spy's idle detection lets some of them through; they are not where time goes.
IDLE_LEAVES = frozenset(
    {
        ("EpollSelector.select", "selectors.py"),
        ("PollSelector.select", "selectors.py"),
        ("SelectSelector.select", "selectors.py"),
        ("Condition.wait", "threading.py"),
        ("Event.wait", "threading.py"),
        ("Thread.join", "threading.py"),
        ("_wait_for_tstate_lock", "threading.py"),
    }
)


def is_idle(frames: list[tuple[str, str]]) -> bool:
    if not frames:
        return False
    func, file = frames[-1]
    return (func, file.replace("\\", "/").rsplit("/", 1)[-1]) in IDLE_LEAVES


def parse_frame(frame: str) -> tuple[str, str]:
    """(function, file) of one frame; the line number is dropped."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return match.group("func"), match.group("file")


def parse_raw(text: str) -> list[tuple[list[tuple[str, str]], int]]:
    samples = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or " " not in line:
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [parse_frame(f) for f in stack.split(";") if f]
        samples.append((frames, int(count)))
    return samples


def component_of(frames: list[tuple[str, str]]) -> str:
    for _func, file in reversed(frames):
        path = file.replace("\\", "/")
        for fragment, name in COMPONENTS:
            if fragment in path:
                return name
    return OTHER


def _short(file: str) -> str:
    path = file.replace("\\", "/")
    for anchor in ("site-packages/", "/services/", "/shared/", "/tools/", "/promoter/"):
        if anchor in path:
            kept = path.split(anchor, 1)[1]
            return kept if anchor == "site-packages/" else anchor.strip("/") + "/" + kept
    # py-spy already writes paths relative to the entry of sys.path they were found under.
    return path if not path.startswith("/") else path.rsplit("/", 1)[-1]


def _project(file: str) -> bool:
    path = file.replace("\\", "/")
    return (
        "/services/" in path or "/shared/" in path or path.startswith(("services/", "shared/"))
    ) and "site-packages" not in path


def summarise(text: str, top: int = 12, top_stacks: int = 30) -> dict[str, Any]:
    """Shares of the busy samples (idle waits left out): per component, the hottest
    functions by self time, and the project's functions by inclusive time."""
    parsed = parse_raw(text)
    idle = sum(n for frames, n in parsed if is_idle(frames))
    samples = [(frames, n) for frames, n in parsed if not is_idle(frames)]
    total = sum(n for _, n in samples)
    if total == 0:
        return {
            "samples": 0,
            "idle_samples": idle,
            "components": [],
            "self": [],
            "inclusive_project": [],
        }
    components: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in samples:
        components[component_of(frames)] += n
        if frames:
            func, file = frames[-1]
            self_time[f"{func} ({_short(file)})"] += n
        seen = {f"{func} ({_short(file)})" for func, file in frames if _project(file)}
        for name in seen:
            inclusive[name] += n

    def shares(counter: Counter[str], limit: int | None) -> list[dict[str, Any]]:
        return [
            {"name": name, "samples": n, "share": n / total}
            for name, n in counter.most_common(limit)
        ]

    heaviest = sorted(samples, key=lambda fn: -fn[1])[:top_stacks]
    return {
        "samples": total,
        "idle_samples": idle,
        "top_stacks": [
            {"samples": n, "stack": " < ".join(f"{f} ({_short(p)})" for f, p in reversed(fr))}
            for fr, n in heaviest
        ],
        "components": shares(components, None),
        "self": shares(self_time, top),
        "inclusive_project": shares(inclusive, top),
    }
