"""Slow failure: a pattern against its own past."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from scipy.stats import binomtest

from services.dedupe.logic import Recorded, SeriesPoint, series_starts, should_forward
from services.scoring import logic as scoring
from services.scoring.policy import DEFAULT_POLICY_PATH, load_policy
from shared.events import PatternInfo, PatternTrend, TraceFeatures
from shared.trends import DayCount, _one_sided, fixed_threshold_alarm, trend
from tools.scripts.eval_trends import change_point_figures

pytestmark = pytest.mark.logic

TODAY = date(2026, 11, 30)
POLICY = load_policy(DEFAULT_POLICY_PATH)


def history(
    per_day: list[int], traffic: int = 200, rescues: list[int] | None = None
) -> list[DayCount]:
    start = TODAY - timedelta(days=len(per_day) - 1)
    return [
        DayCount(start + timedelta(days=i), n, traffic, (rescues or [0] * len(per_day))[i])
        for i, n in enumerate(per_day)
    ]


def test_a_pattern_whose_share_of_traffic_triples_is_rising_since_it_started() -> None:
    days = history([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1, 3, 4, 5])
    t = trend(days, TODAY)
    assert t is not None and t.rising
    assert t.rate_ratio >= 3
    assert t.p_value < 0.01
    assert t.since == TODAY - timedelta(days=2)


def test_the_one_sided_p_value_is_the_exact_binomial_tests() -> None:
    # The survival function is called directly for speed; it must stay scipy's binomtest.
    cases = [
        (k1, k0, n1, n0)
        for k1 in (0, 1, 3, 9, 40)
        for k0 in (0, 2, 15, 300)
        for n1, n0 in ((3.0, 14.0), (600.0, 2800.0), (5.0, 1.0))
    ]
    for k1, k0, n1, n0 in cases:
        expected = (
            binomtest(k1, k0 + k1, n1 / (n0 + n1), alternative="greater").pvalue if k0 + k1 else 1.0
        )
        assert _one_sided(k1, k0, n1, n0) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_steady_pattern_is_not_rising() -> None:
    t = trend(history([2, 1, 2, 2, 1, 2, 2, 1, 2, 2, 1, 2, 2, 2, 2, 1, 2]), TODAY)
    assert t is not None and not t.rising


def test_more_occurrences_because_the_agent_got_more_traffic_is_not_rising() -> None:
    days = history([1] * 14, traffic=100) + [
        DayCount(TODAY - timedelta(days=i), 4, 400) for i in (2, 1, 0)
    ]
    t = trend(days, TODAY)
    assert t is not None and not t.rising


def test_a_new_or_rare_pattern_has_no_trend_yet() -> None:
    assert trend(history([0] * 14 + [3, 4, 5]), TODAY) is None  # never seen before
    assert trend(history([1] * 14 + [0, 1, 0]), TODAY) is None  # too few recent


def test_rising_rescue_load_per_occurrence_is_its_own_signal() -> None:
    counts = [2] * 17
    rescues = [0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 6, 5, 6]
    t = trend(history(counts, rescues=rescues), TODAY)
    assert t is not None
    assert t.rescue_rising and not t.rising


def test_the_fixed_threshold_baseline_fires_on_a_single_noisy_day() -> None:
    assert fixed_threshold_alarm(history([1] * 16 + [3]), TODAY)
    assert not fixed_threshold_alarm(history([2] * 17), TODAY)


def test_on_change_point_streams_the_rate_test_alarms_less_than_a_fixed_threshold() -> None:
    figures = change_point_figures(patterns=60, seed=3)
    test, fixed = figures["rate_test"], figures["fixed_threshold"]
    assert test["false_alarms_per_1000_pattern_days"] < fixed["false_alarms_per_1000_pattern_days"]
    assert test["detected_share"] >= 0.8
    assert test["median_delay_days"] is not None and test["median_delay_days"] <= 3


def test_a_trace_adds_to_the_hour_and_the_day_it_started_in() -> None:
    starts = series_starts(datetime(2026, 11, 30, 13, 45, 12, tzinfo=UTC))
    assert starts == (
        ("hour", datetime(2026, 11, 30, 13, tzinfo=UTC)),
        ("day", datetime(2026, 11, 30, tzinfo=UTC)),
    )


def test_rescues_count_people_pulled_in() -> None:
    features = TraceFeatures(
        step_count=5, human_interventions=1, user_corrections=2, escalated=True, retries=1
    )
    from shared.events import Span, SpanKind, Trace

    trace = Trace(
        trace_id="a" * 32,
        agent_version="v2",
        spans=(
            Span(
                span_id="0" * 16,
                name="agent",
                kind=SpanKind.AGENT,
                start_time=datetime(2026, 1, 1, tzinfo=UTC),
            ),
        ),
    )
    point = SeriesPoint.of(trace, features)
    assert (point.rescues, point.retries, point.agent_version) == (4, 1, "v2")


RISING = PatternTrend(
    rising=True,
    rate_ratio=3.2,
    p_value=0.001,
    recent_share=0.02,
    baseline_share=0.006,
    recent_days=3,
    baseline_days=14,
    since=TODAY - timedelta(days=2),
)


def pattern(**fields: object) -> PatternInfo:
    base: dict[str, object] = {
        "pattern_id": "p3-x",
        "fingerprint_version": 3,
        "fingerprint": "v3",
        "occurrences": 6,
        "distinct_sessions": 5,
        "distinct_users": 5,
        "distinct_days": 3,
        "first_seen": datetime(2026, 11, 14, tzinfo=UTC),
        "last_seen": datetime(2026, 11, 30, tzinfo=UTC),
        "count_24h": 3,
        "count_7d": 5,
    }
    return PatternInfo(**{**base, **fields})


def test_a_rising_pattern_scores_higher_on_patterned_and_enduring_with_a_readable_reason() -> None:
    features = TraceFeatures(step_count=5, outcome="failure")
    from tests.logic.test_signals import approval_pressure_trace

    trace = approval_pressure_trace("f" * 32)
    steady, rising = pattern(), pattern(trend=RISING)
    assert scoring.patterned(rising, POLICY).score > scoring.patterned(steady, POLICY).score
    lifted = scoring.enduring(trace, features, rising, POLICY)
    assert lifted.score > scoring.enduring(trace, features, steady, POLICY).score
    assert "rising: 3.2x its share" in scoring.patterned(rising, POLICY).evidence["summary"]


def test_a_covered_pattern_that_keeps_rising_is_forwarded_and_flagged_covered_not_protected() -> (
    None
):
    recorded = Recorded("p3-x", first_delivery=True, already_forwarded=False)
    assert not should_forward(recorded, covered=True, rising=False)
    assert should_forward(recorded, covered=True, rising=True)
    features = TraceFeatures(step_count=5, outcome="failure")
    flagged = scoring.missed_offline(pattern(covered_by_fixture=True, trend=RISING), features)
    assert flagged.evidence["covered_not_protected"]
    assert "covered but not protected" in flagged.evidence["summary"]
    assert flagged.score > scoring.missed_offline(pattern(covered_by_fixture=True), features).score


def test_a_held_failure_is_lifted_to_promotion_when_its_pattern_is_rising() -> None:
    from shared.events import Feedback, RedactionReport, Span, SpanKind, Trace, TraceRedacted
    from shared.features import derive_features, is_complete

    start = datetime(2026, 11, 20, 9, tzinfo=UTC)
    trace = Trace(
        trace_id="a" * 32,
        session_id="s",
        user_id="u",
        agent_name="research-agent",
        spans=(
            Span(
                span_id="0" * 16,
                name="agent",
                kind=SpanKind.AGENT,
                start_time=start,
                end_time=start + timedelta(seconds=5),
                input="What is the capital of Kiribati?",
                output="Suva",
            ),
        ),
        feedback=(Feedback(source="evaluator", name="correctness", score=0.0, label="fail"),),
    )
    twice = pattern(occurrences=2, distinct_sessions=2, distinct_users=2, distinct_days=1)
    twice = twice.model_copy(update={"count_7d": 2, "count_24h": 2})

    def decided(p: PatternInfo) -> scoring.Verdict:
        event = TraceRedacted(
            trace_id=trace.trace_id,
            trace=trace,
            features=derive_features(trace),
            complete=is_complete(trace),
            pattern=p,
            redaction=RedactionReport(passed=True),
        )
        return scoring.score(event, POLICY, scoring.BudgetState(0, 0))

    assert decided(twice).decision == "hold"
    lifted = decided(twice.model_copy(update={"trend": RISING}))
    assert lifted.decision == "promote", lifted.reason
    assert "rising: 3.2x its share" in lifted.reason
