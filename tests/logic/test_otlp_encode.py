"""tools.corpus.otlp: canonical traces written as OTLP decode back to the same canonical traces."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.decode import decode_payload
from shared.events import Document, Feedback, Span, SpanKind, SpanStatus, Trace, Usage
from tools.corpus.otlp import (
    CONVENTIONS,
    Convention,
    split_by_span,
    to_otlp_json,
    to_otlp_proto,
    with_wire_attributes,
)

pytestmark = pytest.mark.logic

T0 = datetime(2026, 3, 2, 9, 30, 0, 250_000, tzinfo=UTC)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


ROOT, PLAN, KB, LOOKUP, REFUND, REFUND_RETRY, APPROVE, GUARD, JUDGE, CACHE = (
    f"{i:016x}" for i in range(1, 11)
)

# A support agent run touching every kind and every normalised field.
LITERAL = Trace(
    trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    session_id="sess-81",
    user_id="user-17",
    agent_name="support-agent",
    agent_version="2.4.1",
    outcome="failure",
    spans=(
        Span(
            span_id=ROOT,
            name="invoke_agent support-agent",
            kind=SpanKind.AGENT,
            start_time=at(0),
            end_time=at(9_000),
            status=SpanStatus.ERROR,
            error_type="RefundFailed",
            error_message="refund could not be issued",
            input="Refund order A-1009, it arrived broken",
            output="I could not issue the refund; a human will follow up.",
            model="gpt-4o",
            usage=Usage(input_tokens=2100, output_tokens=340, cost_usd=0.0191),
            escalated=True,
        ),
        Span(
            span_id=PLAN,
            parent_span_id=ROOT,
            name="chat gpt-4o",
            kind=SpanKind.LLM,
            start_time=at(10),
            end_time=at(900),
            status=SpanStatus.OK,
            input="system: you are support-agent\nuser: Refund order A-1009",
            output="plan: look up the order, then refund",
            model="gpt-4o",
            usage=Usage(input_tokens=812, output_tokens=64, cost_usd=0.00267),
            attributes={"gen_ai.request.temperature": 0.2, "app.prompt_version": 7},
        ),
        Span(
            span_id=KB,
            parent_span_id=ROOT,
            name="retrieve kb-articles",
            kind=SpanKind.RETRIEVAL,
            start_time=at(910),
            end_time=at(1_300),
            status=SpanStatus.OK,
            input="refund policy damaged goods",
            documents=(
                Document(id="kb-12", content="Damaged goods are refunded in full.", score=0.83),
                Document(id="kb-40", score=0.41),
            ),
        ),
        Span(
            span_id=LOOKUP,
            parent_span_id=ROOT,
            name="execute_tool lookup_order",
            kind=SpanKind.TOOL,
            start_time=at(1_310),
            end_time=at(1_700),
            status=SpanStatus.OK,
            tool_name="lookup_order",
            tool_arguments='{"order_id": "A-1009"}',
            tool_result='{"status": "delivered", "total": 129.5}',
        ),
        Span(
            span_id=APPROVE,
            parent_span_id=ROOT,
            name="await approval refund",
            kind=SpanKind.APPROVAL,
            start_time=at(1_710),
            end_time=at(4_000),
            status=SpanStatus.OK,
            approval="granted",
        ),
        Span(
            span_id=REFUND,
            parent_span_id=ROOT,
            name="execute_tool issue_refund",
            kind=SpanKind.TOOL,
            start_time=at(4_010),
            end_time=at(5_000),
            status=SpanStatus.ERROR,
            error_type="TimeoutError",
            error_message="payments-api timed out after 5s",
            tool_name="issue_refund",
            tool_arguments='{"order_id": "A-1009", "amount": 129.5}',
            retry_attempt=0,
            attributes={"promote.tool.side_effecting": True},
        ),
        Span(
            span_id=REFUND_RETRY,
            parent_span_id=ROOT,
            name="execute_tool issue_refund",
            kind=SpanKind.TOOL,
            start_time=at(5_010),
            end_time=at(6_000),
            status=SpanStatus.ERROR,
            error_type="TimeoutError",
            tool_name="issue_refund",
            tool_arguments='{"order_id": "A-1009", "amount": 129.5}',
            input="retrying the refund call",
            retry_attempt=1,
            attributes={"promote.tool.side_effecting": True},
        ),
        Span(
            span_id=GUARD,
            parent_span_id=ROOT,
            name="guardrail output_moderation",
            kind=SpanKind.GUARDRAIL,
            start_time=at(6_010),
            end_time=at(6_050),
            status=SpanStatus.OK,
            input="I could not issue the refund",
            output="pass",
            guardrail_triggered=False,
        ),
        Span(
            span_id=JUDGE,
            parent_span_id=ROOT,
            name="evaluate helpfulness",
            kind=SpanKind.EVALUATOR,
            start_time=at(6_100),
            end_time=at(6_900),
            input="rate the answer",
            output="0.3",
        ),
        Span(
            span_id=CACHE,
            parent_span_id=ROOT,
            name="cache lookup",
            kind=SpanKind.OTHER,
            start_time=at(6_950),
            end_time=None,
            model="embedding-small",
        ),
    ),
    feedback=(
        Feedback(
            source="evaluator",
            name="task_success",
            score=0.0,
            label="fail",
            explanation="the refund never went through",
        ),
        Feedback(source="user", name="thumbs", score=0.0, label="thumbs_down"),
        Feedback(source="human", name="correctness", label="incorrect"),
        Feedback(source="reviewer", name="correction", explanation="escalate before retrying"),
    ),
    resource={"service.name": "support-agent", "deployment.environment.name": "production"},
)


def without_span_attributes(trace: Trace) -> Trace:
    spans = tuple(s.model_copy(update={"attributes": {}}) for s in trace.spans)
    return trace.model_copy(update={"spans": spans})


def decode_proto(trace: Trace, convention: Convention) -> list[Trace]:
    return decode_payload(to_otlp_proto(trace, convention), "application/x-protobuf")


def decode_json(trace: Trace, convention: Convention) -> list[Trace]:
    return decode_payload(json.dumps(to_otlp_json(trace, convention)).encode(), "application/json")


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_decoding_the_protobuf_encoding_gives_back_the_trace(convention: Convention) -> None:
    trace = with_wire_attributes(LITERAL, convention)
    assert decode_proto(trace, convention) == [trace]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_decoding_the_otlp_json_encoding_gives_back_the_trace(convention: Convention) -> None:
    trace = with_wire_attributes(LITERAL, convention)
    assert decode_json(trace, convention) == [trace]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_with_wire_attributes_changes_only_raw_attributes_and_resource(
    convention: Convention,
) -> None:
    wired = with_wire_attributes(LITERAL, convention)
    assert without_span_attributes(wired) == without_span_attributes(LITERAL).model_copy(
        update={"resource": {**LITERAL.resource, "service.version": "2.4.1"}}
    )
    assert with_wire_attributes(wired, convention) == wired


def test_all_conventions_decode_to_equal_canonical_traces_except_raw_span_attributes() -> None:
    decoded = {c: without_span_attributes(decode_proto(LITERAL, c)[0]) for c in CONVENTIONS}
    expected = without_span_attributes(with_wire_attributes(LITERAL))
    assert decoded == dict.fromkeys(CONVENTIONS, expected)


def test_each_convention_writes_its_own_attribute_names() -> None:
    def attribute_keys(convention: Convention) -> set[str]:
        request = to_otlp_json(LITERAL, convention)
        spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
        return {a["key"] for span in spans for a in span.get("attributes", [])}

    genai, old, openinference = (attribute_keys(c) for c in CONVENTIONS)
    assert {"gen_ai.input.messages", "gen_ai.usage.input_tokens", "gen_ai.conversation.id"} <= genai
    assert {"gen_ai.prompt.0.content", "gen_ai.usage.prompt_tokens"} <= old
    assert "gen_ai.input.messages" not in old
    assert {
        "openinference.span.kind",
        "llm.input_messages.0.message.content",
        "retrieval.documents.0.document.id",
        "llm.token_count.prompt",
        "session.id",
    } <= openinference
    assert not any(key.startswith("gen_ai.usage") for key in openinference)
    # What no convention covers goes in promote.* everywhere.
    for keys in (genai, old, openinference):
        assert {"promote.approval", "promote.escalated", "promote.outcome"} <= keys


def test_otlp_json_encoding_uses_hex_ids_and_integer_enums() -> None:
    request = to_otlp_json(LITERAL)
    span = request["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert (span["traceId"], span["spanId"], span["parentSpanId"]) == (
        LITERAL.trace_id,
        PLAN,
        ROOT,
    )
    assert span["kind"] == 3  # SPAN_KIND_CLIENT for an inference span
    assert span["status"] == {"code": 1}


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_split_payloads_decode_to_partial_traces_that_together_make_the_whole(
    convention: Convention,
) -> None:
    parts = [
        decode_payload(payload, "application/x-protobuf")
        for payload in split_by_span(LITERAL, 3, convention)
    ]
    assert all(len(part) == 1 for part in parts)
    partials = [part[0] for part in parts]
    assert [len(p.spans) for p in partials] == [3, 3, 4]
    # Parts without the root know the session but not the outcome or the feedback.
    assert all(p.session_id == LITERAL.session_id for p in partials)
    assert [p.outcome for p in partials] == ["failure", None, None]
    assert [len(p.feedback) for p in partials] == [4, 0, 0]
    # Fed back together as native fragments of one trace, they are the whole trace.
    fragments = json.dumps([p.model_dump(mode="json") for p in partials]).encode()
    assert decode_payload(fragments, "application/json") == [
        with_wire_attributes(LITERAL, convention)
    ]


def test_split_by_span_refuses_more_parts_than_spans() -> None:
    with pytest.raises(ValueError, match="parts"):
        split_by_span(LITERAL, len(LITERAL.spans) + 1)
    with pytest.raises(ValueError, match="parts"):
        split_by_span(LITERAL, 0)


def test_encoder_refuses_ids_that_are_not_otlp_ids() -> None:
    with pytest.raises(ValueError, match="trace id"):
        to_otlp_proto(LITERAL.model_copy(update={"trace_id": "trace-1"}))
    span = LITERAL.spans[0].model_copy(update={"span_id": "ABCDEF0123456789"})
    with pytest.raises(ValueError, match="span id"):
        to_otlp_proto(LITERAL.model_copy(update={"spans": (span,)}))


# --- any representable trace -------------------------------------------------------------------

# Protobuf strings must be valid UTF-8: no lone surrogates.
TEXT = st.text(st.characters(codec="utf-8"), max_size=24)
NAME = TEXT.filter(bool)
FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), FINITE, TEXT)
RAW_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5).map(lambda s: f"k{s}"), inner, max_size=3)
    ),
    max_leaves=6,
)
# Raw keys under a namespace no convention reads, so they cannot contradict the fields.
RAW_ATTRIBUTES = st.dictionaries(
    st.text("abcdefgh._", min_size=1, max_size=8).map(lambda s: f"app.{s}"),
    RAW_VALUE,
    max_size=3,
)
MOMENT = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
SPAN_ID = st.integers(1, 2**64 - 1).map(lambda n: f"{n:016x}")
TRACE_ID = st.integers(1, 2**128 - 1).map(lambda n: f"{n:032x}")


@st.composite
def spans(draw: st.DrawFn, span_id: str, parents: list[str]) -> Span:
    kind = draw(st.sampled_from(SpanKind))
    maybe = st.none() | TEXT
    maybe_name = st.none() | NAME
    fields: dict[str, Any] = {}
    if kind is SpanKind.TOOL:
        # OpenInference writes a call's arguments to input.value: a tool span's input only
        # travels beside arguments, and its output beside a result.
        fields["tool_name"] = draw(maybe_name)
        fields["tool_arguments"] = draw(maybe)
        fields["tool_result"] = draw(maybe)
        fields["input"] = draw(maybe) if fields["tool_arguments"] is not None else None
        fields["output"] = draw(maybe) if fields["tool_result"] is not None else None
    else:
        fields["input"] = draw(maybe)
        fields["output"] = draw(maybe)
    return Span(
        span_id=span_id,
        parent_span_id=draw(st.none() | st.sampled_from(parents)) if parents else None,
        name=draw(TEXT),
        kind=kind,
        start_time=draw(MOMENT),
        end_time=draw(st.none() | MOMENT),
        status=draw(st.sampled_from(SpanStatus)),
        error_type=draw(maybe_name),
        error_message=draw(maybe_name),
        model=draw(maybe_name),
        documents=tuple(
            draw(
                st.lists(
                    st.builds(
                        Document,
                        id=st.none() | NAME,
                        content=st.none() | TEXT,
                        score=st.none() | FINITE,
                    ).map(lambda d: d if d != Document() else Document(id="d")),
                    max_size=3,
                )
            )
        ),
        usage=draw(
            st.none()
            | st.builds(
                Usage,
                input_tokens=st.none() | st.integers(0, 2**40),
                output_tokens=st.none() | st.integers(0, 2**40),
                cost_usd=st.none() | FINITE,
            ).map(lambda u: u if u != Usage() else Usage(input_tokens=0))
        ),
        approval=draw(st.none() | st.sampled_from(["requested", "granted", "denied"])),
        escalated=draw(st.none() | st.booleans()),
        retry_attempt=draw(st.none() | st.integers(0, 2**31)),
        guardrail_triggered=draw(st.none() | st.booleans()),
        attributes=draw(RAW_ATTRIBUTES),
        **fields,
    )


@st.composite
def traces(draw: st.DrawFn) -> Trace:
    span_ids = draw(st.lists(SPAN_ID, min_size=1, max_size=5, unique=True))
    drawn = [draw(spans(sid, span_ids[:i])) for i, sid in enumerate(span_ids)]
    return Trace(
        trace_id=draw(TRACE_ID),
        session_id=draw(st.none() | NAME),
        user_id=draw(st.none() | NAME),
        agent_name=draw(st.none() | NAME),
        agent_version=draw(st.none() | NAME),
        outcome=draw(st.none() | NAME),
        spans=tuple(drawn),
        feedback=tuple(
            draw(
                st.lists(
                    st.builds(
                        Feedback,
                        source=st.sampled_from(["evaluator", "user", "human", "code", "unknown"]),
                        name=NAME,
                        score=st.none() | FINITE,
                        label=st.none() | NAME,
                        explanation=st.none() | TEXT,
                    ),
                    max_size=3,
                )
            )
        ),
        resource=draw(RAW_ATTRIBUTES),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=traces(), convention=st.sampled_from(CONVENTIONS))
def test_any_representable_trace_survives_the_round_trip_in_every_encoding(
    trace: Trace, convention: Convention
) -> None:
    expected = [with_wire_attributes(trace, convention)]
    assert decode_proto(trace, convention) == expected
    assert decode_json(trace, convention) == expected
