"""Literal builders for events, shared by the logic and wiring tiers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import (
    CriterionScore,
    Decision,
    Feedback,
    PatternInfo,
    RedactionReport,
    Span,
    SpanKind,
    SpanStatus,
    StageStamp,
    Trace,
    TraceScored,
)
from shared.features import derive_features

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
ROOT = "0" * 16


def span(i: int, kind: SpanKind, name: str, *, error: str | None = None, **kw: Any) -> Span:
    return Span(
        span_id=f"{i:016x}",
        parent_span_id=None if i == 0 else ROOT,
        name=name,
        kind=kind,
        start_time=T0 + timedelta(seconds=i),
        end_time=T0 + timedelta(seconds=i, milliseconds=500),
        status=SpanStatus.ERROR if error else SpanStatus.OK,
        error_type="ToolError" if error else None,
        error_message=error,
        tool_name=name if kind == SpanKind.TOOL else None,
        **kw,
    )


def refund_trace(trace_id: str = "t" * 32, amount: int = 120) -> Trace:
    return Trace(
        trace_id=trace_id,
        session_id="sess-1",
        user_id="user-1",
        agent_name="billing-agent",
        agent_version="1.4.0",
        outcome="failure",
        spans=(
            span(
                0,
                SpanKind.AGENT,
                "agent",
                input="Refund my last order please",
                output="Refund issued.",
            ),
            span(1, SpanKind.TOOL, "lookup_order", tool_arguments='{"order": "ORD-1"}'),
            span(
                2,
                SpanKind.TOOL,
                "issue_refund",
                tool_arguments=f'{{"order": "ORD-1", "amount": {amount}}}',
                error=f"amount {amount} exceeds order total 40",
            ),
        ),
        feedback=(
            Feedback(
                source="user",
                name="thumbs",
                score=0.0,
                label="negative",
                explanation="refunded the wrong amount",
            ),
        ),
    )


def trace_with_lookalikes(lookalike: str) -> Trace:
    """A refund trace with one more span whose keys and text imitate an event's own field
    names (``"trace":``, ``"features":``): what must not move where a record is cut."""
    base = refund_trace()
    echo = span(
        3,
        SpanKind.TOOL,
        "echo",
        tool_arguments=json.dumps({"features": {"trace": lookalike}}),
        output=lookalike,
        attributes={"x": 1, "features": {"a": 1}, "trace": {"features": lookalike}},
    )
    return base.model_copy(update={"spans": (*base.spans, echo)})


def pattern_info(pattern_id: str = "p1-abc", occurrences: int = 5) -> PatternInfo:
    return PatternInfo(
        pattern_id=pattern_id,
        fingerprint_version=1,
        fingerprint="fp",
        occurrences=occurrences,
        distinct_sessions=4,
        distinct_users=3,
        distinct_days=3,
        agent_versions=("1.4.0",),
        first_seen=T0 - timedelta(days=3),
        last_seen=T0,
        count_24h=2,
        count_7d=occurrences,
    )


def scored(
    trace: Trace,
    policy_version: str = "test-policy",
    pattern_id: str = "p1-abc",
    decision: Decision = Decision.PROMOTE,
    at: datetime = T0,
) -> TraceScored:
    return TraceScored(
        trace_id=trace.trace_id,
        stages=(StageStamp(stage="scoring", version="test", at=at),),
        trace=trace,
        features=derive_features(trace),
        pattern=pattern_info(pattern_id),
        redaction=RedactionReport(),
        scores={
            "risk_bearing": CriterionScore(score=1.0, evidence={"failed_side_effects": 1}),
            "patterned": CriterionScore(score=0.8),
            "enduring": CriterionScore(score=0.3),
        },
        total=0.8,
        decision=decision,
        reason="Promoted: risk-bearing 1.00 — issue_refund failed.",
        policy_version=policy_version,
    )
