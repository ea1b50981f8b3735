"""decode_payload: formats, normalisation and precedence, and what it refuses."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.ingest.decode import InvalidPayload, decode_payload, span_kind_of
from shared.events import Document, Feedback, Span, SpanKind, SpanStatus, Trace, Usage

pytestmark = pytest.mark.logic

TRACE_ID = "5b8efff798038103d269b633813fc60c"
OTHER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
ROOT_ID = "eee19b7ec3c1b174"
CHILD_ID = "b7ad6b7169203331"
START_NS = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z
START = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)


# --- OTLP JSON builders: readable requests for one behaviour at a time ------------------------


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": attributes(value)}}
    raise TypeError(value)


def attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in values.items()]


def otlp_span(
    span_id: str = ROOT_ID,
    parent: str | None = None,
    *,
    trace_id: str = TRACE_ID,
    name: str = "span",
    attrs: dict[str, Any] | None = None,
    events: Sequence[tuple[str, dict[str, Any]]] = (),
    status: tuple[int, str] | None = None,
    end_ns: int | None = START_NS + 5_000_000,
) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(START_NS),
        "attributes": attributes(attrs or {}),
        "events": [
            {"timeUnixNano": str(START_NS), "name": n, "attributes": attributes(a)}
            for n, a in events
        ],
    }
    if end_ns is not None:
        span["endTimeUnixNano"] = str(end_ns)
    if parent is not None:
        span["parentSpanId"] = parent
    if status is not None:
        span["status"] = {"code": status[0], "message": status[1]}
    return span


def otlp_request(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> bytes:
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes(resource or {})},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }
    return json.dumps(request).encode()


def decode_one(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> Trace:
    traces = decode_payload(otlp_request(*spans, resource=resource), "application/json")
    assert len(traces) == 1
    return traces[0]


def only_span(attrs: dict[str, Any], **kwargs: Any) -> Span:
    return decode_one(otlp_span(attrs=attrs, **kwargs)).spans[0]


def native_trace(trace_id: str = TRACE_ID, *span_ids: str) -> Trace:
    return Trace(
        trace_id=trace_id,
        session_id="s-1",
        spans=tuple(
            Span(span_id=sid, name=f"step {sid}", start_time=START + timedelta(seconds=i))
            for i, sid in enumerate(span_ids or (ROOT_ID,))
        ),
    )


def reason_of(payload: bytes, content_type: str | None = "application/json", **kw: Any) -> str:
    with pytest.raises(InvalidPayload) as caught:
        decode_payload(payload, content_type, **kw)
    return caught.value.reason


# --- formats -----------------------------------------------------------------------------------


def test_otlp_json_with_hex_ids_decodes_to_canonical_ids_and_utc_times() -> None:
    trace = decode_one(otlp_span(ROOT_ID), otlp_span(CHILD_ID, ROOT_ID, end_ns=0))
    root, child = trace.spans
    assert trace.trace_id == TRACE_ID
    assert (root.span_id, root.parent_span_id) == (ROOT_ID, None)
    assert (child.span_id, child.parent_span_id) == (CHILD_ID, ROOT_ID)
    assert root.start_time == START and root.start_time.tzinfo is not None
    assert root.end_time == START + timedelta(milliseconds=5)
    assert child.end_time is None


def test_otlp_json_in_snake_case_field_names_is_accepted_too() -> None:
    payload = json.dumps(
        {
            "resource_spans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": TRACE_ID,
                                    "span_id": ROOT_ID,
                                    "name": "root",
                                    "start_time_unix_nano": START_NS,
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    [trace] = decode_payload(payload, None)
    assert (trace.trace_id, trace.spans[0].span_id, trace.spans[0].start_time) == (
        TRACE_ID,
        ROOT_ID,
        START,
    )


def test_otlp_json_ids_sent_as_base64_are_tolerated() -> None:
    span = otlp_span()
    span["traceId"] = base64.b64encode(bytes.fromhex(TRACE_ID)).decode()
    span["spanId"] = base64.b64encode(bytes.fromhex(ROOT_ID)).decode()
    [trace] = decode_payload(otlp_request(span), "application/json")
    assert (trace.trace_id, trace.spans[0].span_id) == (TRACE_ID, ROOT_ID)


def test_one_payload_with_spans_of_two_traces_gives_two_partial_traces_in_order() -> None:
    traces = decode_payload(
        otlp_request(
            otlp_span(ROOT_ID, trace_id=OTHER_TRACE_ID),
            otlp_span(CHILD_ID, "aaaaaaaaaaaaaaaa", trace_id=TRACE_ID),
            otlp_span("cccccccccccccccc", ROOT_ID, trace_id=OTHER_TRACE_ID),
        ),
        "application/json",
    )
    assert [t.trace_id for t in traces] == [OTHER_TRACE_ID, TRACE_ID]
    assert [len(t.spans) for t in traces] == [2, 1]
    # A trace without its root is still returned: assembly completes it later.
    assert traces[1].spans[0].parent_span_id == "aaaaaaaaaaaaaaaa"


def test_concatenated_protobuf_requests_decode_as_one_request() -> None:
    from tools.corpus.otlp import to_otlp_proto

    first, second = native_trace(TRACE_ID), native_trace(OTHER_TRACE_ID)
    # Protobuf merges concatenated messages: repeated fields append.
    payload = to_otlp_proto(first) + to_otlp_proto(second)
    traces = decode_payload(payload, "application/x-protobuf")
    assert [t.trace_id for t in traces] == [TRACE_ID, OTHER_TRACE_ID]


def test_protobuf_without_a_content_type_is_recognised_by_its_first_byte() -> None:
    from tools.corpus.otlp import to_otlp_proto

    payload = to_otlp_proto(native_trace())
    assert [t.trace_id for t in decode_payload(payload, None)] == [TRACE_ID]


def test_content_type_parameters_and_case_do_not_matter() -> None:
    traces = decode_payload(otlp_request(otlp_span()), "Application/JSON; charset=utf-8")
    assert [t.trace_id for t in traces] == [TRACE_ID]


def test_gzip_payloads_are_inflated_before_decoding() -> None:
    payload = gzip.compress(otlp_request(otlp_span()))
    assert [t.trace_id for t in decode_payload(payload, "application/json")] == [TRACE_ID]


def test_a_request_without_spans_decodes_to_no_traces() -> None:
    assert decode_payload(b"", "application/x-protobuf") == []
    assert decode_payload(b'{"resourceSpans": []}', "application/json") == []


def test_spans_of_one_trace_under_two_resources_form_one_trace() -> None:
    payload = json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": attributes({"service.name": "gateway"})},
                    "scopeSpans": [{"spans": [otlp_span(CHILD_ID, ROOT_ID)]}],
                },
                {
                    "resource": {"attributes": attributes({"service.name": "support-agent"})},
                    "scopeSpans": [{"spans": [otlp_span(ROOT_ID)]}],
                },
            ]
        }
    ).encode()
    [trace] = decode_payload(payload, "application/json")
    assert [s.span_id for s in trace.spans] == [CHILD_ID, ROOT_ID]
    # The root span's resource speaks for the trace.
    assert trace.resource == {"service.name": "support-agent"}
    assert trace.agent_name == "support-agent"


def test_a_span_repeated_in_one_payload_is_kept_once_preferring_a_finished_copy() -> None:
    trace = decode_one(otlp_span(ROOT_ID, name="first"), otlp_span(ROOT_ID, name="again"))
    assert [s.name for s in trace.spans] == ["first"]
    trace = decode_one(
        otlp_span(ROOT_ID, name="running", end_ns=0),
        otlp_span(CHILD_ID, ROOT_ID),
        otlp_span(ROOT_ID, name="ended"),
    )
    assert [s.name for s in trace.spans] == ["ended", "span"]


def test_native_trace_json_decodes_to_the_same_trace() -> None:
    trace = Trace(
        trace_id="t-1",
        session_id="s-1",
        outcome="failure",
        spans=(
            Span(
                span_id="root",
                name="invoke_agent",
                kind=SpanKind.AGENT,
                start_time=START,
                end_time=START + timedelta(seconds=2),
                status=SpanStatus.ERROR,
                usage=Usage(input_tokens=3),
                documents=(Document(id="d", score=0.5),),
                attributes={"app.flag": True, "app.list": [1, "x"]},
            ),
        ),
        feedback=(Feedback(source="user", name="thumbs", score=0.0),),
        resource={"service.name": "agent"},
    )
    assert decode_payload(trace.model_dump_json().encode(), "application/json") == [trace]


def test_native_list_and_jsonl_payloads_give_one_trace_per_trace_id() -> None:
    a, b = native_trace(TRACE_ID), native_trace(OTHER_TRACE_ID)
    as_list = json.dumps([a.model_dump(mode="json"), b.model_dump(mode="json")]).encode()
    as_jsonl = f"{a.model_dump_json()}\n\n{b.model_dump_json()}\n".encode()
    assert decode_payload(as_list, None) == [a, b]
    assert decode_payload(as_jsonl, "application/x-ndjson") == [a, b]


def test_native_fragments_of_one_trace_are_merged_by_span_id() -> None:
    first = native_trace(TRACE_ID, ROOT_ID, CHILD_ID)
    second = native_trace(TRACE_ID, CHILD_ID, "cccccccccccccccc").model_copy(
        update={"session_id": None, "agent_name": "agent"}
    )
    payload = f"{first.model_dump_json()}\n{second.model_dump_json()}".encode()
    [merged] = decode_payload(payload, None)
    assert [s.span_id for s in merged.spans] == [ROOT_ID, CHILD_ID, "cccccccccccccccc"]
    assert (merged.session_id, merged.agent_name) == ("s-1", "agent")
    assert merged.spans[1] == first.spans[1]


def test_native_fragments_replace_an_unfinished_span_with_its_finished_copy() -> None:
    running = native_trace(TRACE_ID, ROOT_ID)
    ended_span = running.spans[0].model_copy(update={"end_time": START + timedelta(seconds=3)})
    ended = running.model_copy(update={"spans": (ended_span,)})
    payload = f"{running.model_dump_json()}\n{ended.model_dump_json()}".encode()
    assert decode_payload(payload, None) == [ended]


def test_native_naive_and_offset_times_are_normalised_to_utc() -> None:
    document = native_trace().model_dump(mode="json")
    document["spans"][0]["start_time"] = "2026-01-01T00:00:00"
    document["spans"][0]["end_time"] = "2026-01-01T02:00:01+02:00"
    [trace] = decode_payload(json.dumps(document).encode(), None)
    span = trace.spans[0]
    assert span.start_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert span.start_time.utcoffset() == timedelta(0)
    assert span.end_time == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert span.end_time is not None and span.end_time.utcoffset() == timedelta(0)


def test_otlp_json_requests_may_come_as_jsonl_like_the_collector_file_exporter_writes() -> None:
    one = otlp_request(otlp_span(ROOT_ID, trace_id=TRACE_ID))
    two = otlp_request(otlp_span(ROOT_ID, trace_id=OTHER_TRACE_ID))
    traces = decode_payload(one + b"\n" + two, None)
    assert [t.trace_id for t in traces] == [TRACE_ID, OTHER_TRACE_ID]


def test_native_trace_schema_file_matches_the_model() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "native-trace.schema.json"
    assert json.loads(path.read_text()) == Trace.model_json_schema()


# --- what is refused, and why ------------------------------------------------------------------


def test_payloads_that_can_never_decode_are_refused_with_a_reason() -> None:
    valid = otlp_request(otlp_span())
    bomb = gzip.compress(b" " * 200_000)
    cases: dict[str, tuple[bytes, str | None, dict[str, Any]]] = {
        "not_utf8": (b'{"trace_id": "\xff"}', "application/json", {}),
        "invalid_json": (b'{"trace_id": ', "application/json", {}),
        "empty json": (b"  \n", None, {}),
        "nan": (b'{"trace_id": "t", "x": NaN}', None, {}),
        "huge number": (b'{"trace_id": "t", "x": 1e999}', None, {}),
        "huge integer": (b'{"trace_id": "t", "x": ' + b"9" * 5000 + b"}", None, {}),
        "too_deep": (b"[" * 100 + b"]" * 100, None, {}),
        "too_large": (valid, "application/json", {"max_bytes": len(valid) - 1}),
        "zip bomb": (bomb, "application/json", {"max_bytes": 100_000}),
        "bad_gzip": (gzip.compress(valid)[:-12], "application/json", {}),
        "gzip trailing garbage": (gzip.compress(valid) + b"junk", "application/json", {}),
        "bad_protobuf": (b"\x0a\xff\xff\xff", "application/x-protobuf", {}),
        "top-level number": (b"42", None, {}),
        "top-level list of strings": (b'["a"]', None, {}),
        "native wrong types": (b'{"trace_id": "t", "spans": "none"}', None, {}),
        "native missing trace_id": (b'{"spans": []}', None, {}),
        "otlp wrong types": (b'{"resourceSpans": [{"scopeSpans": 3}]}', None, {}),
    }
    reasons = {
        case: reason_of(payload, content_type, **kw)
        for case, (payload, content_type, kw) in cases.items()
    }
    assert reasons == {
        "not_utf8": "not_utf8",
        "invalid_json": "invalid_json",
        "empty json": "invalid_json",
        "nan": "invalid_json",
        "huge number": "invalid_json",
        "huge integer": "invalid_json",
        "too_deep": "too_deep",
        "too_large": "too_large",
        "zip bomb": "too_large",
        "bad_gzip": "bad_gzip",
        "gzip trailing garbage": "bad_gzip",
        "bad_protobuf": "bad_protobuf",
        "top-level number": "schema",
        "top-level list of strings": "schema",
        "native wrong types": "schema",
        "native missing trace_id": "missing_trace_id",
        "otlp wrong types": "schema",
    }


def test_depth_is_checked_on_brackets_outside_strings_only() -> None:
    inside_a_string = json.dumps(
        {"trace_id": "t", "spans": [], "note": "[" * 500}
    ).encode()  # nested brackets in a string are just text
    assert reason_of(inside_a_string, None) == "schema"  # spans must not be empty, not too_deep
    assert reason_of(b'[[[[["', None, max_depth=3) == "too_deep"


def test_otlp_spans_without_usable_ids_are_refused() -> None:
    assert reason_of(otlp_request(otlp_span(trace_id=""))) == "missing_trace_id"
    assert reason_of(otlp_request(otlp_span(trace_id="00" * 16))) == "missing_trace_id"
    assert reason_of(otlp_request(otlp_span(trace_id="abcd"))) == "invalid_trace_id"
    assert reason_of(otlp_request(otlp_span(span_id=""))) == "missing_span_id"
    assert reason_of(otlp_request(otlp_span(span_id="abcd"))) == "invalid_span_id"
    assert reason_of(otlp_request(otlp_span(parent="abcd"))) == "invalid_span_id"


def test_attribute_values_nested_beyond_the_limit_are_too_deep() -> None:
    value: Any = "leaf"
    for _ in range(10):
        value = [value]
    payload = otlp_request(otlp_span(attrs={"deep": value}))
    assert reason_of(payload, max_depth=5) == "too_deep"
    assert (
        decode_payload(payload, "application/json", max_depth=64)[0].spans[0].attributes["deep"]
        == value
    )


def test_refusal_messages_never_quote_the_payload() -> None:
    secret = "sk-live-4242424242424242"
    native = json.dumps({"trace_id": "t", "spans": [{"span_id": secret}]}).encode()
    span = otlp_span()
    span["startTimeUnixNano"] = secret
    otlp = otlp_request(span)
    for payload, reason in ((native, "schema"), (otlp, "schema")):
        with pytest.raises(InvalidPayload) as caught:
            decode_payload(payload, None)
        assert caught.value.reason == reason
        assert secret not in str(caught.value)
    with pytest.raises(InvalidPayload, match="startTimeUnixNano"):
        decode_payload(otlp, None)


# --- span normalisation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "kind"),
    [
        ({"promote.span.kind": "approval", "gen_ai.operation.name": "chat"}, SpanKind.APPROVAL),
        ({"promote.span.kind": "GUARDRAIL"}, SpanKind.GUARDRAIL),
        ({"promote.span.kind": "bogus", "gen_ai.operation.name": "chat"}, SpanKind.LLM),
        ({"gen_ai.operation.name": "chat"}, SpanKind.LLM),
        ({"gen_ai.operation.name": "text_completion"}, SpanKind.LLM),
        ({"gen_ai.operation.name": "generate_content"}, SpanKind.LLM),
        ({"gen_ai.operation.name": "embeddings"}, SpanKind.LLM),
        ({"gen_ai.operation.name": "execute_tool"}, SpanKind.TOOL),
        ({"gen_ai.operation.name": "invoke_agent"}, SpanKind.AGENT),
        ({"gen_ai.operation.name": "create_agent"}, SpanKind.AGENT),
        ({"gen_ai.operation.name": "retrieval"}, SpanKind.RETRIEVAL),
        (
            {"gen_ai.operation.name": "invoke_agent", "openinference.span.kind": "LLM"},
            SpanKind.AGENT,
        ),
        ({"gen_ai.tool.name": "lookup"}, SpanKind.TOOL),
        ({"gen_ai.system": "openai"}, SpanKind.LLM),
        ({"gen_ai.prompt.0.content": "hi"}, SpanKind.LLM),
        ({"openinference.span.kind": "RETRIEVER"}, SpanKind.RETRIEVAL),
        ({"openinference.span.kind": "RERANKER"}, SpanKind.RETRIEVAL),
        ({"openinference.span.kind": "EMBEDDING"}, SpanKind.LLM),
        ({"openinference.span.kind": "GUARDRAIL"}, SpanKind.GUARDRAIL),
        ({"openinference.span.kind": "EVALUATOR"}, SpanKind.EVALUATOR),
        ({"openinference.span.kind": "CHAIN"}, SpanKind.OTHER),
        ({"tool.name": "lookup"}, SpanKind.TOOL),
        ({"http.method": "GET"}, SpanKind.OTHER),
        ({"promote.span.kind": 3}, SpanKind.OTHER),
    ],
)
def test_span_kind_follows_the_documented_precedence(attrs: dict[str, Any], kind: SpanKind) -> None:
    assert span_kind_of(attrs) is kind
    assert only_span(attrs).kind is kind


def test_otlp_status_code_two_is_error_and_one_is_ok() -> None:
    assert only_span({}, status=(2, "boom")).status is SpanStatus.ERROR
    assert only_span({}, status=(1, "")).status is SpanStatus.OK
    assert only_span({}).status is SpanStatus.UNSET


def test_error_type_prefers_error_type_attribute_over_the_exception_event() -> None:
    exception = ("exception", {"exception.type": "KeyError", "exception.message": "'sku'"})
    span = only_span({"error.type": "timeout"}, events=[exception], status=(2, "KeyError: 'sku'"))
    assert (span.error_type, span.error_message) == ("timeout", "'sku'")


def test_error_fields_fall_back_to_the_exception_event_then_the_status_message() -> None:
    first = ("exception", {"exception.type": "ValueError", "exception.message": "first"})
    last = ("exception", {"exception.type": "TimeoutError", "exception.message": "last"})
    span = only_span({}, events=[first, last], status=(2, "status text"))
    assert (span.error_type, span.error_message) == ("TimeoutError", "last")
    span = only_span({}, status=(2, "upstream 503"))
    assert (span.error_type, span.error_message) == (None, "upstream 503")


def test_gen_ai_messages_take_the_text_parts_after_the_system_instructions() -> None:
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "weather", "arguments": {}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "result": "rain"}]},
        {"role": "user", "parts": [{"type": "text", "content": "And tomorrow?"}]},
    ]
    instructions = [{"type": "text", "content": "You are a weather bot."}]
    span = only_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps(messages),
            "gen_ai.system_instructions": json.dumps(instructions),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}]}]
            ),
        }
    )
    assert span.input == "You are a weather bot.\nWeather in Paris?\nAnd tomorrow?"
    assert span.output == "Sunny."


def test_gen_ai_messages_recorded_as_structured_values_read_like_json_strings() -> None:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "hello"}]}]
    assert only_span({"gen_ai.input.messages": messages}).input == "hello"


def test_older_gen_ai_prompt_and_completion_are_read_in_all_their_shapes() -> None:
    as_json = only_span(
        {
            "gen_ai.prompt": json.dumps([{"role": "user", "content": "q?"}]),
            "gen_ai.completion": json.dumps([{"role": "assistant", "content": "a."}]),
        }
    )
    assert (as_json.input, as_json.output) == ("q?", "a.")
    plain = only_span({"gen_ai.prompt": "just text", "gen_ai.completion": "42"})
    assert (plain.input, plain.output) == ("just text", "42")
    flattened = only_span(
        {
            "gen_ai.prompt.1.content": "second",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "first",
            "gen_ai.completion.0.content": "done",
        }
    )
    assert (flattened.input, flattened.output) == ("first\nsecond", "done")
    as_events = only_span(
        {"gen_ai.system": "openai"},
        events=[
            ("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps([{"content": "evt q"}])}),
            ("gen_ai.content.completion", {"gen_ai.completion": "evt a"}),
        ],
    )
    assert (as_events.input, as_events.output) == ("evt q", "evt a")


def test_openinference_flattened_messages_are_read_in_index_order() -> None:
    span = only_span(
        {
            "openinference.span.kind": "LLM",
            "llm.input_messages.10.message.content": "eleventh",
            "llm.input_messages.2.message.content": "third",
            "llm.input_messages.0.message.contents.1.message_content.text": "b",
            "llm.input_messages.0.message.contents.0.message_content.text": "a",
            "llm.output_messages.0.message.content": "out",
            "input.value": '{"raw": "request"}',
        }
    )
    assert span.input == "a\nb\nthird\neleventh"
    assert span.output == "out"


def test_input_keys_follow_the_precedence_new_gen_ai_old_gen_ai_openinference_generic() -> None:
    new = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "new"}]}])
    layers = {
        "gen_ai.input.messages": new,
        "gen_ai.prompt": "old",
        "llm.input_messages.0.message.content": "openinference",
        "input.value": "generic",
    }
    expected = ["new", "old", "openinference", "generic"]
    keys = list(layers)
    for i, want in enumerate(expected):
        assert only_span({k: layers[k] for k in keys[i:]}).input == want


def test_gen_ai_tool_spans_read_the_dedicated_tool_keys() -> None:
    span = only_span(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "issue_refund",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": '{"order": "A1"}',
            "gen_ai.tool.call.result": '{"ok": true}',
        }
    )
    assert (span.kind, span.tool_name) == (SpanKind.TOOL, "issue_refund")
    assert (span.tool_arguments, span.tool_result) == ('{"order": "A1"}', '{"ok": true}')
    assert (span.input, span.output) == (None, None)


def test_openinference_tool_spans_carry_arguments_and_result_in_input_and_output_value() -> None:
    span = only_span(
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "issue_refund",
            "tool.parameters": '{"type": "object"}',
            "input.value": '{"order": "A1"}',
            "output.value": '{"ok": true}',
        }
    )
    assert (span.kind, span.tool_name) == (SpanKind.TOOL, "issue_refund")
    assert (span.tool_arguments, span.tool_result) == ('{"order": "A1"}', '{"ok": true}')
    assert (span.input, span.output) == (None, None)


def test_structured_tool_arguments_become_compact_json_text() -> None:
    span = only_span({"gen_ai.tool.name": "t", "gen_ai.tool.call.arguments": {"a": 1, "b": [2]}})
    assert span.tool_arguments == '{"a":1,"b":[2]}'


def test_model_prefers_the_requested_model() -> None:
    assert only_span({"gen_ai.response.model": "gpt-4o-2024", "llm.model_name": "x"}).model == (
        "gpt-4o-2024"
    )
    assert only_span({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "y"}).model == (
        "gpt-4o"
    )


def test_retrieved_documents_come_from_gen_ai_before_openinference() -> None:
    gen_ai = json.dumps([{"id": "kb-1", "content": "Refunds take 5 days", "score": 0.9}, {}])
    openinference = {
        "retrieval.documents.10.document.id": "k",
        "retrieval.documents.9.document.id": "j",
        "retrieval.documents.9.document.score": 0.25,
        "retrieval.documents.9.document.content": "text j",
    }
    assert only_span({"gen_ai.retrieval.documents": gen_ai, **openinference}).documents == (
        Document(id="kb-1", content="Refunds take 5 days", score=0.9),
        Document(),
    )
    assert only_span(openinference).documents == (
        Document(id="j", content="text j", score=0.25),
        Document(id="k"),
    )


def test_usage_tokens_and_cost_follow_the_precedence() -> None:
    span = only_span(
        {
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.prompt_tokens": 20,
            "llm.token_count.prompt": 30,
            "gen_ai.usage.completion_tokens": 21,
            "llm.token_count.completion": 31,
            "llm.cost.total": 0.5,
        }
    )
    assert span.usage == Usage(input_tokens=10, output_tokens=21, cost_usd=0.5)
    assert only_span({"llm.token_count.prompt": "7"}).usage == Usage(input_tokens=7)
    assert only_span({"gen_ai.usage.cost": 0.25, "llm.cost.total": 1.0}).usage == Usage(
        cost_usd=0.25
    )
    assert only_span({}).usage is None


def test_promote_attributes_set_approval_escalation_retry_and_guardrail() -> None:
    span = only_span(
        {
            "promote.approval": "Denied",
            "promote.escalated": "true",
            "promote.retry.attempt": 2,
            "promote.guardrail.triggered": True,
        }
    )
    assert (span.approval, span.escalated, span.retry_attempt, span.guardrail_triggered) == (
        "denied",
        True,
        2,
        True,
    )


def test_attributes_of_the_wrong_type_are_ignored_but_kept_raw() -> None:
    attrs = {
        "promote.approval": "maybe",
        "promote.escalated": "yes",
        "promote.retry.attempt": "second",
        "gen_ai.usage.input_tokens": "many",
        "llm.token_count.prompt": 5,
    }
    span = only_span(attrs)
    assert (span.approval, span.escalated, span.retry_attempt) == (None, None, None)
    assert span.usage == Usage(input_tokens=5)
    assert span.attributes == attrs


def test_all_raw_attributes_are_kept_as_plain_json_values() -> None:
    span = only_span(
        {
            "s": "text",
            "i": 7,
            "f": 1.5,
            "b": False,
            "list": ["a", 1, True],
            "map": {"k": "v", "n": [1]},
            "empty": [],
        }
    )
    assert span.attributes == {
        "s": "text",
        "i": 7,
        "f": 1.5,
        "b": False,
        "list": ["a", 1, True],
        "map": {"k": "v", "n": [1]},
        "empty": [],
    }
    raw = otlp_span()
    raw["attributes"] = [
        {"key": "bytes", "value": {"bytesValue": base64.b64encode(b"\x00\x01").decode()}},
        {"key": "nan", "value": {"doubleValue": "NaN"}},
        {"key": "unset", "value": {}},
    ]
    assert decode_one(raw).spans[0].attributes == {"bytes": "AAE=", "nan": "nan", "unset": None}


# --- trace-level fields ------------------------------------------------------------------------


def test_session_and_user_follow_the_precedence_across_spans_and_resource() -> None:
    trace = decode_one(
        otlp_span(ROOT_ID, attrs={"session.id": "oi-session", "user.id": "u-oi"}),
        otlp_span(CHILD_ID, ROOT_ID, attrs={"gen_ai.conversation.id": "conv-1"}),
        resource={"promote.user.id": "u-promote", "enduser.id": "u-generic"},
    )
    assert (trace.session_id, trace.user_id) == ("conv-1", "u-promote")


def test_root_span_speaks_for_the_trace_before_sub_agents() -> None:
    trace = decode_one(
        otlp_span(CHILD_ID, ROOT_ID, attrs={"gen_ai.agent.name": "researcher"}),
        otlp_span(ROOT_ID, attrs={"gen_ai.agent.name": "orchestrator"}),
    )
    assert trace.agent_name == "orchestrator"


def test_agent_name_and_version_fall_back_to_the_service_resource() -> None:
    trace = decode_one(otlp_span(), resource={"service.name": "support", "service.version": "1.2"})
    assert (trace.agent_name, trace.agent_version) == ("support", "1.2")
    unnamed = decode_one(otlp_span(), resource={"service.name": "unknown_service:python"})
    assert unnamed.agent_name is None
    versioned = decode_one(
        otlp_span(attrs={"gen_ai.agent.version": "2.0"}),
        resource={"service.version": "1.2", "promote.agent.version": "3.0"},
    )
    assert versioned.agent_version == "3.0"


def test_outcome_comes_from_promote_outcome_on_the_root_or_resource() -> None:
    assert decode_one(otlp_span(attrs={"promote.outcome": "failure"})).outcome == "failure"
    assert decode_one(otlp_span(), resource={"promote.outcome": "success"}).outcome == "success"
    assert decode_one(otlp_span()).outcome is None


def test_resource_attributes_are_kept_on_the_trace() -> None:
    resource = {"service.name": "agent", "deployment.environment.name": "production"}
    assert decode_one(otlp_span(), resource=resource).resource == resource


# --- feedback ----------------------------------------------------------------------------------


def test_evaluation_annotation_and_promote_feedback_events_all_become_feedback() -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "faithfulness",
                "gen_ai.evaluation.score.value": 0.2,
                "gen_ai.evaluation.score.label": "fail",
                "gen_ai.evaluation.explanation": "cites a missing policy",
            },
        ),
        (
            "annotation",
            {
                "annotation.name": "correctness",
                "annotation.annotator_kind": "HUMAN",
                "annotation.label": "incorrect",
                "annotation.score": 0,
            },
        ),
        (
            "promote.feedback",
            {
                "promote.feedback.source": "user",
                "promote.feedback.name": "thumbs",
                "promote.feedback.score": 0.0,
                "promote.feedback.label": "thumbs_down",
                "promote.feedback.explanation": "it refunded the wrong order",
            },
        ),
        ("gen_ai.evaluation.result", {}),
        ("annotation", {"annotation.annotator_kind": "LLM"}),
        ("promote.feedback", {}),
        ("log", {"message": "not feedback"}),
    ]
    trace = decode_one(otlp_span(events=events))
    assert trace.feedback == (
        Feedback(
            source="evaluator",
            name="faithfulness",
            score=0.2,
            label="fail",
            explanation="cites a missing policy",
        ),
        Feedback(source="human", name="correctness", score=0.0, label="incorrect"),
        Feedback(
            source="user",
            name="thumbs",
            score=0.0,
            label="thumbs_down",
            explanation="it refunded the wrong order",
        ),
        Feedback(source="evaluator", name="evaluation"),
        Feedback(source="evaluator", name="annotation"),
        Feedback(source="unknown", name="feedback"),
    )


# --- what the real OpenTelemetry SDK sends -----------------------------------------------------


def test_spans_from_the_opentelemetry_sdk_exporter_decode_to_canonical_spans() -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "support-agent", "service.version": "4.1"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span(
            "invoke_agent support",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "c-9"},
        ),
        tracer.start_as_current_span(
            "execute_tool lookup_order",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"},
        ) as tool,
    ):
        tool.record_exception(KeyError("order"))
        tool.set_status(Status(StatusCode.ERROR, "KeyError: 'order'"))
    provider.shutdown()

    payload = encode_spans(exporter.get_finished_spans()).SerializeToString()
    [trace] = decode_payload(payload, "application/x-protobuf")
    tool_span, agent_span = trace.spans
    assert (trace.session_id, trace.agent_name, trace.agent_version) == (
        "c-9",
        "support-agent",
        "4.1",
    )
    assert (agent_span.kind, tool_span.kind) == (SpanKind.AGENT, SpanKind.TOOL)
    assert tool_span.parent_span_id == agent_span.span_id
    assert tool_span.status is SpanStatus.ERROR
    assert (tool_span.error_type, tool_span.error_message) == ("KeyError", "'order'")
    assert agent_span.end_time is not None and agent_span.end_time >= agent_span.start_time
