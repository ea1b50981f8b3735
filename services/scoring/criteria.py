"""The seven P.R.O.M.O.T.E. criteria, each a pure function returning a score in 0..1 and
its evidence: the signals it saw, their values, the thresholds it compared them with, and
a short ``summary`` the decision's reason quotes. Evidence values are JSON-native (lists,
not tuples) so that an event read back from a topic compares equal to the one written.
Operational cost, with its baselines and trajectories, lives in ``cost``."""

from __future__ import annotations

import re
from typing import Any

from services.scoring.cost import over_baseline
from services.scoring.numbers import clamp, log_ramp, names, noisy_or, plural, ramp, result, rounded
from services.scoring.policy import Policy
from shared.events import (
    AgentBaseline,
    CriterionScore,
    Feedback,
    PatternInfo,
    PatternTrend,
    SpanStatus,
    Trace,
    TraceFeatures,
    TrajectoryReport,
)
from shared.features import is_complete, is_negative_feedback, root_span
from shared.templating import template_message

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
        return result(
            0.0,
            f"{plural(p.occurrences, 'occurrence')}, fewer than {w.min_occurrences}: a one-off",
            one_off=True,
            **evidence,
        )
    if identities_known and spread < w.min_sessions:
        return result(
            0.0,
            f"{plural(p.occurrences, 'occurrence')} all from {plural(spread, 'session')}"
            f" (fewer than {w.min_sessions}): one weird run, not a pattern",
            one_off=True,
            **evidence,
        )
    # Log scales: the second and third occurrence say far more than the ninth and tenth.
    recurrence = log_ramp(p.count_7d, w.min_occurrences, w.full_count_7d)
    # Without session or user ids the spread is unknown, neither evidence for nor against.
    spread_part = log_ramp(spread, w.min_sessions, w.full_spread) if identities_known else 0.5
    days_part = ramp(p.distinct_days, 1, w.full_days)
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
        f"from {plural(p.distinct_sessions, 'session')}, {plural(p.distinct_users, 'user')}"
        if identities_known
        else "sessions and users unknown"
    )
    return result(
        score,
        f"{plural(p.occurrences, 'occurrence')} ({p.count_7d} in 7 days, {p.count_24h} in 24 h)"
        f" over {plural(p.distinct_days, 'day')} {who}"
        + (f"; {rising_sentence(p.trend)}" if rising and p.trend else ""),
        one_off=False,
        parts={
            "recurrence": rounded(recurrence),
            "spread": rounded(spread_part),
            "days": rounded(days_part),
        },
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
        notes.append(f"side-effecting tool {names(failed_side)} failed")
    if ran_side and trace_failed:
        signals["side_effect_in_failed_trace"] = RISK_SIGNALS["side_effect_in_failed_trace"]
        notes.append(f"side-effecting tool {names(ran_side)} ran in a failed trace")
    if flags:
        signals["policy_flagged"] = RISK_SIGNALS["policy_flagged"]
        notes.append(plural(flags, "policy flag"))
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
        notes.append(plural(features.negative_feedback, "negative feedback", "negative feedbacks"))
    if features.user_frustration:
        signals["user_frustrated"] = RISK_SIGNALS["user_frustrated"]
        notes.append(
            f"the user showed frustration or asked for a person in"
            f" {plural(features.user_frustration, 'turn')}"
        )
    if features.outcome == "failure":
        signals["outcome_failure"] = RISK_SIGNALS["outcome_failure"]
        notes.append("outcome failure")
    return result(
        noisy_or(signals.values()),
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


def missed_offline(p: PatternInfo, features: TraceFeatures) -> CriterionScore:
    evidence = {
        "pattern_id": p.pattern_id,
        "covered_by_fixture": p.covered_by_fixture,
        "outcome": features.outcome,
    }
    if not p.covered_by_fixture:
        return result(1.0, "no fixture covers the pattern yet", **evidence)
    if p.trend is not None and p.trend.rising:
        return result(
            COVERED_NOT_PROTECTED,
            f"covered but not protected: a fixture covers the pattern, yet it keeps"
            f" {rising_sentence(p.trend)} (a weak grader or threshold?)",
            covered_not_protected=True,
            **evidence,
        )
    if features.outcome == "failure":
        # We cannot see the fixture's own grade: a live failure of a covered pattern only
        # suggests the fixture does not catch it.
        return result(
            0.4,
            "covered by a fixture, yet this live run failed: the fixture may miss it",
            **evidence,
        )
    return result(0.0, "already covered by a fixture", **evidence)


def _placeholder_share(text: str) -> float:
    # str.split() splits on exactly what str.isspace() calls whitespace: C speed, not a
    # Python step per character.
    visible = sum(map(len, text.split()))
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
            shares[name] = rounded(masked)
            field_scores.append(clamp((1.0 - masked) / (1.0 - MOSTLY_PLACEHOLDERS)))
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
    return result(
        score,
        ", ".join(notes),
        complete=tree_ok,
        outcome_known=outcome_known,
        placeholder_share=shares,
        mostly_placeholders_above=MOSTLY_PLACEHOLDERS,
        content=rounded(content),
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
    measured, _, _ = over_baseline(features, trace.agent_name, baseline, policy)
    over_budget = any(part >= 1.0 for part in measured.values())
    if corrections:
        add("correction", f"{plural(len(corrections), 'correction')} with an explanation")
    if features.user_corrections:
        add("user_correction", "the user's own correction says what was wanted")
    if features.tool_corrections:
        add("tool_correction", "the tool that worked after a failed one is the expected call")
    if path is not None and path.order_breaks:
        add("expected_order", "the order every successful run keeps is an assertion")
    if failed_side:
        add("failed_side_effect_assertion", f"tool-use assertion on {names(failed_side)}")
    if features.approvals_denied:
        add("denied_approval_boundary", "boundary from a denied approval")
    if features.guardrail_hits:
        add("guardrail_block", "forbidden behaviour from a guardrail block")
    if features.loops:
        add("loop_cap", "cap on repeated tool calls")
    if failed_other:
        add("failed_tool_assertion", f"tool-use assertion on {names(failed_other)}")
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
    return result(
        derivable * size,
        summary,
        signals=found,
        corrections=len(corrections),
        step_count=features.step_count,
        max_steps=policy.max_steps,
        size_factor=rounded(size),
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
    days_part = ramp(p.distinct_days, 1, w.full_days)
    versions_part = ramp(versions, 1, w.full_versions)
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
    summary = f"seen on {plural(p.distinct_days, 'day')} across {plural(versions, 'agent version')}"
    if rising and p.trend is not None:
        summary += f", and growing since {p.trend.since.isoformat()}"
    if transient_errors:
        summary += (
            f"; {transient_errors} of {plural(len(errors), 'error')} look transient"
            " (infrastructure, not the agent)"
        )
    return result(
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
        transient_share=rounded(share),
        transient_patterns=sorted(matched),
        parts={
            "days": rounded(days_part),
            "versions": rounded(versions_part),
            "prior": ENDURING_PRIOR,
        },
    )
