"""The P.R.O.M.O.T.E. criteria and the decision, on literal traces."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring import criteria, logic
from services.scoring.logic import CRITERIA, BudgetState
from services.scoring.policy import (
    DEFAULT_POLICY_PATH,
    STRICT_POLICY_PATH,
    Baseline,
    Policy,
    load_policy,
)
from shared.events import (
    AgentBaseline,
    Decision,
    Feedback,
    MetricBaseline,
    PatternInfo,
    RedactionReport,
    Span,
    SpanKind,
    SpanStatus,
    StageStamp,
    ToolCall,
    Trace,
    TraceFeatures,
    TraceRedacted,
    TraceScored,
    Usage,
    advance,
)
from shared.features import derive_features, is_complete

pytestmark = pytest.mark.logic

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
POLICY = load_policy(DEFAULT_POLICY_PATH)

STRICT = load_policy(STRICT_POLICY_PATH)
FRESH = BudgetState(promoted_for_pattern=0, promoted_today=0)


# --- factories -----------------------------------------------------------------------


def root(
    *,
    duration_ms: float = 2_000,
    status: SpanStatus = SpanStatus.OK,
    input: str | None = "Where is my order 4471? It was due on Monday.",
    output: str | None = "Your order 4471 ships tomorrow; I have sent the tracking link.",
    **fields: Any,
) -> Span:
    return Span(
        span_id="root",
        name="support-agent",
        kind=SpanKind.AGENT,
        start_time=T0,
        end_time=T0 + timedelta(milliseconds=duration_ms),
        status=status,
        input=input,
        output=output,
        **fields,
    )


def child(span_id: str, at_ms: int = 100, **fields: Any) -> Span:
    fields.setdefault("name", span_id)
    return Span(
        span_id=span_id,
        parent_span_id=fields.pop("parent", "root"),
        start_time=T0 + timedelta(milliseconds=at_ms),
        end_time=T0 + timedelta(milliseconds=at_ms + 50),
        **fields,
    )


def tool(span_id: str, tool_name: str, *, ok: bool = True, at_ms: int = 100, **fields: Any) -> Span:
    return child(
        span_id,
        at_ms,
        kind=SpanKind.TOOL,
        tool_name=tool_name,
        tool_arguments=fields.pop("arguments", '{"order": "4471"}'),
        status=SpanStatus.OK if ok else SpanStatus.ERROR,
        **fields,
    )


def approval(span_id: str, outcome: str, at_ms: int = 200) -> Span:
    return child(span_id, at_ms, kind=SpanKind.APPROVAL, approval=outcome)


def make_trace(
    *spans: Span,
    agent: str = "support-agent",
    version: str = "1.4.0",
    outcome: str | None = None,
    feedback: tuple[Feedback, ...] = (),
) -> Trace:
    return Trace(
        trace_id="t-0001",
        session_id="sess-1",
        user_id="user-1",
        agent_name=agent,
        agent_version=version,
        outcome=outcome,
        spans=spans or (root(),),
        feedback=feedback,
    )


def make_pattern(**overrides: Any) -> PatternInfo:
    """A healthy recurring pattern unless told otherwise."""
    fields: dict[str, Any] = {
        "pattern_id": "p1-refund-failed",
        "fingerprint_version": 1,
        "fingerprint": "v1\nagent=support-agent",
        "occurrences": 14,
        "distinct_sessions": 9,
        "distinct_users": 7,
        "distinct_days": 6,
        "agent_versions": ("1.4.0", "1.5.0"),
        "first_seen": T0 - timedelta(days=6),
        "last_seen": T0,
        "count_24h": 3,
        "count_7d": 14,
        "covered_by_fixture": False,
    }
    return PatternInfo(**{**fields, **overrides})


def make_event(
    trace: Trace | None = None,
    *,
    pattern: PatternInfo | None = None,
    features: TraceFeatures | None = None,
    complete: bool | None = None,
    redaction_passed: bool = True,
) -> TraceRedacted:
    trace = trace or make_trace()
    return TraceRedacted(
        trace_id=trace.trace_id,
        trace=trace,
        features=features or derive_features(trace),
        complete=is_complete(trace) if complete is None else complete,
        pattern=pattern or make_pattern(),
        redaction=RedactionReport(counts={}, strings_scanned=10, passed=redaction_passed),
    )


def features(**fields: Any) -> TraceFeatures:
    fields.setdefault("step_count", 5)
    return TraceFeatures(**fields)


def refund_failed_trace() -> Trace:
    return make_trace(
        root(status=SpanStatus.ERROR, output="Sorry, I could not process the refund."),
        tool("lookup", "get_order"),
        tool(
            "refund",
            "issue_refund",
            ok=False,
            at_ms=300,
            error_type="ValueError",
            error_message="amount 129.99 exceeds captured 99.99",
        ),
        feedback=(
            Feedback(
                source="user",
                name="thumbs",
                label="thumbs_down",
                explanation="It should have refunded the captured amount only.",
            ),
        ),
    )


def outage_trace() -> Trace:
    return make_trace(
        root(status=SpanStatus.ERROR, output="Something went wrong, please try again."),
        tool(
            "search",
            "search_kb",
            ok=False,
            error_type="HTTPError",
            error_message="503 Service Unavailable from kb.internal",
        ),
        tool(
            "search2",
            "search_kb",
            ok=False,
            at_ms=400,
            retry_attempt=1,
            error_type="HTTPError",
            error_message="503 Service Unavailable from kb.internal",
        ),
    )


def burst(**overrides: Any) -> PatternInfo:
    """Many runs within one day on one version."""
    fields: dict[str, Any] = {
        "occurrences": 40,
        "count_24h": 40,
        "count_7d": 40,
        "distinct_sessions": 31,
        "distinct_users": 28,
        "distinct_days": 1,
        "agent_versions": ("1.4.0",),
        "first_seen": T0 - timedelta(hours=2),
    }
    return make_pattern(**{**fields, **overrides})


# --- Patterned ---------------------------------------------------------------------


def test_a_single_occurrence_is_a_one_off_and_scores_zero() -> None:
    one = make_pattern(
        occurrences=1,
        count_24h=1,
        count_7d=1,
        distinct_sessions=1,
        distinct_users=1,
        distinct_days=1,
        agent_versions=("1.4.0",),
    )
    result = logic.patterned(one, POLICY)
    assert result.score == 0.0
    assert result.evidence["one_off"] is True
    assert "one-off" in result.evidence["summary"]


def test_many_occurrences_from_one_session_are_one_weird_run_not_a_pattern() -> None:
    result = logic.patterned(make_pattern(distinct_sessions=1, distinct_users=1), POLICY)
    assert result.score == 0.0
    assert "one weird run" in result.evidence["summary"]


def test_a_pattern_recurring_across_sessions_and_days_scores_high() -> None:
    result = logic.patterned(make_pattern(), POLICY)
    assert result.score >= 0.9
    assert result.evidence["count_7d"] == 14
    assert result.evidence["min_occurrences"] == POLICY.windows.min_occurrences
    assert "14 occurrences" in result.evidence["summary"]


def test_a_lesson_seen_twice_from_two_sessions_is_a_pattern_but_a_weak_one() -> None:
    twice = make_pattern(
        occurrences=2,
        count_7d=2,
        count_24h=2,
        distinct_sessions=2,
        distinct_users=2,
        distinct_days=1,
    )
    score = logic.patterned(twice, POLICY).score
    assert criteria.RECURRING_FLOOR <= score < logic.patterned(make_pattern(), POLICY).score
    assert score < 0.6


def test_unknown_sessions_and_users_count_neither_for_nor_against() -> None:
    anonymous = make_pattern(distinct_sessions=0, distinct_users=0)
    result = logic.patterned(anonymous, POLICY)
    assert result.evidence["parts"]["spread"] == 0.5
    assert 0.0 < result.score < logic.patterned(make_pattern(), POLICY).score


# --- Risk-bearing ------------------------------------------------------------------


def test_a_failed_side_effecting_tool_call_is_high_risk_and_named() -> None:
    trace = refund_failed_trace()
    result = logic.risk_bearing(derive_features(trace), trace)
    assert result.score >= 0.9
    assert result.evidence["failed_side_effecting_tools"] == ["issue_refund"]
    assert "issue_refund failed" in result.evidence["summary"]


def test_a_side_effecting_call_that_ran_in_a_trace_with_negative_feedback_is_risky() -> None:
    trace = make_trace(
        root(),
        tool("cancel", "cancel_subscription"),
        feedback=(Feedback(source="user", name="thumbs", label="thumbs_down"),),
    )
    result = logic.risk_bearing(derive_features(trace), trace)
    assert "side_effect_in_failed_trace" in result.evidence["signals"]
    assert result.score >= 0.6


def test_a_clean_successful_trace_carries_no_risk() -> None:
    trace = make_trace(root(), tool("lookup", "get_order"))
    result = logic.risk_bearing(derive_features(trace), trace)
    assert result.score == 0.0
    assert result.evidence["summary"] == "no risk signal"


def test_repeated_denied_approvals_weigh_more_than_a_single_denial() -> None:
    once = logic.risk_bearing(features(approvals_requested=1, approvals_denied=1), make_trace())
    thrice = logic.risk_bearing(features(approvals_requested=4, approvals_denied=3), make_trace())
    assert thrice.score > once.score
    assert "repeated pressure" in thrice.evidence["summary"]


def test_guardrail_hits_escalation_and_negative_feedback_each_add_risk() -> None:
    guard = logic.risk_bearing(features(guardrail_hits=1), make_trace())
    both = logic.risk_bearing(features(guardrail_hits=1, negative_feedback=1), make_trace())
    failed_escalation = logic.risk_bearing(
        features(escalated=True, outcome="failure"), make_trace()
    )
    assert 0.0 < guard.score < both.score
    assert "escalation_failed" in failed_escalation.evidence["signals"]


def test_a_grader_flagging_a_policy_violation_counts_as_risk() -> None:
    trace = make_trace(
        feedback=(Feedback(source="evaluator", name="policy_compliance", label="violation"),)
    )
    result = logic.risk_bearing(derive_features(trace), trace)
    assert result.evidence["policy_flags"] == 1
    assert result.score >= 0.8


# --- Operationally costly ----------------------------------------------------------


def learned(traces: int = 200, latency_ms: float = 6_000, cost_usd: float = 0.015) -> AgentBaseline:
    """An agent whose runs vary by about a third around the given values."""
    return AgentBaseline(
        agent="support-agent",
        measures={
            "latency_ms": MetricBaseline(traces=traces, log_mean=math.log(latency_ms), log_sd=0.3),
            "cost_usd": MetricBaseline(traces=traces, log_mean=math.log(cost_usd), log_sd=0.3),
        },
    )


def test_latency_and_cost_far_above_the_agents_learned_usual_are_costly() -> None:
    slow = features(latency_ms=24_000, cost_usd=0.06, outcome="success")
    result = logic.operationally_costly(slow, "support-agent", POLICY, learned())
    assert result.score >= 0.99
    assert result.evidence["baseline"]["latency_ms"]["ratio"] == 4.0
    assert "latency 4.0x this agent's usual" in result.evidence["summary"]


def test_a_long_run_is_not_costly_for_an_agent_whose_runs_are_all_long() -> None:
    long_run = features(latency_ms=33_000)
    usual = logic.operationally_costly(long_run, "coder", POLICY, learned(latency_ms=30_000))
    assert usual.score == 0.0
    unusual = logic.operationally_costly(long_run, "support", POLICY, learned(latency_ms=6_000))
    assert unusual.score > 0.9


def test_without_enough_traffic_there_is_no_baseline_and_no_cost_evidence() -> None:
    few = learned(traces=POLICY.costly.min_baseline_traces - 1)
    result = logic.operationally_costly(features(latency_ms=80_000), "new-agent", POLICY, few)
    assert result.score == 0.0
    assert "needed" in result.evidence["baseline"]["no_baseline"]


def test_a_baseline_the_policy_names_for_an_agent_wins_over_the_learned_one() -> None:
    fixed = POLICY.model_copy(
        update={"baselines": {"support-agent": Baseline(latency_ms=1_000, cost_usd=1.0)}}
    )
    result = logic.operationally_costly(
        features(latency_ms=6_000), "support-agent", fixed, learned()
    )
    assert result.score >= 0.99
    assert "the policy's baseline" in result.evidence["summary"]


def test_retries_loops_and_human_interventions_add_up() -> None:
    one = logic.operationally_costly(features(retries=1), "support-agent", POLICY)
    more = logic.operationally_costly(
        features(retries=1, loops=1, human_interventions=1), "support-agent", POLICY
    )
    assert 0.0 < one.score < more.score < 1.0
    assert more.evidence["parts"]["loops"] == 0.5


def test_a_trace_within_its_baseline_costs_nothing() -> None:
    result = logic.operationally_costly(
        features(latency_ms=3_000, cost_usd=0.01), "support-agent", POLICY, learned()
    )
    assert result.score == 0.0
    assert result.evidence["summary"] == "within the agent's usual cost and effort"


# --- Missed offline ----------------------------------------------------------------


def test_a_pattern_no_fixture_covers_is_fully_missed_offline() -> None:
    result = logic.missed_offline(make_pattern(), features(outcome="failure"))
    assert result.score == 1.0


def test_a_covered_pattern_that_succeeded_live_is_not_missed() -> None:
    result = logic.missed_offline(make_pattern(covered_by_fixture=True), features())
    assert result.score == 0.0
    assert result.evidence["covered_by_fixture"] is True


def test_a_covered_pattern_that_failed_live_is_partly_missed() -> None:
    result = logic.missed_offline(
        make_pattern(covered_by_fixture=True), features(outcome="failure")
    )
    assert 0.0 < result.score < 1.0


# --- Observable --------------------------------------------------------------------


def test_a_complete_trace_with_known_outcome_and_real_content_is_fully_observable() -> None:
    trace = make_trace()
    result = logic.observable(trace, derive_features(trace), complete=True)
    assert result.score == 1.0
    assert result.evidence["placeholder_share"] == {"input": 0.0, "output": 0.0}


def test_input_and_output_that_are_mostly_placeholders_lower_observability() -> None:
    trace = make_trace(
        root(
            input="<PERSON_1> <EMAIL_1> <PHONE_NUMBER_1> asks",
            output="Sent to <EMAIL_1>, <ADDRESS_1>",
        )
    )
    result = logic.observable(trace, derive_features(trace), complete=True)
    assert result.evidence["placeholder_share"]["input"] > 0.5
    assert result.evidence["content"] < 0.5
    assert result.score < 0.8
    assert "placeholders" in result.evidence["summary"]


def test_an_incomplete_span_tree_is_less_observable() -> None:
    orphan = child("orphan", parent="missing-parent", kind=SpanKind.TOOL, tool_name="get_order")
    trace = make_trace(root(), orphan)
    result = logic.observable(trace, derive_features(trace), complete=True)
    assert result.evidence["complete"] is False
    assert result.score <= 0.65


def test_an_unknown_outcome_and_a_missing_output_each_lower_observability() -> None:
    trace = make_trace(root(status=SpanStatus.UNSET, output=None))
    result = logic.observable(trace, derive_features(trace), complete=True)
    assert result.evidence["outcome_known"] is False
    assert result.evidence["placeholder_share"]["output"] is None
    assert result.score == pytest.approx(0.35 + 0.4 * 0.5)


# --- Teachable ---------------------------------------------------------------------


def test_a_correction_with_an_explanation_is_fully_teachable() -> None:
    trace = refund_failed_trace()
    result = logic.teachable(trace, derive_features(trace), POLICY)
    assert result.score == 1.0
    assert result.evidence["corrections"] == 1
    assert "failed_side_effect_assertion" in result.evidence["signals"]


def test_a_plain_success_teaches_nothing() -> None:
    trace = make_trace()
    result = logic.teachable(trace, derive_features(trace), POLICY)
    assert result.score == 0.0
    assert "no expected or forbidden behaviour" in result.evidence["summary"]


def test_a_denied_approval_and_a_loop_are_teachable() -> None:
    denied = logic.teachable(
        make_trace(), features(approvals_requested=1, approvals_denied=1), POLICY
    )
    looped = logic.teachable(make_trace(), features(loops=2), POLICY)
    assert denied.score == 0.9
    assert looped.score == 0.7


def test_an_oversized_trace_is_scaled_down_by_its_size() -> None:
    big = logic.teachable(make_trace(), features(guardrail_hits=1, step_count=300), POLICY)
    assert big.evidence["size_factor"] == 0.5
    assert big.score == pytest.approx(0.8 * 0.5)
    assert "above the 150-step bound" in big.evidence["summary"]


# --- Enduring ----------------------------------------------------------------------


def test_a_pattern_seen_across_days_and_versions_endures() -> None:
    trace = refund_failed_trace()
    result = logic.enduring(trace, derive_features(trace), make_pattern(distinct_days=5), POLICY)
    assert result.score == 1.0
    assert result.evidence["transient_errors"] == 0


def test_a_one_day_burst_on_one_version_with_a_transient_error_scores_near_zero() -> None:
    trace = outage_trace()
    result = logic.enduring(trace, derive_features(trace), burst(), POLICY)
    assert result.score < 0.1
    assert result.evidence["transient_share"] == 1.0
    assert result.evidence["transient_patterns"]
    assert "look transient" in result.evidence["summary"]


def test_rate_limits_and_dependency_timeouts_are_transient() -> None:
    for error_type, message in [
        ("RateLimitError", "429 Too Many Requests"),
        ("TimeoutError", "inventory-service timed out after 30000 ms"),
        ("ConnectionError", "connection reset by peer"),
    ]:
        trace = make_trace(
            root(), tool("x", "check_stock", ok=False, error_type=error_type, error_message=message)
        )
        result = logic.enduring(trace, derive_features(trace), burst(), POLICY)
        assert result.evidence["transient_errors"] == 1, message


def test_an_agent_error_beside_a_transient_one_is_only_half_discounted() -> None:
    trace = make_trace(
        root(),
        tool("a", "search_kb", ok=False, error_type="HTTPError", error_message="HTTP 503"),
        tool(
            "b",
            "issue_refund",
            ok=False,
            at_ms=300,
            error_type="ValueError",
            error_message="amount exceeds captured",
        ),
    )
    result = logic.enduring(trace, derive_features(trace), make_pattern(), POLICY)
    assert result.evidence["transient_share"] == 0.5
    assert 0.3 < result.score < 0.8


def test_error_types_in_the_features_alone_are_checked_for_transience() -> None:
    result = logic.enduring(
        make_trace(), features(error_types=("ServiceUnavailable",)), burst(), POLICY
    )
    assert result.evidence["transient_errors"] == 1


def test_a_new_pattern_without_transient_errors_keeps_a_prior_above_the_gate() -> None:
    result = logic.enduring(make_trace(), features(), burst(), POLICY)
    assert result.score == criteria.ENDURING_PRIOR
    assert POLICY.gates.enduring is not None
    assert result.score >= POLICY.gates.enduring.reject_below


# --- the decision: the seed's edge cases --------------------------------------------


def test_one_off_weirdness_is_rejected_however_risky_it_looks() -> None:
    one_off = make_pattern(
        occurrences=1,
        count_24h=1,
        count_7d=1,
        distinct_sessions=1,
        distinct_users=1,
        distinct_days=1,
        agent_versions=("1.4.0",),
    )
    verdict = logic.score(make_event(refund_failed_trace(), pattern=one_off), POLICY, FRESH)
    assert verdict.scores["risk_bearing"].score >= 0.9
    assert verdict.decision == Decision.REJECT
    assert "hard gate patterned 0.00 < 0.15" in verdict.reason
    assert "one-off" in verdict.reason


def test_a_duplicate_of_a_pattern_a_fixture_already_covers_is_not_re_promoted() -> None:
    trace = make_trace(
        root(),
        tool("a", "get_order"),
        tool("b", "get_order", at_ms=300),
        tool("c", "get_order", at_ms=500),
    )
    covered = make_pattern(covered_by_fixture=True)
    verdict = logic.score(make_event(trace, pattern=covered), POLICY, FRESH)
    assert verdict.decision == Decision.REJECT
    assert "missed offline 0.00" in verdict.reason
    assert "already covered by a fixture" in verdict.reason


def test_a_pattern_whose_budget_is_spent_is_rejected_as_a_duplicate() -> None:
    event = make_event(refund_failed_trace())
    assert logic.score(event, POLICY, FRESH).decision == Decision.PROMOTE
    spent = BudgetState(promoted_for_pattern=POLICY.budgets.per_pattern, promoted_today=0)
    verdict = logic.score(event, POLICY, spent)
    assert verdict.decision == Decision.REJECT
    assert "duplicate" in verdict.reason
    assert "budget of 3 is spent" in verdict.reason
    assert "p1-refund-failed" in verdict.reason


def test_a_transient_outage_is_not_promoted() -> None:
    verdict = logic.score(make_event(outage_trace(), pattern=burst()), POLICY, FRESH)
    assert verdict.scores["patterned"].score >= 0.8
    assert verdict.decision == Decision.REJECT
    assert "hard gate enduring" in verdict.reason
    assert "look transient" in verdict.reason


def test_a_costly_but_successful_trace_is_held_for_a_person() -> None:
    trace = make_trace(
        root(duration_ms=26_000, output="Your order 4471 ships tomorrow."),
        tool("a", "get_order", usage=Usage(cost_usd=0.02)),
        tool("b", "get_order", at_ms=2_000, retry_attempt=1, usage=Usage(cost_usd=0.02)),
        tool("c", "get_order", at_ms=4_000, retry_attempt=2, usage=Usage(cost_usd=0.02)),
        outcome="success",
    )
    verdict = logic.score(make_event(trace), POLICY, FRESH)
    assert verdict.scores["risk_bearing"].score == 0.0
    assert verdict.scores["operationally_costly"].score >= 0.9
    assert verdict.decision == Decision.HOLD, verdict.reason
    assert "the run succeeded" in verdict.reason
    assert "operationally costly" in verdict.reason


def test_boundary_stress_from_repeated_approval_pressure_is_promoted() -> None:
    trace = make_trace(
        root(output="I cannot issue a refund above the limit without approval."),
        approval("ap1", "denied", 200),
        approval("ap2", "denied", 400),
        approval("ap3", "denied", 600),
        outcome="success",
    )
    pattern = make_pattern(
        occurrences=8,
        count_7d=8,
        distinct_sessions=5,
        distinct_users=5,
        distinct_days=3,
        agent_versions=("1.4.0",),
    )
    verdict = logic.score(make_event(trace, pattern=pattern), POLICY, FRESH)
    assert verdict.decision == Decision.PROMOTE, verdict.reason
    assert "approval denied 3x" in verdict.reason


# --- the decision: gates, bands and budgets ------------------------------------------


def test_a_happy_path_that_teaches_nothing_is_rejected_at_the_teachable_gate() -> None:
    verdict = logic.score(make_event(), POLICY, FRESH)
    assert verdict.decision == Decision.REJECT
    assert "hard gate teachable 0.00 < 0.30" in verdict.reason


def test_a_trace_whose_redaction_did_not_pass_is_rejected() -> None:
    verdict = logic.score(make_event(refund_failed_trace(), redaction_passed=False), POLICY, FRESH)
    assert verdict.decision == Decision.REJECT
    assert "redaction did not pass" in verdict.reason


def test_a_strong_trace_close_to_the_observable_gate_is_held_for_review() -> None:
    trace = refund_failed_trace()
    verdict = logic.score(make_event(trace, complete=False), POLICY, FRESH)
    assert verdict.total >= POLICY.thresholds.promote
    assert verdict.decision == Decision.HOLD
    assert "close to a gate: observable" in verdict.reason


def test_a_total_between_hold_and_promote_is_held() -> None:
    trace = make_trace(
        root(status=SpanStatus.ERROR, output=None),
        tool("a", "get_order", ok=False, error_type="KeyError"),
    )
    pattern = make_pattern(
        occurrences=6,
        count_7d=6,
        distinct_sessions=4,
        distinct_users=4,
        distinct_days=3,
        agent_versions=("1.4.0",),
    )
    verdict = logic.score(make_event(trace, pattern=pattern), POLICY, FRESH)
    assert POLICY.thresholds.hold <= verdict.total < POLICY.thresholds.promote
    assert verdict.decision == Decision.HOLD
    assert "Held for review" in verdict.reason


def test_a_spent_daily_budget_holds_what_would_be_promoted() -> None:
    daily = POLICY.model_copy(update={"budgets": POLICY.budgets.model_copy(update={"daily": 5})})
    event = make_event(refund_failed_trace())
    verdict = logic.score(event, daily, BudgetState(promoted_for_pattern=0, promoted_today=5))
    assert verdict.decision == Decision.HOLD
    assert "daily budget of 5 promotions is spent" in verdict.reason


def test_the_strict_policy_promotes_one_trace_per_pattern() -> None:
    event = make_event(refund_failed_trace())
    second = BudgetState(promoted_for_pattern=1, promoted_today=1)
    assert logic.score(event, POLICY, second).decision == Decision.PROMOTE
    assert logic.score(event, STRICT, second).decision == Decision.REJECT


def test_the_reason_names_the_carrying_criteria_with_their_values_and_the_policy() -> None:
    verdict = logic.score(make_event(refund_failed_trace()), POLICY, FRESH)
    assert verdict.decision == Decision.PROMOTE
    line = POLICY.thresholds.promote
    assert verdict.reason.startswith(
        f"Promoted ({verdict.total:.2f} ≥ {line:.2f} under policy {POLICY.version}): "
    )
    risk = verdict.scores["risk_bearing"].score
    assert f"risk-bearing {risk:.2f} — side-effecting tool issue_refund failed" in verdict.reason
    assert "patterned 1.00 — 14 occurrences (14 in 7 days, 3 in 24 h) over 6 days" in verdict.reason
    assert "\n" not in verdict.reason


def test_every_criterion_is_scored_and_the_total_is_their_weighted_mean() -> None:
    verdict = logic.score(make_event(refund_failed_trace()), POLICY, FRESH)
    assert tuple(verdict.scores) == CRITERIA
    weights = POLICY.weights.as_dict()
    expected = sum(weights[n] * verdict.scores[n].score for n in CRITERIA) / sum(weights.values())
    assert verdict.total == pytest.approx(expected, abs=1e-4)


def test_a_scored_event_survives_a_round_trip_through_json_unchanged() -> None:
    event = make_event(refund_failed_trace())
    verdict = logic.score(event, POLICY, FRESH)
    scored = advance(
        event,
        TraceScored,
        StageStamp(stage="scoring", version="0", at=T0),
        scores=verdict.scores,
        total=verdict.total,
        decision=verdict.decision,
        reason=verdict.reason,
        policy_version=POLICY.version,
    )
    assert TraceScored.model_validate_json(scored.model_dump_json()) == scored


# --- properties ----------------------------------------------------------------------


counts = st.integers(min_value=0, max_value=60)


@st.composite
def scored_inputs(draw: st.DrawFn) -> tuple[TraceRedacted, BudgetState]:
    occurrences = draw(st.integers(min_value=1, max_value=60))
    pattern = make_pattern(
        occurrences=occurrences,
        count_7d=draw(st.integers(min_value=0, max_value=occurrences)),
        count_24h=draw(st.integers(min_value=0, max_value=occurrences)),
        distinct_sessions=draw(counts),
        distinct_users=draw(counts),
        distinct_days=draw(st.integers(min_value=1, max_value=30)),
        covered_by_fixture=draw(st.booleans()),
    )
    calls = tuple(
        ToolCall(
            name=f"tool_{i}",
            arguments_fingerprint="-",
            ok=draw(st.booleans()),
            side_effecting=draw(st.booleans()),
        )
        for i in range(draw(st.integers(min_value=0, max_value=4)))
    )
    feats = TraceFeatures(
        step_count=draw(st.integers(min_value=1, max_value=500)),
        tool_calls=calls,
        error_types=tuple(
            draw(st.lists(st.sampled_from(["HTTPError 503", "KeyError"]), max_size=2))
        ),
        retries=draw(counts),
        loops=draw(counts),
        human_interventions=draw(counts),
        approvals_requested=draw(counts),
        approvals_denied=draw(counts),
        escalated=draw(st.booleans()),
        guardrail_hits=draw(counts),
        latency_ms=draw(st.floats(min_value=0, max_value=1e6)),
        cost_usd=draw(st.floats(min_value=0, max_value=100)),
        outcome=draw(st.sampled_from(["success", "failure", "unknown"])),
        negative_feedback=draw(counts),
    )
    event = make_event(
        make_trace(),
        pattern=pattern,
        features=feats,
        complete=draw(st.booleans()),
        redaction_passed=draw(st.booleans()),
    )
    budget = BudgetState(
        promoted_for_pattern=draw(st.integers(0, 5)), promoted_today=draw(st.integers(0, 5))
    )
    return event, budget


@settings(max_examples=150, deadline=None)
@given(scored_inputs(), st.sampled_from([POLICY, STRICT]))
def test_any_input_gets_bounded_scores_a_reason_and_the_same_verdict_twice(
    inputs: tuple[TraceRedacted, BudgetState], policy: Policy
) -> None:
    event, budget = inputs
    verdict = logic.score(event, policy, budget)
    assert all(0.0 <= s.score <= 1.0 for s in verdict.scores.values())
    assert 0.0 <= verdict.total <= 1.0
    assert policy.version in verdict.reason
    assert logic.score(event, policy, budget) == verdict
    if budget.promoted_for_pattern >= policy.budgets.per_pattern:
        assert verdict.decision != Decision.PROMOTE
