"""Trajectory quality: a run's tool path against the successful runs of its request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.dedupe import logic as dedupe
from services.dedupe.store import InMemoryPatternStore
from services.dedupe.trajectory import order_breaks, tool_path, trajectory
from services.scoring import logic as scoring
from services.scoring.policy import DEFAULT_POLICY_PATH, load_policy
from shared.events import Span, SpanKind, SpanStatus, Trace, TraceFeatures
from shared.features import derive_features

pytestmark = pytest.mark.logic

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
POLICY = load_policy(DEFAULT_POLICY_PATH)
SUCCESSFUL = (
    ("find_user", "get_order", "exchange_items"),
    ("find_user", "get_order", "get_product", "exchange_items"),
    ("find_user", "get_order", "exchange_items"),
)


def run(
    calls: list[tuple[str, str, bool]],
    *,
    outcome: str = "failure",
    trace_id: str = "a" * 32,
    request: str = "Please exchange the desk lamp for a dimmer one",
) -> Trace:
    root = Span(
        span_id="0" * 16,
        name="invoke_agent",
        kind=SpanKind.AGENT,
        start_time=T0,
        end_time=T0 + timedelta(minutes=5),
        input=request,
        output="done",
    )
    tools = [
        Span(
            span_id=f"{i + 1:016x}",
            parent_span_id="0" * 16,
            name=f"execute_tool {name}",
            kind=SpanKind.TOOL,
            tool_name=name,
            tool_arguments=arguments,
            tool_result="Error: not allowed" if failed else '{"ok": true}',
            status=SpanStatus.ERROR if failed else SpanStatus.OK,
            start_time=T0 + timedelta(seconds=i + 1),
            end_time=T0 + timedelta(seconds=i + 2),
        )
        for i, (name, arguments, failed) in enumerate(calls)
    ]
    return Trace(
        trace_id=trace_id,
        agent_name="retail-agent",
        outcome=outcome,
        session_id=f"s-{trace_id}",
        spans=(root, *tools),
    )


WEAK = run(
    [
        ("get_order", "{}", False),
        ("find_user", "{}", False),
        ("exchange_items", '{"x": 1}', True),
        ("exchange_items", '{"x": 1}', True),
        ("get_order", "{}", False),
        ("get_product", "{}", False),
        ("get_product", "{}", False),
        ("modify_items", "{}", False),
    ]
)


def test_a_step_every_successful_run_takes_first_taken_second_breaks_the_order() -> None:
    assert order_breaks(("get_order", "find_user"), SUCCESSFUL) == [("find_user", "get_order")]
    assert order_breaks(("find_user", "get_order"), SUCCESSFUL) == []


def test_a_weak_path_reads_as_wasted_steps_loops_blind_retries_and_late_correction() -> None:
    report = trajectory(WEAK, SUCCESSFUL, "p3-success")
    assert report is not None
    assert report.median_successful_steps == 3
    assert report.extra_steps == 5
    assert report.blind_retries == 1
    assert report.loops == 3
    assert report.late_correction_step == 5
    assert report.order_breaks == ("find_user<get_order",)
    for words in ("8 tool calls where the successful runs took 3", "retried unchanged"):
        assert words in report.summary


def test_without_enough_successful_runs_there_is_no_reference() -> None:
    assert trajectory(WEAK, SUCCESSFUL[:1], "p3-success") is None
    assert trajectory(WEAK, SUCCESSFUL, None) is None


def test_a_path_like_the_successful_ones_is_said_to_be_so() -> None:
    good = run([("find_user", "{}", False), ("get_order", "{}", False)])
    report = trajectory(good, SUCCESSFUL, "p3-success")
    assert report is not None and report.summary == "a path like the successful runs'"


async def test_the_store_finds_the_successful_runs_of_the_same_request_for_a_failed_run() -> None:
    store = InMemoryPatternStore()
    for i, calls in enumerate(SUCCESSFUL):
        ok = run([(c, "{}", False) for c in calls], outcome="success", trace_id=f"{i}" * 32)
        await store.record(dedupe.observe(ok, derive_features(ok)))
    other = run(
        [("find_user", "{}", False)], outcome="success", trace_id="9" * 32, request="Cancel it"
    )
    await store.record(dedupe.observe(other, derive_features(other)))
    observed = dedupe.observe(WEAK, derive_features(WEAK))
    sibling, paths = await store.reference(observed)
    assert sibling is not None
    assert sorted(paths) == sorted(SUCCESSFUL)
    assert tool_path(WEAK)[0] == "get_order"


def test_weak_trajectories_are_operational_cost_and_the_kept_order_is_teachable() -> None:
    report = trajectory(WEAK, SUCCESSFUL, "p3-success")
    features = TraceFeatures(step_count=9, outcome="failure")
    costly = scoring.operationally_costly(features, "retail-agent", POLICY, path=report)
    plain = scoring.operationally_costly(features, "retail-agent", POLICY)
    assert costly.score > plain.score
    assert "against the successful runs of this request" in costly.evidence["summary"]
    taught = scoring.teachable(WEAK, features, POLICY, path=report)
    assert "expected_order" in taught.evidence["signals"]
