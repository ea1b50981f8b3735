"""Error-message templating and the structural fingerprint, on literal inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.dedupe.logic import (
    FINGERPRINT_VERSION,
    Recorded,
    fingerprint,
    may_forward,
    observe,
    pattern_id_of,
    should_forward,
    structure,
)
from shared.events import Span, SpanKind, SpanStatus, Trace
from shared.features import derive_features
from shared.templating import template_message

pytestmark = pytest.mark.logic

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("timeout after 3012 ms", "timeout after <num> ms"),
        ("order ORD-88123 not found", "order <id> not found"),
        (
            "user 3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b missing",
            "user <uuid> missing",
        ),
        ("mail to jane.doe@example.com bounced", "mail to <email> bounced"),
        ("GET https://api.example.com/v1/orders?id=7 failed", "GET <url> failed"),
        ("cannot open /var/data/orders.db", "cannot open <path>"),
        ("refund of 120.50 exceeds limit 100", "refund of <num> exceeds limit <num>"),
        ("field 'amount' invalid", "field <quoted> invalid"),
        ("checksum 9f86d081884c7d65 mismatch", "checksum <hex> mismatch"),
        ("on 2026-11-03T10:00:00Z the job failed", "on <date> the job failed"),
        ("upstream 10.1.2.3 refused", "upstream <ip> refused"),
    ],
)
def test_variable_parts_of_error_messages_become_typed_placeholders(
    message: str, expected: str
) -> None:
    assert template_message(message) == expected


def test_messages_differing_only_in_values_share_a_template() -> None:
    assert template_message("timeout after 95 ms for order 17") == template_message(
        "timeout after 3012 ms for order 8812"
    )


def span(i: int, kind: SpanKind, name: str, *, error: str | None = None, **kw: object) -> Span:
    return Span(
        span_id=f"{i:016x}",
        parent_span_id=None if i == 0 else f"{0:016x}",
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


def trace_of(*spans: Span, trace_id: str = "t" * 32, outcome: str | None = None) -> Trace:
    return Trace(trace_id=trace_id, agent_name="billing-agent", spans=spans, outcome=outcome)


def test_the_structure_is_the_agent_and_outcome_and_leaves_out_the_path() -> None:
    trace = trace_of(
        span(0, SpanKind.AGENT, "agent"),
        span(1, SpanKind.LLM, "chat"),
        span(2, SpanKind.TOOL, "lookup_user"),
        span(3, SpanKind.RETRIEVAL, "search"),
        span(5, SpanKind.TOOL, "issue_refund", error="amount 120 exceeds 100"),
    )
    assert structure(trace, derive_features(trace)) == {
        "agent": "billing-agent",
        "outcome": "success",
    }
    text = fingerprint(trace, derive_features(trace))
    assert "lookup_user" not in text and "120" not in text and "issue_refund" not in text


def test_the_same_failure_with_other_values_has_the_same_pattern_id() -> None:
    a = trace_of(
        span(0, SpanKind.AGENT, "agent"),
        span(1, SpanKind.TOOL, "issue_refund", error="amount 120 exceeds 100"),
    )
    b = trace_of(
        span(0, SpanKind.AGENT, "agent"),
        span(1, SpanKind.TOOL, "issue_refund", error="amount 75 exceeds 50"),
        trace_id="u" * 32,
    )
    assert observe(a, derive_features(a)).bucket == observe(b, derive_features(b)).bucket


def test_a_different_outcome_makes_a_different_pattern_another_error_does_not() -> None:
    base = trace_of(
        span(0, SpanKind.AGENT, "agent"),
        span(1, SpanKind.TOOL, "issue_refund", error="amount 120 exceeds 100"),
        outcome="failure",
    )
    other_error = trace_of(
        span(0, SpanKind.AGENT, "agent"),
        span(1, SpanKind.TOOL, "issue_refund", error="account 7 is closed"),
        outcome="failure",
    )
    assert fingerprint(base, derive_features(base)) == fingerprint(
        other_error, derive_features(other_error)
    )
    other_outcome = trace_of(*base.spans, outcome="success")
    assert fingerprint(base, derive_features(base)) != fingerprint(
        other_outcome, derive_features(other_outcome)
    )


def test_pattern_ids_carry_the_fingerprint_version() -> None:
    assert FINGERPRINT_VERSION == 3
    assert pattern_id_of("a" * 20, (1, 2, 3)).startswith("p3-")


def test_session_and_user_ids_are_kept_only_as_digests() -> None:
    trace = Trace(
        trace_id="t" * 32,
        session_id="sess-42",
        user_id="marta@example.com",
        spans=(span(0, SpanKind.AGENT, "agent"),),
    )
    members = dict(observe(trace, derive_features(trace)).members)
    assert members["user"] != "marta@example.com" and len(members["user"]) == 24
    assert members["session"] != "sess-42"
    assert members["day"] == "2026-11-03"


@pytest.mark.parametrize(
    ("recorded", "covered", "forward"),
    [
        (Recorded("p", first_delivery=True, already_forwarded=False), False, True),
        (Recorded("p", first_delivery=False, already_forwarded=False), False, True),
        (Recorded("p", first_delivery=False, already_forwarded=True), False, False),
        (Recorded("p", first_delivery=True, already_forwarded=False), True, False),
        (Recorded("p", first_delivery=True, already_forwarded=False, near_copy=True), False, False),
    ],
)
def test_only_traces_not_yet_passed_on_not_near_copies_and_of_uncovered_patterns_are_forwarded(
    recorded: Recorded, covered: bool, forward: bool
) -> None:
    assert should_forward(recorded, covered) is forward


@pytest.mark.parametrize(
    "recorded",
    [
        Recorded("p", first_delivery=True, already_forwarded=False),
        Recorded("p", first_delivery=False, already_forwarded=False),
        Recorded("p", first_delivery=False, already_forwarded=True),
        Recorded("p", first_delivery=True, already_forwarded=False, near_copy=True),
    ],
)
def test_a_trace_that_may_not_go_on_is_not_forwarded_whatever_its_pattern(
    recorded: Recorded,
) -> None:
    # The stage stops at may_forward before it gathers the pattern's statistics: that must
    # never change a decision.
    for covered in (False, True):
        for rising in (False, True):
            if not may_forward(recorded):
                assert not should_forward(recorded, covered, rising)
    assert may_forward(recorded) is should_forward(recorded, covered=False)
