"""Evidence read from generic telemetry: tool results, tool names, the conversation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.scoring import logic
from services.scoring.logic import BudgetState
from services.scoring.policy import DEFAULT_POLICY_PATH, load_policy
from shared.conversation import turns, user_turns
from shared.events import (
    Decision,
    Feedback,
    PatternInfo,
    RedactionReport,
    Span,
    SpanKind,
    Trace,
    TraceRedacted,
)
from shared.features import derive_features, is_complete
from shared.signals import (
    approval_outcome,
    is_correction,
    is_escalation_tool,
    is_frustrated,
    result_is_empty,
    result_is_error,
)

pytestmark = pytest.mark.logic

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
POLICY = load_policy(DEFAULT_POLICY_PATH)


@pytest.mark.parametrize(
    "result",
    [
        '{"error": "order not found"}',
        '{"status": 404, "detail": "missing"}',
        '{"status_code": "503"}',
        '{"success": false}',
        "Error: the item cannot be exchanged",
        "HTTP 429 Too Many Requests",
        "upstream answered 500 Internal Server Error",
    ],
)
def test_error_shaped_tool_results_are_failures(result: str) -> None:
    assert result_is_error(result)


@pytest.mark.parametrize(
    "result",
    [
        '{"status": "delivered", "items": [1]}',
        '{"error": null, "rows": 3}',
        "The order was delivered on time.",
        '{"code": "SAVE10"}',
        None,
    ],
)
def test_ordinary_tool_results_are_not_failures(result: str | None) -> None:
    assert not result_is_error(result)


def test_empty_results_are_told_from_absent_ones() -> None:
    assert result_is_empty("[]")
    assert result_is_empty('{"results": [], "total": 0}')
    assert result_is_empty("No results found.")
    assert not result_is_empty(None)
    assert not result_is_empty('{"results": [{"id": 1}]}')


def test_an_approval_tools_answer_is_read_from_its_result() -> None:
    assert approval_outcome('{"approved": false, "by": "manager"}', failed=False) == "denied"
    assert approval_outcome('{"status": "rejected"}', failed=False) == "denied"
    assert approval_outcome('{"approved": true}', failed=False) == "granted"
    assert approval_outcome('{"ticket": "A-1"}', failed=False) == "requested"
    assert approval_outcome(None, failed=True) == "denied"


def test_hand_offs_to_people_are_escalations_and_money_transfers_are_not() -> None:
    for name in ("transfer_to_human_agents", "escalate_ticket", "handoff", "connect_to_live"):
        assert is_escalation_tool(name), name
    for name in ("transfer_funds", "get_order_details", "human_resources_lookup"):
        assert not is_escalation_tool(name), name


def test_users_correcting_the_agent_or_losing_patience_are_recognised() -> None:
    assert is_correction("No, that's not what I asked for. I said the blue one.")
    assert is_correction("I already told you my order number")
    assert not is_correction("No, that's all, thank you!")
    assert is_frustrated("This is ridiculous, let me speak to a manager")
    assert is_frustrated("Still not fixed??")
    assert not is_frustrated("Thanks, that works.")


def chat(span_id: str, at_s: int, **attributes: Any) -> Span:
    return Span(
        span_id=span_id,
        parent_span_id="0" * 16,
        name="chat",
        kind=SpanKind.LLM,
        start_time=T0 + timedelta(seconds=at_s),
        end_time=T0 + timedelta(seconds=at_s + 1),
        attributes=attributes,
    )


def tool(span_id: str, at_s: int, name: str, result: str) -> Span:
    return Span(
        span_id=span_id,
        parent_span_id="0" * 16,
        name=f"execute_tool {name}",
        kind=SpanKind.TOOL,
        tool_name=name,
        tool_arguments="{}",
        tool_result=result,
        start_time=T0 + timedelta(seconds=at_s),
        end_time=T0 + timedelta(seconds=at_s + 1),
    )


def root(**fields: Any) -> Span:
    return Span(
        span_id="0" * 16,
        name="invoke_agent",
        kind=SpanKind.AGENT,
        start_time=T0,
        end_time=T0 + timedelta(seconds=60),
        **fields,
    )


def genai(*messages: tuple[str, str]) -> str:
    return json.dumps([{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in messages])


def test_turns_are_read_from_genai_and_openinference_model_calls_once_each() -> None:
    trace = Trace(
        trace_id="c" * 32,
        spans=(
            root(input="Hi"),
            chat("1" * 16, 1, **{"gen_ai.input.messages": genai(("user", "Hi"))}),
            chat(
                "2" * 16,
                2,
                **{
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": "Hi",
                    "llm.input_messages.1.message.role": "assistant",
                    "llm.input_messages.1.message.content": "Hello! How can I help?",
                    "llm.input_messages.2.message.role": "user",
                    "llm.input_messages.2.message.content": "Return my lamp",
                },
            ),
        ),
    )
    assert user_turns(trace) == ["Hi", "Return my lamp"]
    assert [t.role for t in turns(trace)] == ["user", "assistant", "user"]


def test_without_messages_on_model_calls_the_roots_input_is_the_users_turn() -> None:
    trace = Trace(
        trace_id="d" * 32, spans=(root(input="Where is my parcel?", output="On its way"),)
    )
    assert user_turns(trace) == ["Where is my parcel?"]


def approval_pressure_trace(trace_id: str) -> Trace:
    """The shape real instrumentation records: an approval asked for through a tool and
    refused, the user pushing back and escalating, an evaluator grading the run a fail."""
    return Trace(
        trace_id=trace_id,
        session_id=f"s-{trace_id}",
        user_id=f"u-{trace_id}",
        agent_name="support-agent",
        spans=(
            root(input="I want a refund of the whole order"),
            chat(
                "1" * 16,
                1,
                **{"gen_ai.input.messages": genai(("user", "I want a refund of the whole order"))},
            ),
            tool("2" * 16, 2, "request_approval", '{"approved": false, "reason": "over limit"}'),
            chat(
                "3" * 16,
                3,
                **{
                    "gen_ai.input.messages": genai(
                        ("user", "That's not acceptable. Let me speak to a manager!")
                    )
                },
            ),
            tool("4" * 16, 4, "transfer_to_human_agents", '{"ticket": "T-1"}'),
        ),
        feedback=(Feedback(source="evaluator", name="task_success", score=0.0, label="fail"),),
    )


def test_approval_pressure_from_tools_and_an_escalating_user_is_recognised() -> None:
    features = derive_features(approval_pressure_trace("a" * 32))
    assert (features.approvals_requested, features.approvals_denied) == (1, 1)
    assert features.escalated
    assert features.user_frustration == 1
    assert features.outcome == "failure"
    risk = logic.risk_bearing(features, approval_pressure_trace("a" * 32))
    assert {"approval_denied", "escalation_failed", "user_frustrated"} <= set(
        risk.evidence["signals"]
    )


def test_a_high_risk_failure_seen_twice_is_promoted_under_the_default_policy() -> None:
    trace = approval_pressure_trace("b" * 32)
    twice = PatternInfo(
        pattern_id="p3-approval",
        fingerprint_version=3,
        fingerprint="v3",
        occurrences=2,
        distinct_sessions=2,
        distinct_users=2,
        distinct_days=1,
        first_seen=T0,
        last_seen=T0,
        count_24h=2,
        count_7d=2,
    )
    event = TraceRedacted(
        trace_id=trace.trace_id,
        trace=trace,
        features=derive_features(trace),
        complete=is_complete(trace),
        pattern=twice,
        redaction=RedactionReport(passed=True),
    )
    verdict = logic.score(event, POLICY, BudgetState(0, 0))
    assert verdict.decision == Decision.PROMOTE, verdict.reason
    once = event.model_copy(update={"pattern": twice.model_copy(update={"occurrences": 1})})
    assert logic.score(once, POLICY, BudgetState(0, 0)).decision == Decision.REJECT


def test_an_evaluators_passing_grade_makes_a_run_a_success() -> None:
    trace = Trace(
        trace_id="e" * 32,
        spans=(root(input="q", output="a"),),
        feedback=(Feedback(source="evaluator", name="correctness", score=1.0, label="pass"),),
    )
    assert derive_features(trace).outcome == "success"
