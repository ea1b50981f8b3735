"""Replay's functional core: what a re-scoring under a new policy changes, as a diff.

``before`` is the current decision of each trace (the latest record per trace on
traces.scored), ``after`` what the new policy decides. Only replayed traces are judged: a
trace outside the replayed range keeps its decision and is not part of the diff.

Categories, from a reviewer's point of view (what enters or leaves the suite first):
- promoted: promote now, and not before (including traces that had no decision yet);
- demoted: promote before, hold or reject now;
- changed: neither before nor now a promotion, but a different decision (hold ↔ reject,
  or no earlier decision at all);
- unchanged: the same decision (its reason may still read differently).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from shared.events import Decision, TraceScored


@dataclass(frozen=True)
class DecisionSummary:
    trace_id: str
    pattern_id: str
    decision: Decision
    total: float
    policy_version: str
    reason: str


@dataclass(frozen=True)
class Change:
    trace_id: str
    pattern_id: str
    before: DecisionSummary | None
    after: DecisionSummary


@dataclass(frozen=True)
class ReplayDiff:
    policy_version: str
    promoted: tuple[Change, ...] = ()
    demoted: tuple[Change, ...] = ()
    changed: tuple[Change, ...] = ()
    unchanged: tuple[Change, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        return {c: len(getattr(self, c)) for c in CATEGORIES}


CATEGORIES = ("promoted", "demoted", "changed", "unchanged")


def summary_of_event(event: TraceScored) -> DecisionSummary:
    return DecisionSummary(
        trace_id=event.trace_id,
        pattern_id=event.pattern.pattern_id,
        decision=event.decision,
        total=event.total,
        policy_version=event.policy_version,
        reason=event.reason,
    )


def summary_of_record(doc: Mapping[str, Any]) -> DecisionSummary:
    """From a traces.scored value decoded as plain JSON: reading the whole audit topic
    through the full model would validate every span of every trace only to keep six
    fields."""
    return DecisionSummary(
        trace_id=str(doc["trace_id"]),
        pattern_id=str(doc["pattern"]["pattern_id"]),
        decision=Decision(doc["decision"]),
        total=float(doc["total"]),
        policy_version=str(doc["policy_version"]),
        reason=str(doc["reason"]),
    )


def latest_by_trace(summaries: list[DecisionSummary]) -> dict[str, DecisionSummary]:
    """``summaries`` in topic order: a trace's decisions share its pattern key, hence one
    partition, so the last one read is the latest one written."""
    latest: dict[str, DecisionSummary] = {}
    for s in summaries:
        latest[s.trace_id] = s
    return latest


def _category(before: DecisionSummary | None, after: DecisionSummary) -> str:
    was = before.decision if before else None
    if after.decision == Decision.PROMOTE:
        return "unchanged" if was == Decision.PROMOTE else "promoted"
    if was == Decision.PROMOTE:
        return "demoted"
    return "unchanged" if was == after.decision else "changed"


def diff(
    before: Mapping[str, DecisionSummary],
    after: Mapping[str, DecisionSummary],
    policy_version: str,
) -> ReplayDiff:
    buckets: dict[str, list[Change]] = {c: [] for c in CATEGORIES}
    for trace_id in sorted(after, key=lambda t: (after[t].pattern_id, t)):
        now, was = after[trace_id], before.get(trace_id)
        buckets[_category(was, now)].append(Change(trace_id, now.pattern_id, was, now))
    return ReplayDiff(
        policy_version=policy_version,
        promoted=tuple(buckets["promoted"]),
        demoted=tuple(buckets["demoted"]),
        changed=tuple(buckets["changed"]),
        unchanged=tuple(buckets["unchanged"]),
    )


def _summary_json(s: DecisionSummary | None) -> dict[str, Any] | None:
    if s is None:
        return None
    out = asdict(s)
    out["decision"] = s.decision.value
    return out


def to_json(d: ReplayDiff) -> dict[str, Any]:
    return {
        "policy_version": d.policy_version,
        "counts": dict(d.counts),
        **{
            category: [
                {
                    "trace_id": c.trace_id,
                    "pattern_id": c.pattern_id,
                    "before": _summary_json(c.before),
                    "after": _summary_json(c.after),
                }
                for c in getattr(d, category)
            ]
            for category in CATEGORIES
        },
    }


def _cell(text: str) -> str:
    # Reasons are prose: a pipe or a newline would break the Markdown table.
    return text.replace("|", "\\|").replace("\n", " ")


def _side(s: DecisionSummary | None) -> str:
    return "—" if s is None else f"{s.decision.value} {s.total:.2f} ({s.policy_version})"


TITLES = {
    "promoted": "Newly promoted",
    "demoted": "Demoted",
    "changed": "Other changes",
    "unchanged": "Unchanged",
}


def to_markdown(d: ReplayDiff) -> str:
    lines = [
        f"# Replay under policy {d.policy_version}",
        "",
        "| " + " | ".join(TITLES[c].lower() for c in CATEGORIES) + " |",
        "|" + "---|" * len(CATEGORIES),
        "| " + " | ".join(str(d.counts.get(c, 0)) for c in CATEGORIES) + " |",
    ]
    for category in CATEGORIES:
        changes: tuple[Change, ...] = getattr(d, category)
        lines += ["", f"## {TITLES[category]} ({len(changes)})", ""]
        if not changes:
            lines.append("None.")
            continue
        lines += [
            "| trace | pattern | before | after | reason now | reason before |",
            "|---|---|---|---|---|---|",
        ]
        for c in changes:
            was = _cell(c.before.reason) if c.before else "—"
            lines.append(
                f"| `{c.trace_id}` | `{c.pattern_id}` | {_side(c.before)} | {_side(c.after)}"
                f" | {_cell(c.after.reason)} | {was} |"
            )
    return "\n".join(lines) + "\n"
