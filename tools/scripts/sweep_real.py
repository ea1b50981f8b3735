"""Grouping and promotion on the real corpora, in process, for choosing thresholds.

    .venv/bin/python tools/scripts/sweep_real.py [--corpora ../shared/corpora] [--json PATH]

Each corpus is converted to OTLP as an instrumentation would send it, decoded by ingest's
decoder, and run through the pure cores with in-memory stores (``tools.scripts.eval_promotion``'s
``upstream``), once per intent threshold. It prints pairwise precision and recall over all
runs and over failed runs, and for the product's threshold the promotion figures. The
threshold is chosen on one corpus and read on the other; ``make eval`` measures the chosen
one on the real stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from services.dedupe.logic import INTENT_THRESHOLD
from services.dedupe.store import InMemoryPatternStore
from services.ingest.decode import decode_payload
from services.scoring import step
from services.scoring.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from services.scoring.store import InMemoryBudgetStore
from shared.events import Decision, Trace
from tools.corpus.real.convert import convert_corpus
from tools.scripts.eval_grouping import pair_scores
from tools.scripts.eval_promotion import EVAL_STAMP, upstream

THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def load(corpus: str, root: Path) -> list[tuple[Trace, dict[str, Any]]]:
    folder = {"tau2": "tau2-retail", "wiki": "wiki-search"}[corpus]
    out = []
    for converted in convert_corpus(corpus, root / folder):  # type: ignore[arg-type]
        (trace,) = decode_payload(json.dumps(converted.document).encode(), "application/json")
        out.append((trace, converted.label()))
    return out


async def run(
    items: list[tuple[Trace, dict[str, Any]]], threshold: float, policy: Policy | None
) -> dict[str, Any]:
    patterns = InMemoryPatternStore(intent_threshold=threshold)
    budgets = InMemoryBudgetStore()
    grouped: list[tuple[str, str, str]] = []
    decisions: dict[str, str] = {}
    for trace, label in items:
        if policy is None:
            from services.dedupe import logic as dedupe
            from shared.features import derive_features

            recorded = await patterns.record(dedupe.observe(trace, derive_features(trace)))
            grouped.append(
                (recorded.pattern_id, f"{label['task']}|{label['outcome']}", label["outcome"])
            )
            continue
        event = await upstream(trace, patterns)
        pattern_id = patterns.traces[trace.trace_id].pattern_id
        grouped.append((pattern_id, f"{label['task']}|{label['outcome']}", label["outcome"]))
        if isinstance(event, str):
            decisions[trace.trace_id] = event
            continue
        (scored,) = await step.decide([event], policy, budgets, None, EVAL_STAMP)
        await budgets.record_promotions(step.promotions([scored], policy))
        decisions[trace.trace_id] = scored.decision.value
        if scored.decision == Decision.PROMOTE:
            await patterns.set_coverage(pattern_id, 1, event.pattern.last_seen)
    result: dict[str, Any] = {
        "all": pair_scores((p, t) for p, t, _ in grouped).__dict__,
        "failed": pair_scores((p, t) for p, t, o in grouped if o == "failure").__dict__,
        "patterns": len({p for p, _, _ in grouped}),
    }
    if policy is not None:
        result["promotion"] = promotion_figures(items, grouped, decisions)
    return result


def promotion_figures(
    items: list[tuple[Trace, dict[str, Any]]],
    grouped: list[tuple[str, str, str]],
    decisions: dict[str, str],
) -> dict[str, Any]:
    failed_runs: dict[str, int] = defaultdict(int)
    promoted_patterns: dict[str, set[str]] = defaultdict(set)
    successes_promoted = 0
    promotions = 0
    counts: dict[str, int] = defaultdict(int)
    for (trace, label), (pattern_id, _, outcome) in zip(items, grouped, strict=True):
        d = decisions[trace.trace_id]
        counts[d] += 1
        if outcome == "failure":
            failed_runs[label["task"]] += 1
        if d == "promote":
            promotions += 1
            promoted_patterns[label["task"]].add(pattern_id)
            successes_promoted += outcome == "success"
    recurring = [t for t, n in failed_runs.items() if n >= 2]
    exactly_one = sum(1 for t in recurring if len(promoted_patterns[t]) == 1)
    return {
        "decisions": dict(counts),
        "promotions": promotions,
        "every_failure": sum(failed_runs.values()),
        "recurring_failing_tasks": len(recurring),
        "exactly_one_promoted_pattern": exactly_one,
        "share": round(exactly_one / len(recurring), 3) if recurring else None,
        "successes_promoted": successes_promoted,
    }


def f1(scores: dict[str, Any]) -> float:
    p, r = scores["precision"] or 0.0, scores["recall"] or 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def choose(rows: dict[float, dict[str, Any]]) -> float:
    """The threshold with the best pairwise F1 over all runs; ties to the lower one."""
    return max(sorted(rows), key=lambda t: (round(f1(rows[t]["all"]), 4), -t))


def sweep(root: Path, corpora: tuple[str, ...] = ("tau2", "wiki")) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for corpus in corpora:
        items = load(corpus, root)
        out[corpus] = {t: asyncio.run(run(items, t, None)) for t in THRESHOLDS}
    return out


def threshold_choice_markdown(rows: dict[str, dict[float, dict[str, Any]]]) -> str:
    """The sweep as a table, the threshold each corpus would choose, and what that choice
    gives on the other corpus."""
    corpora = list(rows)
    lines = [
        "| threshold | "
        + " | ".join(f"{c}: all P / R | {c}: failed P / R" for c in corpora)
        + " |",
        "|---|" + "---|---|" * len(corpora),
    ]
    for t in THRESHOLDS:
        cells = []
        for c in corpora:
            r = rows[c][t]
            cells.append(f"{r['all']['precision']} / {r['all']['recall']}")
            cells.append(f"{r['failed']['precision']} / {r['failed']['recall']}")
        mark = " (product)" if t == INTENT_THRESHOLD else ""
        lines.append(f"| {t:.2f}{mark} | " + " | ".join(cells) + " |")
    lines.append("")
    for chooser in corpora:
        t = choose(rows[chooser])
        for other in corpora:
            if other == chooser:
                continue
            r = rows[other][t]
            lines.append(
                f"- Chosen on **{chooser}** (best all-runs F1): {t:.2f}; on **{other}** it gives"
                f" all runs P {r['all']['precision']} / R {r['all']['recall']}, failed runs"
                f" P {r['failed']['precision']} / R {r['failed']['recall']}."
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", type=Path, default=Path("../shared/corpora"))
    parser.add_argument("--corpus", action="append")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY_PATH)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    policy = load_policy(args.policy)
    report: dict[str, Any] = {}
    for corpus in args.corpus or ["tau2", "wiki"]:
        items = load(corpus, args.corpora)
        report[corpus] = {}
        for t in () if args.no_sweep else THRESHOLDS:
            r = asyncio.run(run(items, t, None))
            report[corpus][t] = r
            print(
                f"{corpus} t={t:.2f} patterns={r['patterns']:4d}"
                f" all P={r['all']['precision']} R={r['all']['recall']}"
                f" failed P={r['failed']['precision']} R={r['failed']['recall']}"
            )
        r = asyncio.run(run(items, INTENT_THRESHOLD, policy))
        report[corpus]["product"] = r
        print(corpus, "product", json.dumps({k: v for k, v in r.items()}, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
