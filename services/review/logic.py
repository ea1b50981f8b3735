"""Review's functional core: which decisions become cases, how the queue is ordered and
filtered, how a trace reads as a conversation, and what a verdict event says.

Nothing here reads a clock, a database or a request: the shells pass them in.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.conversation import ASSISTANT, USER, span_turns
from shared.events import (
    CaseReviewed,
    Decision,
    ExpectedBehaviour,
    SpanKind,
    SpanStatus,
    StageStamp,
    Trace,
    TraceScored,
    Verdict,
)
from shared.features import root_span

# A criterion "carries" a case in the filter when it scores at least this.
CRITERION_FLOOR = 0.5
FIXTURE_KINDS = (
    "regression_case",
    "scenario_row",
    "grader_example",
    "tool_use_assertion",
    "boundary_test",
)
REVIEW_STAGE = "review"


@dataclass(frozen=True)
class Case:
    """One held trace waiting for a person (or judged already: ``status``)."""

    trace_id: str
    pattern_id: str
    agent: str
    held_at: datetime
    total: float
    risk: float
    policy_version: str
    event: TraceScored
    status: str = "held"
    snoozed_until: datetime | None = None

    def criterion(self, name: str) -> float:
        score = self.event.scores.get(name)
        return score.score if score is not None else 0.0


def held(event: TraceScored) -> bool:
    return event.decision == Decision.HOLD


def case_from(event: TraceScored) -> Case:
    """A held decision as a case: held when scoring stamped it (the decision's own time, so
    a redelivery is the same case)."""
    risk = event.scores.get("risk_bearing")
    return Case(
        trace_id=event.trace_id,
        pattern_id=event.pattern.pattern_id,
        agent=event.trace.agent_name or "",
        held_at=event.stages[-1].at if event.stages else event.pattern.last_seen,
        total=event.total,
        risk=risk.score if risk is not None else 0.0,
        policy_version=event.policy_version,
        event=event,
    )


@dataclass(frozen=True)
class Filters:
    agent: str | None = None
    criterion: str | None = None  # only cases this criterion carries
    min_age_days: float | None = None  # held at least this long ago
    max_age_days: float | None = None  # held at most this long ago


@dataclass(frozen=True)
class PatternGroup:
    pattern_id: str
    agent: str
    cases: tuple[Case, ...]
    risk: float = field(default=0.0)
    oldest: datetime | None = None


def open_now(case: Case, now: datetime) -> bool:
    """Waiting for a person: held, or snoozed and the snooze is over."""
    if case.status == "held":
        return True
    return case.status == "snoozed" and (case.snoozed_until is None or case.snoozed_until <= now)


def matches(case: Case, filters: Filters, now: datetime) -> bool:
    age = now - case.held_at
    return not (
        (filters.agent and case.agent != filters.agent)
        or (filters.criterion and case.criterion(filters.criterion) < CRITERION_FLOOR)
        or (filters.min_age_days is not None and age < timedelta(days=filters.min_age_days))
        or (filters.max_age_days is not None and age > timedelta(days=filters.max_age_days))
    )


def queue(cases: Iterable[Case], filters: Filters, now: datetime) -> list[PatternGroup]:
    """Open cases grouped by pattern, riskiest pattern first and, at equal risk (to a tenth),
    the one waiting longest: a risky case must not sink under a pile of old curiosities,
    and among equals nobody's case waits for ever."""
    by_pattern: dict[str, list[Case]] = {}
    for case in cases:
        if open_now(case, now) and matches(case, filters, now):
            by_pattern.setdefault(case.pattern_id, []).append(case)
    groups = []
    for pattern_id, members in by_pattern.items():
        ordered = tuple(sorted(members, key=lambda c: (-c.risk, c.held_at, c.trace_id)))
        groups.append(
            PatternGroup(
                pattern_id=pattern_id,
                agent=ordered[0].agent,
                cases=ordered,
                risk=max(c.risk for c in ordered),
                oldest=min(c.held_at for c in ordered),
            )
        )
    return sorted(groups, key=lambda g: (-round(g.risk, 1), g.oldest, g.pattern_id))


# -- the trace as a conversation --------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    role: str  # user, assistant, tool, system
    text: str
    tool_name: str | None = None
    arguments: str | None = None
    result: str | None = None
    failed: bool = False


def conversation(trace: Trace) -> list[Turn]:
    """User, assistant and tool turns in the order they happened: model calls contribute
    the messages they carry (each once), tool spans their arguments and results."""
    seen: set[tuple[str, str]] = set()
    out: list[Turn] = []
    for span in sorted(trace.spans, key=lambda s: (s.start_time, s.span_id)):
        if span.kind == SpanKind.TOOL:
            out.append(
                Turn(
                    role="tool",
                    text=span.tool_name or span.name,
                    tool_name=span.tool_name or span.name,
                    arguments=span.tool_arguments,
                    result=span.tool_result if span.tool_result is not None else span.output,
                    failed=span.status == SpanStatus.ERROR,
                )
            )
        elif span.kind in (SpanKind.LLM, SpanKind.AGENT):
            for t in span_turns(span):
                if (t.role, t.text) not in seen and t.role != "tool":
                    seen.add((t.role, t.text))
                    out.append(Turn(role=t.role, text=t.text))
    root = root_span(trace)
    if root is not None and not any(t.role == USER for t in out) and root.input:
        out.insert(0, Turn(role=USER, text=root.input.strip()))
    if root is not None and not any(t.role == ASSISTANT for t in out) and root.output:
        out.append(Turn(role=ASSISTANT, text=root.output.strip()))
    return out


# -- occurrences over time --------------------------------------------------------------


def sparkline(counts: Sequence[int], width: int = 160, height: int = 32) -> str:
    """SVG polyline points for a small chart of daily occurrences (empty: no series)."""
    if not counts:
        return ""
    top = max(max(counts), 1)
    step = width / max(len(counts) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{height - 2 - (n / top) * (height - 4):.1f}" for i, n in enumerate(counts)
    )


# -- fixtures browser -------------------------------------------------------------------


def body_diff(
    old: dict[str, object], new: dict[str, object], old_label: str, new_label: str
) -> list[str]:
    """A unified diff of two fixture bodies, as sorted, indented JSON (one field a line)."""

    def text(body: dict[str, object]) -> list[str]:
        return json.dumps(body, indent=1, sort_keys=True, ensure_ascii=False).splitlines()

    return list(difflib.unified_diff(text(old), text(new), old_label, new_label, lineterm=""))


# -- verdicts ---------------------------------------------------------------------------


class InvalidVerdict(ValueError):
    """A verdict a person must correct (told in the form, never a dead letter)."""


def lines(text: str | None) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


def verdict_id(
    pattern_id: str,
    trace_ids: Sequence[str],
    verdict: Verdict,
    kinds: Sequence[str],
    expected: ExpectedBehaviour | None,
    reason: str,
    reviewer: str,
    snoozed_until: datetime | None,
    fixture_id: str | None = None,
) -> str:
    """A digest of what the verdict says: the same verdict given twice (a double submit, a
    retried CLI call) is one verdict downstream."""
    content = {
        **({"fixture_id": fixture_id} if fixture_id else {}),
        "pattern_id": pattern_id,
        "trace_ids": sorted(trace_ids),
        "verdict": verdict.value,
        "kinds": sorted(kinds),
        "expected": expected.model_dump(mode="json") if expected else None,
        "reason": reason,
        "reviewer": reviewer,
        "snoozed_until": snoozed_until.isoformat() if snoozed_until else None,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def retire_verdict(
    fixture_id: str,
    pattern_id: str,
    source_trace_id: str,
    reason: str,
    reviewer: str,
    at: datetime,
) -> CaseReviewed:
    """Taking a fixture out of the suite by hand: the fixture writer retires it, and the
    reason lands in the release-gate log."""
    reason = reason.strip()
    if not reviewer.strip():
        raise InvalidVerdict("a verdict needs the reviewer's name")
    if not reason:
        raise InvalidVerdict("retiring a fixture needs a reason")
    trace_ids = (source_trace_id,)
    return CaseReviewed(
        verdict_id=verdict_id(
            pattern_id, trace_ids, Verdict.RETIRE, (), None, reason, reviewer, None, fixture_id
        ),
        pattern_id=pattern_id,
        trace_ids=trace_ids,
        verdict=Verdict.RETIRE,
        reason=reason,
        reviewer=reviewer,
        at=at,
        fixture_id=fixture_id,
    )


def build_verdict(
    cases: Sequence[Case],
    verdict: Verdict,
    reviewer: str,
    at: datetime,
    *,
    whole_pattern: bool = False,
    kinds: Sequence[str] = (),
    answer: str | None = None,
    tool_calls: Sequence[str] = (),
    must_not: Sequence[str] = (),
    reason: str = "",
    snooze_days: float | None = None,
) -> CaseReviewed:
    """The verdict event on ``cases`` (one case, or every open case of its pattern). A
    promotion carries its first case as the exemplar, stamped by review: the fixtures are
    built from it and the decision is the reviewer's, made now."""
    if not cases:
        raise InvalidVerdict("no case to judge")
    if not reviewer.strip():
        raise InvalidVerdict("a verdict needs the reviewer's name")
    pattern_id = cases[0].pattern_id
    if any(c.pattern_id != pattern_id for c in cases):
        raise InvalidVerdict("one verdict judges cases of one pattern")
    unknown = sorted(set(kinds) - set(FIXTURE_KINDS))
    if unknown:
        raise InvalidVerdict(f"unknown fixture kind(s): {', '.join(unknown)}")
    expected: ExpectedBehaviour | None = None
    case: TraceScored | None = None
    snoozed_until: datetime | None = None
    reason = reason.strip()
    if verdict == Verdict.PROMOTE:
        answer = (answer or "").strip() or None
        if not (answer or tool_calls or must_not):
            raise InvalidVerdict(
                "a promotion needs the expected behaviour: the correct answer, the tool calls"
                " that should have happened, or what must not happen"
            )
        kinds = tuple(kinds) or ("regression_case",)
        expected = ExpectedBehaviour(
            answer=answer, tool_calls=tuple(tool_calls), must_not=tuple(must_not)
        )
        exemplar = cases[0].event
        stamp = StageStamp(stage=REVIEW_STAGE, version="1", at=at)
        case = exemplar.model_copy(update={"stages": (*exemplar.stages, stamp)})
    elif verdict == Verdict.REJECT:
        if not reason:
            raise InvalidVerdict("a rejection needs a reason")
        kinds = ()
    else:
        if snooze_days is None or snooze_days <= 0:
            raise InvalidVerdict("a snooze needs a number of days above zero")
        snoozed_until = at + timedelta(days=snooze_days)
        kinds = ()
    trace_ids = tuple(c.trace_id for c in cases)
    return CaseReviewed(
        verdict_id=verdict_id(
            pattern_id, trace_ids, verdict, kinds, expected, reason, reviewer, snoozed_until
        ),
        pattern_id=pattern_id,
        trace_ids=trace_ids,
        verdict=verdict,
        whole_pattern=whole_pattern,
        kinds=tuple(kinds),
        expected=expected,
        reason=reason,
        snoozed_until=snoozed_until,
        reviewer=reviewer.strip(),
        at=at,
        case=case,
    )


def status_after(verdict: Verdict) -> str:
    return {Verdict.PROMOTE: "promoted", Verdict.REJECT: "rejected", Verdict.SNOOZE: "snoozed"}[
        verdict
    ]
