"""Pairwise precision and recall of dedupe's grouping on the generated, labelled corpus.

    .venv/bin/python tools/scripts/eval_grouping.py [--seed 7] [--scale 1] [--json PATH]

The corpus runs in corpus order (trace start) through the same pure core and store logic
the dedupe stage calls: ``derive_features`` as ingest computes it, ``observe``, then
``record``/``pattern``/``should_forward``/``mark_forwarded`` on the in-memory pattern store.
Exact duplicates go through too (as redeliveries), but their second copies are left out
of the pairs: they would count a trace as grouped with itself.

A pair of traces is a true positive when dedupe put both in one pattern and the labels
give both one ``lesson_id``. Precision: of the pairs dedupe merged, how many share a
lesson (merging two lessons loses protection). Recall: of the pairs sharing a lesson, how
many dedupe merged (splitting one costs a duplicate fixture). Both traps are also scored
on their own, over the pairs among that trap's traces.

Some splits are forced and show up as lost recall: a lesson whose runs sometimes recover
(outcome success) and sometimes do not is split by outcome, which the partition key of
traces.normalized already separates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from services.dedupe import logic as dedupe
from services.dedupe.store import InMemoryPatternStore
from shared.features import derive_features
from tools.corpus.generate import SAME_INTENT, SAME_SHAPE, LabelledTrace, generate

TRAPS = (SAME_SHAPE, SAME_INTENT)


@dataclass(frozen=True)
class PairScores:
    items: int
    true_positives: int
    false_positives: int
    false_negatives: int
    # None when undefined: no pair was merged (precision) or no pair shares a lesson (recall).
    precision: float | None
    recall: float | None


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pair_scores(groupings: Iterable[tuple[str, str]]) -> PairScores:
    """Pairwise scores of (predicted group, true group) per item, counted from the
    contingency table rather than by enumerating pairs, so large corpora stay cheap."""
    cells: Counter[tuple[str, str]] = Counter(groupings)
    predicted: Counter[str] = Counter()
    truth: Counter[str] = Counter()
    for (p, t), n in cells.items():
        predicted[p] += n
        truth[t] += n
    tp = sum(_pairs(n) for n in cells.values())
    fp = sum(_pairs(n) for n in predicted.values()) - tp
    fn = sum(_pairs(n) for n in truth.values()) - tp
    return PairScores(
        items=sum(cells.values()),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=round(tp / (tp + fp), 4) if tp + fp else None,
        recall=round(tp / (tp + fn), 4) if tp + fn else None,
    )


@dataclass(frozen=True)
class Grouped:
    lesson_id: str
    trap: str | None
    duplicate: bool
    pattern_id: str
    outcome: str  # forwarded, near_copy or redelivery


async def group(corpus: list[LabelledTrace]) -> list[Grouped]:
    store = InMemoryPatternStore()
    out: list[Grouped] = []
    for item in corpus:
        trace = item.trace
        observation = dedupe.observe(trace, derive_features(trace))
        recorded = await store.record(observation)
        pattern = await store.pattern(recorded.pattern_id)
        if dedupe.should_forward(recorded, pattern.covered_by_fixture):
            outcome = "forwarded"
        else:
            outcome = "near_copy" if recorded.near_copy else "redelivery"
        await store.mark_forwarded([trace.trace_id])
        out.append(
            Grouped(
                item.labels.lesson_id,
                item.labels.trap,
                item.labels.duplicate_of is not None,
                recorded.pattern_id,
                outcome,
            )
        )
    return out


def report_of(grouped: list[Grouped]) -> dict[str, Any]:
    scored = [g for g in grouped if not g.duplicate]
    lessons_of: dict[str, set[str]] = defaultdict(set)
    patterns_of: dict[str, set[str]] = defaultdict(set)
    for g in scored:
        lessons_of[g.pattern_id].add(g.lesson_id)
        patterns_of[g.lesson_id].add(g.pattern_id)
    return {
        "fingerprint_version": dedupe.FINGERPRINT_VERSION,
        "traces": len(grouped),
        "scored_traces": len(scored),
        "lessons": len(patterns_of),
        "patterns": len(lessons_of),
        "overall": asdict(pair_scores((g.pattern_id, g.lesson_id) for g in scored)),
        "traps": {
            trap: asdict(pair_scores((g.pattern_id, g.lesson_id) for g in scored if g.trap == trap))
            for trap in TRAPS
        },
        "merged_lessons": sorted(sorted(v) for v in lessons_of.values() if len(v) > 1),
        "split_lessons": {k: len(v) for k, v in sorted(patterns_of.items()) if len(v) > 1},
        "outcomes": dict(sorted(Counter(g.outcome for g in grouped).items())),
    }


def evaluate(seed: int = 7, scale: int = 1) -> dict[str, Any]:
    grouped = asyncio.run(group(generate(seed=seed, scale=scale)))
    return {"seed": seed, "scale": scale, **report_of(grouped)}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(
        "pairs of",
        "traces",
        "precision",
        "recall",
        "TP",
        "FP",
        "FN",
        title=f"grouping v{report['fingerprint_version']}, seed {report['seed']},"
        f" scale {report['scale']}: {report['patterns']} patterns for"
        f" {report['lessons']} lessons",
    )
    rows = [("all traces", report["overall"]), *report["traps"].items()]
    for name, r in rows:
        table.add_row(
            name,
            str(r["items"]),
            _pct(r["precision"]),
            _pct(r["recall"]),
            str(r["true_positives"]),
            str(r["false_positives"]),
            str(r["false_negatives"]),
        )
    console.print(table)
    merged = "; ".join(" + ".join(m) for m in report["merged_lessons"])
    console.print(f"patterns merging lessons: {merged or 'none'}")
    split = ", ".join(f"{k} ({n})" for k, n in report["split_lessons"].items())
    console.print(f"lessons split over patterns: {split or 'none'}")
    console.print("outcomes: " + ", ".join(f"{k} {n}" for k, n in report["outcomes"].items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="eval_grouping",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the report here")
    args = parser.parse_args(argv)
    report = evaluate(seed=args.seed, scale=args.scale)
    print_report(report, Console())
    if args.json_path:
        args.json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
