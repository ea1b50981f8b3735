"""Scoring's functional core: the seven P.R.O.M.O.T.E. criteria and the decision.

Pure: the same event, policy and budget always give the same verdict, which is what
makes replay under a new policy meaningful and lets N instances agree with one.

Every criterion returns a score in 0..1 and its evidence: the signals it saw, their
values, the thresholds it compared them with, and a short ``summary`` the decision's
reason quotes. Evidence values are JSON-native (lists, not tuples) so that an event
read back from a topic compares equal to the one that was written.

The decision, in order:
1. redaction did not pass (when the policy requires it) → reject;
2. any gated criterion below its ``reject_below`` line → reject;
3. weighted total Σ w·s / Σ w below the hold threshold → reject;
4. the pattern's budget already spent → reject as a duplicate (also for would-be holds:
   a reviewer's time is not spent on a pattern that has its fixtures);
5. total below the promote threshold → hold;
6. a gated criterion in its hold band (between ``reject_below`` and ``hold_below``) →
   hold: worth promoting, but a person should confirm it can be explained or taught;
7. the run succeeded, with none of the boundary-stress signals the policy names → hold;
8. the daily budget spent → hold, so that tomorrow's budget can still take it;
9. otherwise promote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.scoring.policy import Baseline, Gate, Policy
from shared.events import (
    AgentBaseline,
    CriterionScore,
    Decision,
    Feedback,
    PatternInfo,
    PatternTrend,
    SpanStatus,
    StageStamp,
    Trace,
    TraceFeatures,
    TraceRedacted,
    TraceScored,
    TrajectoryReport,
    advance,
)
from shared.features import is_complete, is_negative_feedback, root_span, started_at
from shared.templating import template_message

CRITERIA = (
    "patterned",
    "risk_bearing",
    "operationally_costly",
    "missed_offline",
    "observable",
    "teachable",
    "enduring",
)

LABELS = {
    "patterned": "patterned",
    "risk_bearing": "risk-bearing",
    "operationally_costly": "operationally costly",
    "missed_offline": "missed offline",
    "observable": "observable",
    "teachable": "teachable",
    "enduring": "enduring",
}

# Redaction's typed, numbered placeholders (<EMAIL_1>, <PERSON_2>, <CREDIT_CARD_1>).
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*>")
# Beyond this share of placeholder characters the root input/output no longer says
# what the user asked or got: the content part of "observable" falls to 0 at 100 %.
MOSTLY_PLACEHOLDERS = 0.5

HUMAN_SOURCES = frozenset({"human", "reviewer"})
POLICY_FLAG_LABELS = frozenset({"flagged", "violation", "violated", "blocked", "unsafe"})

# Strength of each risk signal alone; several combine as independent evidence (noisy-or).
RISK_SIGNALS = {
    "side_effect_failed": 0.9,
    "policy_flagged": 0.8,
    "approval_denied_repeatedly": 0.85,
    "guardrail_hit": 0.7,
    "escalation_failed": 0.7,
    "approval_denied": 0.6,
    "side_effect_in_failed_trace": 0.6,
    "escalated": 0.5,
    "negative_feedback": 0.5,
    "user_frustrated": 0.5,
    "outcome_failure": 0.3,
}

# How clean an artifact each kind of evidence yields; the best one counts.
TEACHABLE_SIGNALS = {
    "correction": 1.0,
    "user_correction": 0.8,
    "failed_side_effect_assertion": 0.9,
    "denied_approval_boundary": 0.9,
    "guardrail_block": 0.8,
    "loop_cap": 0.7,
    "tool_correction": 0.7,
    "expected_order": 0.7,
    "failed_tool_assertion": 0.6,
    "labelled_negative_feedback": 0.5,
    "latency_or_cost_budget": 0.5,
    "failing_output_as_negative": 0.4,
}

# What a pattern that recurs at all (min occurrences from min sessions) scores at least.
RECURRING_FLOOR = 0.5
# What a pattern rising against its own past gains on Patterned and Enduring.
RISING_BONUS = 0.25
# Operational cost of a pattern whose rescue load per occurrence is rising.
RESCUE_RISING = 0.8
# Missed offline for a covered pattern that keeps rising: its fixture does not protect.
COVERED_NOT_PROTECTED = 0.8


def rising_sentence(t: PatternTrend) -> str:
    return (
        f"rising: {t.rate_ratio:.1f}x its share of the agent's traffic of the previous"
        f" {t.baseline_days} days ({t.baseline_share:.2%} → {t.recent_share:.2%} over the last"
        f" {t.recent_days} days, p={t.p_value:.3g}) since {t.since.isoformat()}"
    )


# A pattern first seen today is not yet proven to last, but nothing says it will not:
# this prior keeps new, non-transient patterns above the enduring gate.
ENDURING_PRIOR = 0.25
# Share of the score a trace whose errors are all transient loses.
TRANSIENT_PENALTY = 0.75


@dataclass(frozen=True)
class BudgetState:
    promoted_for_pattern: int
    promoted_today: int


@dataclass(frozen=True)
class Verdict:
    scores: dict[str, CriterionScore]
    total: float
    decision: Decision
    reason: str


def _clamp(x: float) -> float:
    return 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else x


def _ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high``, linear between."""
    return _clamp((value - low) / (high - low))


def _log_ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high``, on a log scale between (both at least 1)."""
    if high <= low:
        return 1.0 if value >= high else 0.0
    return _clamp(math.log(max(value, 1) / low) / math.log(high / low))


def _noisy_or(values: Iterable[float]) -> float:
    return 1.0 - math.prod(1.0 - _clamp(v) for v in values)


def _r(x: float) -> float:
    # Rounded so replayed scores compare equal and evidence stays readable.
    return round(x, 4)


def _result(score: float, summary: str, **evidence: Any) -> CriterionScore:
    return CriterionScore(score=_r(_clamp(score)), evidence={"summary": summary, **evidence})


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(set(names)))


def _is_negative(f: Feedback) -> bool:
    return is_negative_feedback(f.score, f.label)


def _corrections(trace: Trace) -> list[Feedback]:
    """Feedback that says what should have happened: a negative grade or a human note
    with an explanation."""
    return [
        f
        for f in trace.feedback
        if f.explanation
        and f.explanation.strip()
        and (_is_negative(f) or f.source in HUMAN_SOURCES)
    ]


def policy_flags(trace: Trace) -> int:
    """Policy flags have no standard home: a grader's feedback about a policy that came out
    negative or flagged, or a span marked ``promote.policy_flag``."""
    flagged = 0
    for f in trace.feedback:
        about_policy = "policy" in f.name.lower() or "policy" in (f.label or "").lower()
        label = (f.label or "").lower()
        if about_policy and (_is_negative(f) or label in POLICY_FLAG_LABELS):
            flagged += 1
    for span in trace.spans:
        mark = span.attributes.get("promote.policy_flag")
        if mark not in (None, False, "", 0, "false"):
            flagged += 1
    return flagged


# --- the seven criteria ------------------------------------------------------------


def patterned(p: PatternInfo, policy: Policy) -> CriterionScore:
    w = policy.windows
    spread = max(p.distinct_sessions, p.distinct_users)
    identities_known = spread > 0
    evidence: dict[str, Any] = {
        "occurrences": p.occurrences,
        "count_24h": p.count_24h,
        "count_7d": p.count_7d,
        "distinct_sessions": p.distinct_sessions,
        "distinct_users": p.distinct_users,
        "distinct_days": p.distinct_days,
        "min_occurrences": w.min_occurrences,
        "min_sessions": w.min_sessions,
        "full_count_7d": w.full_count_7d,
        "full_spread": w.full_spread,
        "full_days": w.full_days,
    }
    if p.occurrences < w.min_occurrences:
        return _result(
            0.0,
            f"{_plural(p.occurrences, 'occurrence')}, fewer than {w.min_occurrences}: a one-off",
            one_off=True,
            **evidence,
        )
    if identities_known and spread < w.min_sessions:
        return _result(
            0.0,
            f"{_plural(p.occurrences, 'occurrence')} all from {_plural(spread, 'session')}"
            f" (fewer than {w.min_sessions}): one weird run, not a pattern",
            one_off=True,
            **evidence,
        )
    # Log scales: the second and third occurrence say far more than the ninth and tenth.
    recurrence = _log_ramp(p.count_7d, w.min_occurrences, w.full_count_7d)
    # Without session or user ids the spread is unknown, neither evidence for nor against.
    spread_part = _log_ramp(spread, w.min_sessions, w.full_spread) if identities_known else 0.5
    days_part = _ramp(p.distinct_days, 1, w.full_days)
    # Recurring at all is most of the evidence: a lesson seen twice, from two sessions, is
    # a pattern; more occurrences, sessions and days make it a stronger one.
    score = RECURRING_FLOOR + (1.0 - RECURRING_FLOOR) * (
        0.5 * recurrence + 0.35 * spread_part + 0.15 * days_part
    )
    rising = p.trend is not None and p.trend.rising
    if rising:
        score += RISING_BONUS
        evidence["trend"] = p.trend.model_dump(mode="json") if p.trend else None
    who = (
        f"from {_plural(p.distinct_sessions, 'session')}, {_plural(p.distinct_users, 'user')}"
        if identities_known
        else "sessions and users unknown"
    )
    return _result(
        score,
        f"{_plural(p.occurrences, 'occurrence')} ({p.count_7d} in 7 days, {p.count_24h} in 24 h)"
        f" over {_plural(p.distinct_days, 'day')} {who}"
        + (f"; {rising_sentence(p.trend)}" if rising and p.trend else ""),
        one_off=False,
        parts={"recurrence": _r(recurrence), "spread": _r(spread_part), "days": _r(days_part)},
        **evidence,
    )


def risk_bearing(features: TraceFeatures, trace: Trace) -> CriterionScore:
    signals: dict[str, float] = {}
    notes: list[str] = []
    failed_side = sorted({c.name for c in features.tool_calls if c.side_effecting and not c.ok})
    trace_failed = features.outcome == "failure" or features.negative_feedback > 0
    ran_side = sorted(
        {c.name for c in features.tool_calls if c.side_effecting and c.ok} - set(failed_side)
    )
    flags = policy_flags(trace)
    if failed_side:
        signals["side_effect_failed"] = RISK_SIGNALS["side_effect_failed"]
        notes.append(f"side-effecting tool {_names(failed_side)} failed")
    if ran_side and trace_failed:
        signals["side_effect_in_failed_trace"] = RISK_SIGNALS["side_effect_in_failed_trace"]
        notes.append(f"side-effecting tool {_names(ran_side)} ran in a failed trace")
    if flags:
        signals["policy_flagged"] = RISK_SIGNALS["policy_flagged"]
        notes.append(_plural(flags, "policy flag"))
    if features.guardrail_hits:
        signals["guardrail_hit"] = RISK_SIGNALS["guardrail_hit"]
        notes.append(f"guardrail hit {features.guardrail_hits}x")
    if features.approvals_denied >= 2:
        signals["approval_denied_repeatedly"] = RISK_SIGNALS["approval_denied_repeatedly"]
        notes.append(
            f"approval denied {features.approvals_denied}x of {features.approvals_requested}"
            " requested (repeated pressure on a boundary)"
        )
    elif features.approvals_denied == 1:
        signals["approval_denied"] = RISK_SIGNALS["approval_denied"]
        notes.append("approval denied")
    if features.escalated and features.outcome == "failure":
        signals["escalation_failed"] = RISK_SIGNALS["escalation_failed"]
        notes.append("escalated and still failed")
    elif features.escalated:
        signals["escalated"] = RISK_SIGNALS["escalated"]
        notes.append("escalated to a human")
    if features.negative_feedback:
        signals["negative_feedback"] = RISK_SIGNALS["negative_feedback"]
        notes.append(_plural(features.negative_feedback, "negative feedback", "negative feedbacks"))
    if features.user_frustration:
        signals["user_frustrated"] = RISK_SIGNALS["user_frustrated"]
        notes.append(
            f"the user showed frustration or asked for a person in"
            f" {_plural(features.user_frustration, 'turn')}"
        )
    if features.outcome == "failure":
        signals["outcome_failure"] = RISK_SIGNALS["outcome_failure"]
        notes.append("outcome failure")
    return _result(
        _noisy_or(signals.values()),
        ", ".join(notes) if notes else "no risk signal",
        signals=signals,
        failed_side_effecting_tools=failed_side,
        side_effecting_tools_in_failed_trace=ran_side if trace_failed else [],
        guardrail_hits=features.guardrail_hits,
        approvals_requested=features.approvals_requested,
        approvals_denied=features.approvals_denied,
        escalated=features.escalated,
        negative_feedback=features.negative_feedback,
        user_frustration=features.user_frustration,
        policy_flags=flags,
        outcome=features.outcome,
    )


_MEASURE_WORDS = {
    "latency_ms": "latency",
    "total_tokens": "tokens",
    "cost_usd": "cost",
    "tool_calls": "tool calls",
}


TRAJECTORY_PARTS = ("wasted_steps", "blind_retries", "late_correction")


def _trajectory_parts(path: TrajectoryReport) -> dict[str, float]:
    """Weak-trajectory evidence: steps beyond the successful runs' median (full at three
    times as many), failed calls retried unchanged, the working tool found late."""
    wasted = path.extra_steps / path.median_successful_steps if path.median_successful_steps else 0
    return {
        "wasted_steps": _ramp(wasted, 0.5, 2.0),
        "blind_retries": _ramp(path.blind_retries, 0, 2),
        "late_correction": 0.5 if path.late_correction_step is not None else 0.0,
    }


def _measure_values(features: TraceFeatures) -> dict[str, float]:
    return {
        "latency_ms": features.latency_ms,
        "total_tokens": float(features.total_tokens),
        "cost_usd": features.cost_usd,
        "tool_calls": float(len(features.tool_calls)),
    }


def _against_learned(
    features: TraceFeatures, baseline: AgentBaseline | None, policy: Policy
) -> tuple[dict[str, float], list[str], dict[str, Any]]:
    """How far each measure sits above the agent's own usual, in standard deviations of
    its log: a 33-step run is normal for an agent whose runs take 30 steps."""
    c = policy.costly
    parts: dict[str, float] = {}
    notes: list[str] = []
    evidence: dict[str, Any] = {}
    learned = baseline.measures if baseline is not None else {}
    for name, value in _measure_values(features).items():
        known = learned.get(name)
        if value <= 0 or known is None or known.traces < c.min_baseline_traces:
            continue
        z = (math.log(value) - known.log_mean) / known.log_sd
        ratio = value / math.exp(known.log_mean)
        parts[name] = _ramp(z, c.z_start, c.z_full)
        evidence[name] = {
            "value": _r(value),
            "ratio": _r(ratio),
            "z": _r(z),
            "traces": known.traces,
        }
        if parts[name] > 0:
            notes.append(
                f"{_MEASURE_WORDS[name]} {ratio:.1f}x this agent's usual ({z:.1f} sd above"
                f" its mean over {known.traces} traces)"
            )
    if not evidence:
        seen = max((m.traces for m in learned.values()), default=0)
        evidence["no_baseline"] = (
            f"{_plural(seen, 'trace')} of this agent seen, {c.min_baseline_traces} needed"
        )
    return parts, notes, evidence


def _against_fixed(
    features: TraceFeatures, base: Baseline, policy: Policy
) -> tuple[dict[str, float], list[str], dict[str, Any]]:
    c = policy.costly
    latency_ratio = features.latency_ms / base.latency_ms
    cost_ratio = features.cost_usd / base.cost_usd
    parts = {
        "latency_ms": _ramp(latency_ratio, 1.0, c.latency_multiplier),
        "cost_usd": _ramp(cost_ratio, 1.0, c.cost_multiplier),
    }
    notes = []
    if parts["latency_ms"] > 0:
        notes.append(f"latency {latency_ratio:.1f}x the policy's baseline ({base.latency_ms:g} ms)")
    if parts["cost_usd"] > 0:
        notes.append(f"cost {cost_ratio:.1f}x the policy's baseline (${base.cost_usd:g})")
    evidence = {
        "policy_baseline": {"latency_ms": base.latency_ms, "cost_usd": base.cost_usd},
        "latency_ratio": _r(latency_ratio),
        "cost_ratio": _r(cost_ratio),
    }
    return parts, notes, evidence


def _over_baseline(
    features: TraceFeatures,
    agent_name: str | None,
    baseline: AgentBaseline | None,
    policy: Policy,
) -> tuple[dict[str, float], list[str], dict[str, Any]]:
    """A baseline the policy names for this very agent wins; then the learned one; then
    the policy's ``default`` entry, if it has one."""
    if agent_name and agent_name in policy.baselines:
        return _against_fixed(features, policy.baselines[agent_name], policy)
    parts, notes, evidence = _against_learned(features, baseline, policy)
    fixed = policy.baseline_for(None)
    if "no_baseline" in evidence and fixed is not None:
        return _against_fixed(features, fixed, policy)
    return parts, notes, evidence


def operationally_costly(
    features: TraceFeatures,
    agent_name: str | None,
    policy: Policy,
    baseline: AgentBaseline | None = None,
    trend: PatternTrend | None = None,
    path: TrajectoryReport | None = None,
) -> CriterionScore:
    c = policy.costly
    effort = {
        "retries": _ramp(features.retries, 0, c.retries_full),
        "loops": _ramp(features.loops, 0, c.loops_full),
        "human_interventions": _ramp(features.human_interventions, 0, c.human_full),
        "user_corrections": _ramp(features.user_corrections, 0, c.corrections_full),
        "tool_corrections": _ramp(features.tool_corrections, 0, c.loops_full),
    }
    measured, measured_notes, measured_evidence = _over_baseline(
        features, agent_name, baseline, policy
    )
    notes = []
    if features.retries:
        notes.append(_plural(features.retries, "retry", "retries"))
    if features.loops:
        notes.append(_plural(features.loops, "repeated tool call"))
    if features.human_interventions:
        notes.append(_plural(features.human_interventions, "human intervention"))
    if features.user_corrections:
        notes.append(f"the user corrected the agent {features.user_corrections}x")
    if features.tool_corrections:
        notes.append(_plural(features.tool_corrections, "failed call followed by another tool"))
    notes += measured_notes
    parts = {**effort, **measured}
    if path is not None:
        parts.update(_trajectory_parts(path))
        if any(parts[k] > 0 for k in TRAJECTORY_PARTS if k in parts):
            notes.append(f"against the successful runs of this request: {path.summary}")
    if trend is not None and trend.rescue_rising:
        parts["rescue_load_rising"] = RESCUE_RISING
        notes.append(
            f"the pattern's rescue load (retries, people pulled in) per occurrence is"
            f" {trend.rescue_ratio:.1f}x its baseline (p={trend.rescue_p_value:.3g})"
        )
    return _result(
        _noisy_or(parts.values()),
        ", ".join(notes) if notes else "within the agent's usual cost and effort",
        parts={k: _r(v) for k, v in parts.items()},
        retries=features.retries,
        loops=features.loops,
        human_interventions=features.human_interventions,
        user_corrections=features.user_corrections,
        tool_corrections=features.tool_corrections,
        latency_ms=features.latency_ms,
        cost_usd=features.cost_usd,
        total_tokens=features.total_tokens,
        baseline=measured_evidence,
    )


def missed_offline(p: PatternInfo, features: TraceFeatures) -> CriterionScore:
    evidence = {
        "pattern_id": p.pattern_id,
        "covered_by_fixture": p.covered_by_fixture,
        "outcome": features.outcome,
    }
    if not p.covered_by_fixture:
        return _result(1.0, "no fixture covers the pattern yet", **evidence)
    if p.trend is not None and p.trend.rising:
        return _result(
            COVERED_NOT_PROTECTED,
            f"covered but not protected: a fixture covers the pattern, yet it keeps"
            f" {rising_sentence(p.trend)} (a weak grader or threshold?)",
            covered_not_protected=True,
            **evidence,
        )
    if features.outcome == "failure":
        # We cannot see the fixture's own grade: a live failure of a covered pattern only
        # suggests the fixture does not catch it.
        return _result(
            0.4,
            "covered by a fixture, yet this live run failed: the fixture may miss it",
            **evidence,
        )
    return _result(0.0, "already covered by a fixture", **evidence)


def _placeholder_share(text: str) -> float:
    visible = sum(1 for ch in text if not ch.isspace())
    if visible == 0:
        return 1.0
    masked = sum(len(m.group()) for m in PLACEHOLDER.finditer(text))
    return min(1.0, masked / visible)


def observable(trace: Trace, features: TraceFeatures, complete: bool) -> CriterionScore:
    # The event's flag comes from ingest; the tree is re-checked because replayed or
    # hand-sent events may carry a stale flag.
    tree_ok = complete and is_complete(trace)
    outcome_known = features.outcome != "unknown"
    root = root_span(trace)
    fields = {"input": root.input if root else None, "output": root.output if root else None}
    shares: dict[str, float | None] = {}
    field_scores = []
    for name, text in fields.items():
        if not text or not text.strip():
            shares[name] = None
            field_scores.append(0.0)
        else:
            masked = _placeholder_share(text)
            shares[name] = _r(masked)
            field_scores.append(_clamp((1.0 - masked) / (1.0 - MOSTLY_PLACEHOLDERS)))
    content = sum(field_scores) / len(field_scores)
    score = 0.35 * tree_ok + 0.25 * outcome_known + 0.4 * content
    notes = ["span tree complete" if tree_ok else "span tree incomplete or disconnected"]
    notes.append(f"outcome {features.outcome}")
    for name, seen in shares.items():
        if seen is None:
            notes.append(f"root {name} missing")
        elif seen > MOSTLY_PLACEHOLDERS:
            notes.append(f"root {name} {seen:.0%} placeholders")
        else:
            notes.append(f"root {name} present")
    return _result(
        score,
        ", ".join(notes),
        complete=tree_ok,
        outcome_known=outcome_known,
        placeholder_share=shares,
        mostly_placeholders_above=MOSTLY_PLACEHOLDERS,
        content=_r(content),
    )


def teachable(
    trace: Trace,
    features: TraceFeatures,
    policy: Policy,
    baseline: AgentBaseline | None = None,
    path: TrajectoryReport | None = None,
) -> CriterionScore:
    found: dict[str, float] = {}
    notes: list[str] = []

    def add(signal: str, note: str) -> None:
        found[signal] = TEACHABLE_SIGNALS[signal]
        notes.append(note)

    corrections = _corrections(trace)
    failed = [c for c in features.tool_calls if not c.ok]
    failed_side = sorted({c.name for c in failed if c.side_effecting})
    failed_other = sorted({c.name for c in failed if not c.side_effecting})
    measured, _, _ = _over_baseline(features, trace.agent_name, baseline, policy)
    over_budget = any(part >= 1.0 for part in measured.values())
    if corrections:
        add("correction", f"{_plural(len(corrections), 'correction')} with an explanation")
    if features.user_corrections:
        add("user_correction", "the user's own correction says what was wanted")
    if features.tool_corrections:
        add("tool_correction", "the tool that worked after a failed one is the expected call")
    if path is not None and path.order_breaks:
        add("expected_order", "the order every successful run keeps is an assertion")
    if failed_side:
        add("failed_side_effect_assertion", f"tool-use assertion on {_names(failed_side)}")
    if features.approvals_denied:
        add("denied_approval_boundary", "boundary from a denied approval")
    if features.guardrail_hits:
        add("guardrail_block", "forbidden behaviour from a guardrail block")
    if features.loops:
        add("loop_cap", "cap on repeated tool calls")
    if failed_other:
        add("failed_tool_assertion", f"tool-use assertion on {_names(failed_other)}")
    if features.negative_feedback and not corrections:
        add("labelled_negative_feedback", "negative feedback without an explanation")
    if over_budget:
        add("latency_or_cost_budget", "latency/cost budget assertion")
    if features.outcome == "failure":
        add("failing_output_as_negative", "failing output as a labelled negative")
    derivable = max(found.values(), default=0.0)
    size = min(1.0, policy.max_steps / features.step_count) if features.step_count else 1.0
    summary = "; ".join(notes) if found else "no expected or forbidden behaviour can be derived"
    if size < 1.0:
        summary += f"; {features.step_count} steps, above the {policy.max_steps}-step bound"
    return _result(
        derivable * size,
        summary,
        signals=found,
        corrections=len(corrections),
        step_count=features.step_count,
        max_steps=policy.max_steps,
        size_factor=_r(size),
    )


def _error_texts(trace: Trace, features: TraceFeatures) -> list[list[str]]:
    """One entry per root-cause error, each the strings that describe it.

    A parent that failed because its child failed is the same error told twice, so only
    error spans without a failed child count, and only those that say something."""
    failed = [s for s in trace.spans if s.status == SpanStatus.ERROR]
    failed_parents = {s.parent_span_id for s in failed}
    entries = []
    for span in failed:
        if span.span_id in failed_parents:
            continue
        message = span.error_message
        texts = [span.error_type, message, template_message(message) if message else None]
        described = [t for t in texts if t]
        if described:
            entries.append(described)
    if entries:
        return entries
    # Features built without error spans (e.g. an older producer) still name their errors.
    return [[t] for t in (*features.error_types, *features.error_templates)]


def enduring(
    trace: Trace, features: TraceFeatures, p: PatternInfo, policy: Policy
) -> CriterionScore:
    w = policy.windows
    versions = len(p.agent_versions)
    days_part = _ramp(p.distinct_days, 1, w.full_days)
    versions_part = _ramp(versions, 1, w.full_versions)
    errors = _error_texts(trace, features)
    matched: set[str] = set()
    transient_errors = 0
    for texts in errors:
        hits = {rx.pattern for rx in policy.transient_errors for t in texts if rx.search(t)}
        if hits:
            transient_errors += 1
            matched |= hits
    share = transient_errors / len(errors) if errors else 0.0
    rising = p.trend is not None and p.trend.rising
    base = ENDURING_PRIOR + 0.45 * days_part + 0.3 * versions_part + RISING_BONUS * rising
    score = base * (1.0 - TRANSIENT_PENALTY * share)
    summary = (
        f"seen on {_plural(p.distinct_days, 'day')} across {_plural(versions, 'agent version')}"
    )
    if rising and p.trend is not None:
        summary += f", and growing since {p.trend.since.isoformat()}"
    if transient_errors:
        summary += (
            f"; {transient_errors} of {_plural(len(errors), 'error')} look transient"
            " (infrastructure, not the agent)"
        )
    return _result(
        score,
        summary,
        distinct_days=p.distinct_days,
        agent_versions=list(p.agent_versions),
        first_seen=p.first_seen.isoformat(),
        last_seen=p.last_seen.isoformat(),
        full_days=w.full_days,
        full_versions=w.full_versions,
        errors=len(errors),
        transient_errors=transient_errors,
        transient_share=_r(share),
        transient_patterns=sorted(matched),
        parts={"days": _r(days_part), "versions": _r(versions_part), "prior": ENDURING_PRIOR},
    )


# --- the decision ------------------------------------------------------------------


def criteria_scores(event: TraceRedacted, policy: Policy) -> dict[str, CriterionScore]:
    f, t, p = event.features, event.trace, event.pattern
    return {
        "patterned": patterned(p, policy),
        "risk_bearing": risk_bearing(f, t),
        "operationally_costly": operationally_costly(
            f, t.agent_name, policy, event.baseline, p.trend, event.trajectory
        ),
        "missed_offline": missed_offline(p, f),
        "observable": observable(t, f, event.complete),
        "teachable": teachable(t, f, policy, event.baseline, event.trajectory),
        "enduring": enduring(t, f, p, policy),
    }


def weighted_total(scores: dict[str, CriterionScore], policy: Policy) -> float:
    weights = policy.weights.as_dict()
    total_weight = sum(weights[name] for name in CRITERIA)
    return _r(sum(weights[name] * scores[name].score for name in CRITERIA) / total_weight)


def _mention(name: str, cs: CriterionScore) -> str:
    return f"{LABELS[name]} {cs.score:.2f} — {cs.evidence.get('summary', '')}"


def _carrying(scores: dict[str, CriterionScore], policy: Policy, limit: int = 3) -> list[str]:
    weights = policy.weights.as_dict()
    ranked = sorted(CRITERIA, key=lambda n: (-weights[n] * scores[n].score, CRITERIA.index(n)))
    strong = [n for n in ranked if weights[n] > 0 and scores[n].score >= 0.5][:limit]
    return strong or ranked[:1]


def _weakest(scores: dict[str, CriterionScore], policy: Policy, limit: int = 2) -> list[str]:
    weights = policy.weights.as_dict()
    ranked = sorted(
        CRITERIA, key=lambda n: (-weights[n] * (1.0 - scores[n].score), CRITERIA.index(n))
    )
    return [n for n in ranked if weights[n] > 0 and scores[n].score < 0.5][:limit]


def _listing(names: list[str], scores: dict[str, CriterionScore]) -> str:
    return "; ".join(_mention(n, scores[n]) for n in names)


def _gate_miss(name: str, cs: CriterionScore, line: float) -> str:
    return f"{LABELS[name]} {cs.score:.2f} < {line:.2f} ({cs.evidence.get('summary', '')})"


def decide(
    scores: dict[str, CriterionScore],
    total: float,
    policy: Policy,
    budget: BudgetState,
    redaction_passed: bool,
    pattern_id: str,
    outcome: str = "unknown",
) -> tuple[Decision, str]:
    v, th = policy.version, policy.thresholds
    gates: dict[str, Gate] = policy.gates.by_criterion()
    carried = _listing(_carrying(scores, policy), scores)
    weakest = _listing(_weakest(scores, policy), scores)
    against = f" Against it: {weakest}." if weakest else ""

    if policy.gates.redaction_must_pass and not redaction_passed:
        return Decision.REJECT, (
            f"Rejected under policy {v}: redaction did not pass, so no part of this trace may"
            f" become a fixture (total {total:.2f} not considered)."
        )
    rejected = [n for n, g in gates.items() if scores[n].score < g.reject_below]
    if rejected:
        misses = "; ".join(_gate_miss(n, scores[n], gates[n].reject_below) for n in rejected)
        return Decision.REJECT, (
            f"Rejected under policy {v}: failed the hard gate{'s' if len(rejected) > 1 else ''}"
            f" {misses}. Total {total:.2f} for reference; it had for it: {carried}."
        )
    if total < th.hold:
        return Decision.REJECT, (
            f"Rejected ({total:.2f} < hold {th.hold:.2f} under policy {v}): not worth suite"
            f" space.{against} Best: {carried}."
        )
    k = policy.budgets.per_pattern
    if budget.promoted_for_pattern >= k:
        return Decision.REJECT, (
            f"Rejected as a duplicate ({total:.2f} under policy {v}): pattern {pattern_id}"
            f" already has {_plural(budget.promoted_for_pattern, 'promoted trace')}, its budget"
            f" of {k} is spent. It had for it: {carried}."
        )
    if total < th.promote:
        return Decision.HOLD, (
            f"Held for review ({total:.2f}, between hold {th.hold:.2f} and promote"
            f" {th.promote:.2f} under policy {v}): for it — {carried}.{against}"
        )
    held = [n for n, g in gates.items() if scores[n].score < g.review_line]
    if held:
        misses = "; ".join(_gate_miss(n, scores[n], gates[n].review_line) for n in held)
        return Decision.HOLD, (
            f"Held for review ({total:.2f} ≥ {th.promote:.2f} under policy {v}, but close to a"
            f" gate: {misses}): a person should confirm it can be used. For it — {carried}."
        )
    boundary = set(scores["risk_bearing"].evidence.get("signals", {})) & set(
        policy.gates.success_promotable_with
    )
    if policy.gates.success_at_most_hold and outcome == "success" and not boundary:
        return Decision.HOLD, (
            f"Held for review ({total:.2f} ≥ {th.promote:.2f} under policy {v}, but the run"
            f" succeeded without boundary stress: whether a success is worth suite space is a"
            f" person's call). For it — {carried}."
        )
    daily = policy.budgets.daily
    if daily is not None and budget.promoted_today >= daily:
        return Decision.HOLD, (
            f"Held for review ({total:.2f} ≥ {th.promote:.2f} under policy {v}, but the daily"
            f" budget of {daily} promotions is spent): {carried}."
        )
    return Decision.PROMOTE, (
        f"Promoted ({total:.2f} ≥ {th.promote:.2f} under policy {v}): {carried}."
        + (f" Weakest: {weakest}." if weakest else "")
    )


def score(event: TraceRedacted, policy: Policy, budget: BudgetState) -> Verdict:
    scores = criteria_scores(event, policy)
    total = weighted_total(scores, policy)
    decision, reason = decide(
        scores,
        total,
        policy,
        budget,
        event.redaction.passed,
        event.pattern.pattern_id,
        outcome=event.features.outcome,
    )
    return Verdict(scores=scores, total=total, decision=decision, reason=reason)


def budget_day(event: TraceRedacted) -> date:
    """The day a trace spends the daily budget of: when it started, not when it was scored,
    so a replay charges the same days the live run did."""
    return started_at(event.trace).date()


def scored_event(
    event: TraceRedacted, policy: Policy, budget: BudgetState, stamp: StageStamp
) -> TraceScored:
    """The event the scoring stage and a replay both publish. Everything but the stamp is a
    function of (event, policy, budget), so a re-scored trace yields the same fixture body."""
    verdict = score(event, policy, budget)
    return advance(
        event,
        TraceScored,
        stamp,
        scores=verdict.scores,
        total=verdict.total,
        decision=verdict.decision,
        reason=verdict.reason,
        policy_version=policy.version,
    )
