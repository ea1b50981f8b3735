"""Fixture writer's functional core: which typed fixtures a promoted trace yields.

A fixture body is a pure function of the promoted event, so a redelivered promotion
produces a byte-identical body and the store recognises it (same digest, no new version).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.events import (
    CaseReviewed,
    Decision,
    FixtureIndexed,
    SpanKind,
    SpanStatus,
    TraceScored,
)
from shared.features import root_span


class FixtureKind(StrEnum):
    REGRESSION_CASE = "regression_case"
    SCENARIO_ROW = "scenario_row"
    GRADER_EXAMPLE = "grader_example"
    TOOL_USE_ASSERTION = "tool_use_assertion"
    BOUNDARY_TEST = "boundary_test"


@dataclass(frozen=True)
class FixtureDraft:
    fixture_id: str
    pattern_id: str
    kind: FixtureKind
    body: dict[str, Any]
    body_sha256: str
    criteria: tuple[str, ...]


def fixture_id(pattern_id: str, kind: FixtureKind) -> str:
    return f"{pattern_id}:{kind.value}"


def carrying_criteria(event: TraceScored, floor: float = 0.6) -> tuple[str, ...]:
    """The criteria that carried the decision: those scoring at or above the floor."""
    ranked = sorted(event.scores.items(), key=lambda kv: (-kv[1].score, kv[0]))
    return tuple(name for name, s in ranked if s.score >= floor)


def kinds_for(event: TraceScored) -> tuple[FixtureKind, ...]:
    f = event.features
    kinds = [FixtureKind.REGRESSION_CASE]
    if f.tool_calls:
        kinds.append(FixtureKind.TOOL_USE_ASSERTION)
    if f.approvals_requested or f.guardrail_hits:
        kinds.append(FixtureKind.BOUNDARY_TEST)
    if f.negative_feedback or f.outcome == "failure":
        kinds.append(FixtureKind.GRADER_EXAMPLE)
    if f.outcome == "success" and not f.error_types:
        kinds.append(FixtureKind.SCENARIO_ROW)
    return tuple(kinds)


def _behaviour(event: TraceScored) -> tuple[list[str], list[str]]:
    f = event.features
    expected: list[str] = []
    forbidden: list[str] = []
    for call in f.tool_calls:
        if call.side_effecting and not call.ok:
            forbidden.append(f"call {call.name} with the arguments seen in the source trace")
    if f.approvals_denied:
        forbidden.append("perform the action after the approval was denied")
        expected.append("respect the denied approval and explain why the action cannot proceed")
    if f.guardrail_hits:
        expected.append("stop at the guardrail and not attempt the blocked action")
    if f.loops:
        expected.append("not repeat the same tool call with the same arguments")
    if f.escalated or f.human_interventions:
        expected.append("escalate to a human when it cannot resolve the request")
    for item in event.trace.feedback:
        if item.explanation and (item.score is not None and item.score < 0.5):
            expected.append(f"address the reviewer's point: {item.explanation}")
    if not expected:
        expected.append("complete the request with the outcome a reviewer accepts")
    return expected, forbidden


def build_fixtures(
    event: TraceScored, kinds: Sequence[FixtureKind] | None = None
) -> list[FixtureDraft]:
    """The fixtures a promoted trace yields: the kinds its evidence supports, or the kinds
    a reviewer chose."""
    trace, f = event.trace, event.features
    root = root_span(trace)
    expected, forbidden = _behaviour(event)
    tools = [
        {"name": c.name, "arguments_fingerprint": c.arguments_fingerprint, "ok": c.ok}
        for c in f.tool_calls
    ]
    tool_spans = [s for s in trace.spans if s.kind == SpanKind.TOOL]
    failed_calls = [
        {"tool": s.tool_name or s.name, "arguments": s.tool_arguments}
        for s in tool_spans
        if s.status == SpanStatus.ERROR
        or any(
            c.side_effecting and not c.ok and c.name == (s.tool_name or s.name)
            for c in f.tool_calls
        )
    ]
    criteria = carrying_criteria(event)
    common: dict[str, Any] = {
        "pattern_id": event.pattern.pattern_id,
        "agent": {"name": trace.agent_name, "version": trace.agent_version},
        "input": root.input if root else None,
        "context": {
            "documents": [
                {"id": d.id, "content": d.content} for s in trace.spans for d in s.documents
            ],
        },
        "expected_behaviour": expected,
        "forbidden_behaviour": forbidden,
        "trajectory": {
            "max_steps": max(f.step_count, 1),
            "must_escalate": bool(f.escalated),
            "max_repeats_of_a_call": 1 if f.loops else None,
        },
        "observed": {
            "output": root.output if root else None,
            "outcome": f.outcome,
            "tools": tools,
            "error_types": list(f.error_types),
        },
        "source_trace_id": trace.trace_id,
        "policy_version": event.policy_version,
        "criteria": list(criteria),
        "reason": event.reason,
    }
    drafts = []
    for kind in kinds or kinds_for(event):
        body = {
            **common,
            "fixture_id": fixture_id(event.pattern.pattern_id, kind),
            "kind": kind.value,
        }
        if kind == FixtureKind.TOOL_USE_ASSERTION:
            body["tool_assertions"] = {
                "expected_tools": sorted({c.name for c in f.tool_calls if c.ok}),
                "forbidden_calls": failed_calls,
            }
        if kind == FixtureKind.GRADER_EXAMPLE:
            body["label"] = "negative"
            body["rubric_reason"] = (
                "; ".join(x.explanation for x in trace.feedback if x.explanation) or event.reason
            )
        drafts.append(
            FixtureDraft(
                fixture_id=body["fixture_id"],
                pattern_id=event.pattern.pattern_id,
                kind=kind,
                body=body,
                body_sha256=body_digest(body),
                criteria=criteria,
            )
        )
    return drafts


def body_digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def fixture_strings(body: dict[str, Any]) -> list[str]:
    """Every string inside a fixture body: what the write-time privacy check reads."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(body)
    return out


def active_coverage(
    pattern_id: str, active: list[tuple[str, int]], policy_version: str, at: datetime
) -> FixtureIndexed:
    """The pattern's coverage as the store has it: its active fixtures with their current
    versions. None left (all retired by a replay), and the pattern is uncovered again."""
    return FixtureIndexed(
        pattern_id=pattern_id,
        fixture_ids=tuple(sorted(f for f, _ in active)),
        kinds=tuple(sorted(f.rsplit(":", 1)[1] for f, _ in active)),
        version=max((v for _, v in active), default=0),
        policy_version=policy_version,
        at=at,
    )


# --- withdrawn promotions ------------------------------------------------------------
#
# A replay under a new policy re-decides history. Where it holds or rejects a trace an
# earlier policy promoted, the fixtures that trace sourced must not stay in the suite on
# the old policy's word: each falls back to its latest version whose source trace the new
# policy promotes, or is retired. A later promotion of a retired body restores it.


def withdraws_promotion(event: TraceScored) -> bool:
    return event.decision != Decision.PROMOTE


@dataclass(frozen=True)
class VersionSource:
    version: int
    source_trace_id: str
    # Whether the policy withdrawing the promotion promotes this version's source trace.
    promoted_by_policy: bool


def after_withdrawal(
    current_version: int, versions: list[VersionSource], withdrawn_trace_id: str
) -> int | None:
    """The version a fixture falls back to when the promotion of `withdrawn_trace_id` is
    withdrawn; None when none is left: the fixture is retired. A fixture whose current
    version another trace sourced keeps it."""
    by_version = {v.version: v for v in versions}
    current = by_version.get(current_version)
    if current is None or current.source_trace_id != withdrawn_trace_id:
        return current_version
    kept = [
        v.version
        for v in versions
        if v.promoted_by_policy and v.source_trace_id != withdrawn_trace_id
    ]
    return max(kept, default=None)


def decision_time(event: TraceScored) -> datetime:
    """When the decision was made: the stamp of the stage (or replay) that made it. A
    promotion older than a withdrawal of the same trace is stale and writes nothing."""
    return event.stages[-1].at


def withdrawal_reason(event: TraceScored) -> str:
    return (
        f"{event.decision.value} under policy {event.policy_version} withdraws the promotion"
        f" of trace {event.trace_id}: {event.reason}"
    )


def unique_strings(drafts: list[FixtureDraft]) -> list[str]:
    return sorted({text for d in drafts for text in fixture_strings(d.body)})


def privacy_checked(
    drafts: list[FixtureDraft], find_leaks: Callable[[list[str]], list[str]]
) -> tuple[list[FixtureDraft], list[tuple[FixtureDraft, list[str]]]]:
    """Splits drafts into clean ones and blocked ones with the checker's reasons. One check
    over all drafts' strings (they share most of them); only when it finds something is
    each draft checked on its own, to block just the leaking ones."""
    if not find_leaks(unique_strings(drafts)):
        return drafts, []
    clean, blocked = [], []
    for draft in drafts:
        reasons = find_leaks(fixture_strings(draft.body))
        if reasons:
            blocked.append((draft, reasons))
        else:
            clean.append(draft)
    return clean, blocked


@dataclass(frozen=True)
class HandRetirement:
    """A person taking a fixture out of the suite, with why: its gate-log line."""

    fixture_id: str
    reviewer: str
    reason: str
    # When the person decided: with the rest, what makes the gate-log line unique, so a
    # redelivered verdict logs nothing twice.
    decided: datetime

    @property
    def log_reason(self) -> str:
        return f"retired by hand by {self.reviewer}: {self.reason}"


def hand_retirement(verdict: CaseReviewed) -> HandRetirement:
    """The retirement a reviewer's RETIRE verdict asks for."""
    if verdict.fixture_id is None:
        raise ValueError("a retirement names its fixture")
    return HandRetirement(verdict.fixture_id, verdict.reviewer, verdict.reason, verdict.at)
