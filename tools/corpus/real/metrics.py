"""Figures of one corpus: the pipeline's grouping and promotions against the ground truth,
beside baselines computed in process on the same converted runs.

Ground truth: two runs teach the same lesson when they ran the same task (tau2 ``task_id``,
wiki ``example_id``) with the same outcome. Pairs are counted from the contingency table by
``tools.scripts.eval_grouping.pair_scores``.

Methods compared, each as a grouping (which runs it puts together) and a promotion set:

* ``pipeline``: the real stack's patterns (``dedupe_traces``) and decisions (``traces.scored``);
  a run absent from ``dedupe_traces`` counts as a group of its own;
* ``tool_sequence``: runs with the same exact sequence of tool names and the same outcome;
* ``user_turn_jaccard``: runs whose user turns share word bigrams at Jaccard >= 0.2, same
  outcome (greedy, in start order: a run joins the first group with any member at >= 0.2,
  else founds one);
* ``promote_every_failure``: each failed run promoted on its own.

A grouping baseline promotes the first failed run of each group that has one (one promotion
per group, as a per-pattern budget of one would), so its promotion figures compare with the
pipeline's.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from statistics import mean
from typing import Any

from tools.corpus.real.stack import StackFacts
from tools.scripts.eval_grouping import pair_scores

JACCARD_THRESHOLD = 0.2
_WORD_RE = re.compile(r"\w+")

METHODS = ("pipeline", "tool_sequence", "user_turn_jaccard", "promote_every_failure")


@dataclass(frozen=True)
class Item:
    """One run as the evaluation sees it: its label and what the baselines read."""

    trace_id: str
    task: str
    outcome: str  # success | failure
    start_time: str
    user_turns: tuple[str, ...]
    tool_names: tuple[str, ...]

    @property
    def truth(self) -> str:
        return f"{self.task}|{self.outcome}"

    @property
    def failed(self) -> bool:
        return self.outcome == "failure"


@dataclass(frozen=True)
class Floor:
    name: str
    figure: str  # key path in the report
    op: str  # ">=" | "<=" | "=="
    threshold: float


FLOORS: tuple[Floor, ...] = (
    Floor("failed runs: pairwise precision", "grouping_failed.precision", ">=", 0.8),
    Floor("failed runs: pairwise recall", "grouping_failed.recall", ">=", 0.6),
    Floor("all runs: pairwise precision", "grouping_all.precision", ">=", 0.6),
    Floor(
        "recurring failing tasks with exactly one promoted pattern",
        "one_promoted_pattern.share",
        ">=",
        0.6,
    ),
    Floor("successes promoted", "successes_promoted", "==", 0),
    Floor(
        "fixtures / promote-every-failure fixtures",
        "fixtures_vs_every_failure",
        "<=",
        0.5,
    ),
)


# --- baselines ---------------------------------------------------------------------------------


def tool_sequence_groups(items: Sequence[Item]) -> dict[str, str]:
    return {i.trace_id: f"{i.outcome}|{'>'.join(i.tool_names)}" for i in items}


def bigrams(turns: Iterable[str]) -> frozenset[tuple[str, str]]:
    grams: set[tuple[str, str]] = set()
    for turn in turns:
        words = _WORD_RE.findall(turn.lower())
        grams.update(pairwise(words))
    return frozenset(grams)


def jaccard(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def jaccard_groups(items: Sequence[Item], threshold: float = JACCARD_THRESHOLD) -> dict[str, str]:
    """Greedy in start order: a run joins the first group (same outcome) having any member at
    ``threshold`` or more, else founds a group."""
    groups: list[tuple[str, list[frozenset[tuple[str, str]]]]] = []
    out: dict[str, str] = {}
    for item in sorted(items, key=lambda i: (i.start_time, i.trace_id)):
        grams = bigrams(item.user_turns)
        for index, (outcome, members) in enumerate(groups):
            if outcome == item.outcome and any(jaccard(grams, m) >= threshold for m in members):
                members.append(grams)
                out[item.trace_id] = f"jaccard-{index}"
                break
        else:
            out[item.trace_id] = f"jaccard-{len(groups)}"
            groups.append((item.outcome, [grams]))
    return out


def first_failure_per_group(items: Sequence[Item], groups: Mapping[str, str]) -> set[str]:
    promoted: dict[str, str] = {}
    for item in sorted(items, key=lambda i: (i.start_time, i.trace_id)):
        if item.failed:
            promoted.setdefault(groups[item.trace_id], item.trace_id)
    return set(promoted.values())


# --- figures -----------------------------------------------------------------------------------


def _recurring_tasks(items: Sequence[Item]) -> list[str]:
    failures = Counter(i.task for i in items if i.failed)
    return sorted(t for t, n in failures.items() if n >= 2)


def _figures(
    items: Sequence[Item],
    groups: Mapping[str, str],
    promoted: set[str],
    *,
    fixtures: int | None,
    covered_tasks: int | None,
) -> dict[str, Any]:
    failed = [i for i in items if i.failed]
    recurring = _recurring_tasks(items)
    patterns_per_task = {
        task: len({groups[i.trace_id] for i in failed if i.task == task}) for task in recurring
    }
    promoted_patterns: dict[str, set[str]] = defaultdict(set)
    for item in items:
        if item.trace_id in promoted:
            promoted_patterns[item.task].add(groups[item.trace_id])
    one = sum(1 for task in recurring if len(promoted_patterns[task]) == 1)
    distribution = Counter(patterns_per_task.values())
    return {
        "grouping_all": asdict(pair_scores((groups[i.trace_id], i.truth) for i in items)),
        "grouping_failed": asdict(pair_scores((groups[i.trace_id], i.truth) for i in failed)),
        "patterns_per_recurring_task": {
            "distribution": {str(k): distribution[k] for k in sorted(distribution)},
            "mean": round(mean(patterns_per_task.values()), 3) if patterns_per_task else None,
            "per_task": patterns_per_task,
        },
        "one_promoted_pattern": {
            "count": one,
            "of": len(recurring),
            "share": round(one / len(recurring), 4) if recurring else None,
        },
        "successes_promoted": sum(1 for i in items if i.trace_id in promoted and not i.failed),
        "promotions": len(promoted),
        "promoted_patterns": len({groups[t] for t in promoted}),
        "patterns": len(set(groups.values())),
        "fixtures": fixtures,
        "failing_tasks_covered": covered_tasks,
    }


# Phrases the scoring reason uses for trend and trajectory evidence (services/scoring).
SLOW_FAILURE_PHRASES = ("against the successful runs of this request", "rising:", "rescue load")


def carried_by_slow_failure(facts: StackFacts) -> dict[str, Any]:
    """Promotions whose reason cites a trend or trajectory signal, with one example."""
    carried = sorted(
        (t, d.reason)
        for t, d in facts.decided.items()
        if d.decision == "promote" and any(p in d.reason for p in SLOW_FAILURE_PHRASES)
    )
    return {"promotions": len(carried), "example": carried[0][1] if carried else None}


def evaluate(items: Sequence[Item], facts: StackFacts) -> dict[str, Any]:
    """Every figure of one corpus, with each floor's verdict."""
    failed = [i for i in items if i.failed]
    failing_tasks = sorted({i.task for i in failed})

    pipeline_groups = {
        i.trace_id: (
            facts.grouped[i.trace_id].pattern_id
            if i.trace_id in facts.grouped
            else f"ungrouped:{i.trace_id}"
        )
        for i in items
    }
    pipeline_promoted = {
        t for t, d in facts.decided.items() if d.decision == "promote" and t in pipeline_groups
    }
    fixture_ids = {f.fixture_id for f in facts.fixtures}
    fixture_patterns = {f.pattern_id for f in facts.fixtures}
    covered = {i.task for i in failed if pipeline_groups[i.trace_id] in fixture_patterns} | {
        i.task
        for i in items
        if i.failed and any(f.source_trace_id == i.trace_id for f in facts.fixtures)
    }
    pipeline = _figures(
        items,
        pipeline_groups,
        pipeline_promoted,
        fixtures=len(fixture_ids),
        covered_tasks=len(covered),
    )
    # Fixtures one promoted pattern yields (one per kind): what each promotion of the
    # promote-every-failure baseline would write, each failure being a pattern of its own.
    per_pattern = len(fixture_ids) / len(fixture_patterns) if fixture_patterns else None
    per_promotion = len(fixture_ids) / len(pipeline_promoted) if pipeline_promoted else None
    pipeline["fixtures_per_promoted_pattern"] = (
        None if per_pattern is None else round(per_pattern, 3)
    )
    pipeline["fixtures_per_promotion"] = None if per_promotion is None else round(per_promotion, 3)
    kinds = {f.fixture_id: f.kind for f in facts.fixtures}
    pipeline["fixture_kinds"] = dict(sorted(Counter(kinds.values()).items()))

    def baseline(groups: Mapping[str, str], promoted: set[str]) -> dict[str, Any]:
        fixtures = None if per_pattern is None else round(len(promoted) * per_pattern)
        return _figures(
            items, groups, promoted, fixtures=fixtures, covered_tasks=len(failing_tasks)
        )

    tool_groups = tool_sequence_groups(items)
    jaccard_grouping = jaccard_groups(items)
    every_groups = {i.trace_id: f"run:{i.trace_id}" for i in items}
    methods = {
        "pipeline": pipeline,
        "tool_sequence": baseline(tool_groups, first_failure_per_group(items, tool_groups)),
        "user_turn_jaccard": baseline(
            jaccard_grouping, first_failure_per_group(items, jaccard_grouping)
        ),
        "promote_every_failure": baseline(every_groups, {i.trace_id for i in failed}),
    }
    every_fixtures = methods["promote_every_failure"]["fixtures"]
    if every_fixtures:
        pipeline["fixtures_vs_every_failure"] = round(len(fixture_ids) / every_fixtures, 4)
    else:
        # No fixture to measure kinds by: compare promotions, one per failed run.
        pipeline["fixtures_vs_every_failure"] = (
            round(len(pipeline_promoted) / len(failed), 4) if failed else None
        )
    for name in METHODS[1:]:
        figures = methods[name]
        figures["fixtures_vs_every_failure"] = (
            round(figures["promotions"] / len(failed), 4) if failed else None
        )

    return {
        "runs": len(items),
        "failed_runs": len(failed),
        "tasks": len({i.task for i in items}),
        "failing_tasks": len(failing_tasks),
        "recurring_failing_tasks": len(_recurring_tasks(items)),
        "methods": methods,
        "no_decision": no_decision(items, facts),
        "carried_by_slow_failure": carried_by_slow_failure(facts),
        "dead_letters": {
            "attributed": dict(
                sorted(
                    Counter(
                        f"{d.stage}: {d.error_class}: {d.message[:160]}"
                        for d in facts.dead.values()
                    ).items()
                )
            ),
            "unattributed": facts.unattributed_dead_letters,
        },
        "floors": verdicts(pipeline),
        "stack": {
            "idle": facts.idle,
            "exited_stages": facts.exited_stages,
            "lag": facts.lag,
            "seconds": facts.seconds,
        },
    }


def no_decision(items: Sequence[Item], facts: StackFacts) -> dict[str, Any]:
    """Why runs got no decision: dead-lettered, near copy of an exemplar, pattern already
    covered by a fixture (held back by dedupe), forwarded but never decided, or missing
    (never reached dedupe)."""
    reasons: Counter[str] = Counter()
    for item in items:
        t = item.trace_id
        if t in facts.decided:
            continue
        if t in facts.dead:
            reasons[f"dead-lettered ({facts.dead[t].stage})"] += 1
        elif t in facts.forwarded:
            reasons["forwarded by dedupe, no decision"] += 1
        elif t in facts.grouped and facts.grouped[t].near_copy:
            reasons["near copy of an exemplar"] += 1
        elif t in facts.grouped:
            reasons["pattern already covered"] += 1
        else:
            reasons["missing (never reached dedupe)"] += 1
    return {"total": sum(reasons.values()), "reasons": dict(sorted(reasons.items()))}


def figure_at(figures: Mapping[str, Any], path: str) -> Any:
    value: Any = figures
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def passes(value: Any, op: str, threshold: float) -> bool:
    if value is None:
        return False
    if op == ">=":
        return bool(value >= threshold)
    if op == "<=":
        return bool(value <= threshold)
    return bool(value == threshold)


def verdicts(figures: Mapping[str, Any], floors: Sequence[Floor] = FLOORS) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "figure": f.figure,
            "value": figure_at(figures, f.figure),
            "floor": f"{f.op} {f.threshold:g}",
            "pass": passes(figure_at(figures, f.figure), f.op, f.threshold),
        }
        for f in floors
    ]
