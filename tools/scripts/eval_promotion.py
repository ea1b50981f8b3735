"""Precision and recall of the promotion decision on the generated, labelled corpus.

    .venv/bin/python tools/scripts/eval_promotion.py [--policy FILE] [--seed 7] [--scale 1]
                                               [--json PATH]

The corpus runs in process through the same pure cores the stages call, in corpus order
(trace start), one trace at a time:

- ingest: ``derive_features`` and ``is_complete`` of the trace as sent;
- dedupe: ``observe`` → store ``record``/``pattern`` → ``should_forward`` → ``mark_forwarded``
  on an in-memory pattern store: an exact redelivery is dropped, and a pattern the fixture
  writer has covered is no longer forwarded (its counts still grow);
- redaction: ``redact_trace`` and features recomputed from the redacted trace; a trace that
  cannot be redacted is dead-lettered, i.e. never promoted;
- scoring: the stage's own step under the policy with an in-memory budget store;
- fixture writer: a promotion's fixtures go through the write-time privacy check, and the
  pattern counts as covered once one of them would have been stored.

That is the pipeline with no latency between the stages: live, a pattern is covered a little
later (the fixture writer, then fixtures.index, then dedupe), so a live run can promote a
few more traces of a pattern than this, never fewer lessons.

Ground truth is ``labels.should_promote``. Per trace, each corpus item (an exact duplicate
is its own item, labelled not-to-promote) is a positive when its delivery was promoted. Per
lesson, a lesson is protected when at least one of its traces was promoted, and deserves
protection when any of its traces should be promoted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from services.dedupe import logic as dedupe
from services.dedupe.store import InMemoryPatternStore, PatternStore
from services.dedupe.trajectory import trajectory
from services.fixture_writer.logic import build_fixtures, fixture_strings
from services.redaction.logic import RedactionFailed, redact_trace
from services.redaction.second_pass import find_leaks
from services.scoring import step
from services.scoring.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from services.scoring.store import BudgetStore, InMemoryBudgetStore
from shared.events import Decision, StageStamp, Trace, TraceRedacted
from shared.features import derive_features, is_complete
from tools.corpus.generate import LabelledTrace, generate

# Outcomes of a corpus item besides the three decisions: dropped by dedupe as an exact
# redelivery, not forwarded because its pattern is covered, dead-lettered by redaction.
DROPPED_DUPLICATE = "duplicate"
NOT_FORWARDED = "covered"
DEAD_LETTERED = "dead_letter"
OUTCOMES = ("promote", "hold", "reject", DROPPED_DUPLICATE, NOT_FORWARDED, DEAD_LETTERED)

# Stamps do not influence a decision; a fixed one keeps runs byte-identical.
EVAL_STAMP = StageStamp(stage="eval", version="0", at=datetime(2026, 1, 1, tzinfo=UTC))


@dataclass(frozen=True)
class Outcome:
    lesson_id: str
    family: str
    should_promote: bool
    promoted: bool


@dataclass(frozen=True)
class Rates:
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    # None when undefined: nothing was predicted (precision) or nothing was expected (recall).
    precision: float | None
    recall: float | None


@dataclass(frozen=True)
class Metrics:
    per_trace: Rates
    per_lesson: Rates


def _rates(pairs: Iterable[tuple[bool, bool]]) -> Rates:
    counts: Counter[tuple[bool, bool]] = Counter(pairs)  # (truth, predicted)
    tp, fp = counts[(True, True)], counts[(False, True)]
    fn, tn = counts[(True, False)], counts[(False, False)]
    return Rates(
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        true_negatives=tn,
        precision=round(tp / (tp + fp), 4) if tp + fp else None,
        recall=round(tp / (tp + fn), 4) if tp + fn else None,
    )


def promotion_metrics(outcomes: Iterable[Outcome]) -> Metrics:
    """Per trace and per lesson precision/recall of "should be promoted"."""
    items = list(outcomes)
    lessons: dict[str, tuple[bool, bool]] = {}
    for o in items:
        should, protected = lessons.get(o.lesson_id, (False, False))
        lessons[o.lesson_id] = (should or o.should_promote, protected or o.promoted)
    return Metrics(
        per_trace=_rates((o.should_promote, o.promoted) for o in items),
        per_lesson=_rates(lessons.values()),
    )


def lesson_lists(outcomes: Iterable[Outcome]) -> dict[str, list[str]]:
    """Lessons wrongly protected and lessons left unprotected, for a reader to look at."""
    should: dict[str, bool] = {}
    protected: dict[str, bool] = {}
    for o in outcomes:
        should[o.lesson_id] = should.get(o.lesson_id, False) or o.should_promote
        protected[o.lesson_id] = protected.get(o.lesson_id, False) or o.promoted
    return {
        "promoted_but_should_not": sorted(k for k in should if protected[k] and not should[k]),
        "missed": sorted(k for k in should if should[k] and not protected[k]),
    }


async def _run_pipeline(corpus: list[LabelledTrace], policy: Policy) -> list[tuple[Outcome, str]]:
    patterns = InMemoryPatternStore()
    budgets = InMemoryBudgetStore()
    results: list[tuple[Outcome, str]] = []
    for item in corpus:
        outcome = await _one(item, policy, patterns, budgets)
        labels = item.labels
        results.append(
            (
                Outcome(
                    labels.lesson_id, labels.family, labels.should_promote, outcome == "promote"
                ),
                outcome,
            )
        )
    return results


async def upstream(trace: Trace, patterns: PatternStore) -> TraceRedacted | str:
    """Ingest, dedupe and redaction of one trace as sent: the event scoring would receive,
    or why it receives none."""
    features = derive_features(trace)
    observation = dedupe.observe(trace, features)
    recorded = await patterns.record(observation)
    today = observation.seen_at.date()
    days = await patterns.days(recorded.pattern_id, observation.agent, today)
    pattern = dedupe.with_trend(await patterns.pattern(recorded.pattern_id), days, today)
    forward = dedupe.should_forward(recorded, pattern.covered_by_fixture, dedupe.is_rising(pattern))
    await patterns.mark_forwarded([trace.trace_id])
    if not forward:
        return DROPPED_DUPLICATE if recorded.already_forwarded else NOT_FORWARDED
    reference, paths = await patterns.reference(observation)
    try:
        clean, report = redact_trace(trace)
    except RedactionFailed:
        return DEAD_LETTERED
    return TraceRedacted(
        trace_id=trace.trace_id,
        stages=(EVAL_STAMP,),
        trace=clean,
        features=derive_features(clean),
        complete=is_complete(trace),
        pattern=pattern,
        baseline=await patterns.baseline(observation.agent),
        trajectory=trajectory(trace, paths, reference),
        redaction=report,
    )


async def _one(
    item: LabelledTrace,
    policy: Policy,
    patterns: PatternStore,
    budgets: BudgetStore,
) -> str:
    event = await upstream(item.trace, patterns)
    if isinstance(event, str):
        return event
    (scored,) = await step.decide([event], policy, budgets, None, EVAL_STAMP)
    await budgets.record_promotions(step.promotions([scored], policy))
    if scored.decision == Decision.PROMOTE:
        stored = [d for d in build_fixtures(scored) if not find_leaks(fixture_strings(d.body))]
        if stored:
            await patterns.set_coverage(event.pattern.pattern_id, 1, event.pattern.last_seen)
    return scored.decision.value


def evaluate(policy: Policy, seed: int = 7, scale: int = 1) -> dict[str, Any]:
    corpus = generate(seed=seed, scale=scale)
    results = asyncio.run(_run_pipeline(corpus, policy))
    outcomes = [o for o, _ in results]
    metrics = promotion_metrics(outcomes)
    families: dict[str, Counter[str]] = {}
    for o, what in results:
        families.setdefault(o.family, Counter())[what] += 1
    return {
        "policy_version": policy.version,
        "seed": seed,
        "scale": scale,
        "traces": len(corpus),
        "per_trace": asdict(metrics.per_trace),
        "per_lesson": asdict(metrics.per_lesson),
        "outcomes": dict(Counter(what for _, what in results)),
        "families": {
            f: {
                "should_promote": any(o.should_promote for o in outcomes if o.family == f),
                **{k: n for k, n in c.items()},
            }
            for f, c in sorted(families.items())
        },
        **lesson_lists(outcomes),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(
        "",
        "precision",
        "recall",
        "TP",
        "FP",
        "FN",
        "TN",
        title=f"policy {report['policy_version']}, seed {report['seed']}, scale"
        f" {report['scale']}: {report['traces']} traces",
    )
    for name, key in (("per trace", "per_trace"), ("per lesson", "per_lesson")):
        r = report[key]
        table.add_row(
            name,
            _pct(r["precision"]),
            _pct(r["recall"]),
            str(r["true_positives"]),
            str(r["false_positives"]),
            str(r["false_negatives"]),
            str(r["true_negatives"]),
        )
    console.print(table)
    families = Table(
        "family",
        "should",
        *OUTCOMES,
        title="outcome per family",
        caption="duplicate: exact redelivery dropped by dedupe; covered: pattern"
        " already covered, not forwarded; dead_letter: redaction failed",
    )
    for family, counts in report["families"].items():
        families.add_row(
            family,
            "yes" if counts["should_promote"] else "no",
            *(str(counts.get(o, 0)) for o in OUTCOMES),
        )
    console.print(families)
    for key, title in (
        ("promoted_but_should_not", "lessons promoted that should not be"),
        ("missed", "lessons that should be promoted and were not"),
    ):
        console.print(f"{title}: {', '.join(report[key]) or 'none'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="eval_promotion",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY_PATH)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the report here")
    args = parser.parse_args(argv)
    report = evaluate(load_policy(args.policy), seed=args.seed, scale=args.scale)
    print_report(report, Console())
    if args.json_path:
        args.json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
