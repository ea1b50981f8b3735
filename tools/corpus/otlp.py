"""Canonical Traces as OTLP, the inverse of ``services.ingest.decode``.

The demo corpus uses it to send realistic OpenTelemetry payloads through the pipeline, and the
tests use it to prove the decoder right. Three attribute conventions are emitted:

* ``genai``: current OTel GenAI names (``gen_ai.input.messages`` with parts,
  ``gen_ai.usage.input_tokens``, ``gen_ai.conversation.id``, ...);
* ``genai_old``: the older GenAI names (flattened ``gen_ai.prompt.N.content``,
  ``gen_ai.usage.prompt_tokens``, ...);
* ``openinference``: OpenInference (``openinference.span.kind``, ``llm.input_messages.N...``,
  ``retrieval.documents.N.document.*``, ``input.value``/``output.value``, exception events).

What no convention covers (approval, escalation, retries, guardrail hits, outcome, and kinds a
convention lacks) goes in the project's ``promote.*`` namespace (docs/attributes.md).

Round trip: ``decode_payload(to_otlp_proto(t, c)) == [with_wire_attributes(t, c)]`` for every
representable trace, i.e. one whose

* ids are OTLP ids (32 and 16 lowercase hex digits, not all zero) and times are at or after
  1970 with microsecond precision;
* identifier-like strings (session, user, agent name and version, outcome, model, tool name,
  error type and message, document ids, feedback names and labels) are non-empty: the decoder
  reads an empty identifier as absent;
* tool spans carry ``tool_arguments``/``tool_result`` whenever they carry ``input``/``output``
  (OpenInference records a call's arguments in ``input.value``);
* ``usage`` and each document have at least one field set, and numbers are finite;
* raw ``attributes`` and ``resource`` keys do not contradict the normalised fields (for example a
  raw ``promote.outcome`` on a span that disagrees with ``Trace.outcome``).

``with_wire_attributes`` gives the trace as the decoder sees it: the same normalised fields, with
``Span.attributes``/``Trace.resource`` holding exactly what went on the wire.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from services.ingest.decode import (
    ANNOTATION_EVENT,
    EVALUATION_EVENT,
    EXCEPTION_EVENT,
    PROMOTE_FEEDBACK_EVENT,
    span_kind_of,
)
from shared.events import Feedback, Span, SpanKind, SpanStatus, Trace

Convention = Literal["genai", "genai_old", "openinference"]
CONVENTIONS: tuple[Convention, ...] = ("genai", "genai_old", "openinference")

SCOPE_NAME = "trace-promoter.corpus"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_GENAI_OPERATIONS: Mapping[SpanKind, str] = {
    SpanKind.LLM: "chat",
    SpanKind.TOOL: "execute_tool",
    SpanKind.AGENT: "invoke_agent",
    SpanKind.RETRIEVAL: "retrieval",
}
_OPENINFERENCE_KINDS: Mapping[SpanKind, str] = {
    SpanKind.LLM: "LLM",
    SpanKind.TOOL: "TOOL",
    SpanKind.RETRIEVAL: "RETRIEVER",
    SpanKind.AGENT: "AGENT",
    SpanKind.GUARDRAIL: "GUARDRAIL",
    SpanKind.EVALUATOR: "EVALUATOR",
    # OpenInference has no approval kind: CHAIN here, promote.span.kind says the rest.
    SpanKind.APPROVAL: "CHAIN",
    SpanKind.OTHER: "CHAIN",
}
_ANNOTATOR_KINDS: Mapping[str, str] = {"evaluator": "LLM", "human": "HUMAN", "code": "CODE"}
_STATUS_CODES: Mapping[SpanStatus, Any] = {
    SpanStatus.OK: Status.STATUS_CODE_OK,
    SpanStatus.ERROR: Status.STATUS_CODE_ERROR,
    SpanStatus.UNSET: Status.STATUS_CODE_UNSET,
}


def to_otlp_proto(trace: Trace, convention: Convention = "genai") -> bytes:
    """The trace as one serialized ``ExportTraceServiceRequest``."""
    return _request(trace, trace.spans, convention).SerializeToString()


def to_otlp_json(trace: Trace, convention: Convention = "genai") -> dict[str, Any]:
    """The trace as an ``ExportTraceServiceRequest`` in the OTLP JSON encoding.

    Hex trace/span ids, lowerCamelCase keys, integer enums, int64 values as decimal strings.
    """
    document = json_format.MessageToDict(
        _request(trace, trace.spans, convention), use_integers_for_enums=True
    )
    _base64_ids_to_hex(document)
    return document


def split_by_span(trace: Trace, parts: int, convention: Convention = "genai") -> list[bytes]:
    """The trace's spans over ``parts`` serialized requests, in order, as they may arrive.

    Each request carries the resource; trace-level attributes ride on the spans that carry them
    (session and user on every span, agent name and outcome on the root, feedback as events of
    the root), so a part without the root decodes to a partial trace without those.
    """
    count = len(trace.spans)
    if not 1 <= parts <= count:
        raise ValueError(f"parts must be between 1 and the span count ({count}), got {parts}")
    chunks = [trace.spans[i * count // parts : (i + 1) * count // parts] for i in range(parts)]
    return [_request(trace, chunk, convention).SerializeToString() for chunk in chunks]


def with_wire_attributes(trace: Trace, convention: Convention = "genai") -> Trace:
    """The trace with ``Span.attributes`` and ``resource`` exactly as they go on the wire."""
    root = _root(trace)
    spans = tuple(
        span.model_copy(
            update={"attributes": _span_attributes(trace, span, convention, span is root)}
        )
        for span in trace.spans
    )
    return trace.model_copy(update={"spans": spans, "resource": _resource(trace)})


# --- request assembly --------------------------------------------------------------------------


def _root(trace: Trace) -> Span:
    return next((s for s in trace.spans if s.parent_span_id is None), trace.spans[0])


def _resource(trace: Trace) -> dict[str, Any]:
    resource = dict(trace.resource)
    if trace.agent_version is not None:
        resource["service.version"] = trace.agent_version
    return resource


def _request(trace: Trace, spans: Iterable[Span], convention: Convention) -> Any:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; expected one of {CONVENTIONS}")
    trace_id = _id_bytes(trace.trace_id, 16, "trace id")
    root = _root(trace)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _set_attributes(resource_spans.resource.attributes, _resource(trace))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SCOPE_NAME
    for span in spans:
        is_root = span is root
        out = scope_spans.spans.add()
        out.trace_id = trace_id
        out.span_id = _id_bytes(span.span_id, 8, "span id")
        if span.parent_span_id is not None:
            out.parent_span_id = _id_bytes(span.parent_span_id, 8, "parent span id")
        out.name = span.name
        # GenAI conventions: inference spans are CLIENT, agent and tool work INTERNAL.
        is_llm = span.kind is SpanKind.LLM
        out.kind = OtlpSpan.SPAN_KIND_CLIENT if is_llm else OtlpSpan.SPAN_KIND_INTERNAL
        out.start_time_unix_nano = _nanos(span.start_time)
        if span.end_time is not None:
            out.end_time_unix_nano = _nanos(span.end_time)
        out.status.code = _STATUS_CODES[span.status]
        if span.error_message is not None:
            out.status.message = span.error_message
        _set_attributes(out.attributes, _span_attributes(trace, span, convention, is_root))
        event_time = out.end_time_unix_nano or out.start_time_unix_nano
        if convention == "openinference" and (span.error_type or span.error_message):
            _add_event(
                out,
                EXCEPTION_EVENT,
                event_time,
                {"exception.type": span.error_type, "exception.message": span.error_message},
            )
        if is_root:
            for feedback in trace.feedback:
                name, attributes = _feedback_event(feedback, convention)
                _add_event(out, name, event_time, attributes)
    return request


def _id_bytes(value: str, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != size or not any(raw) or value != raw.hex():
        raise ValueError(f"{what} {value!r} is not {size * 2} lowercase hex digits (not all zero)")
    return raw


def _nanos(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    if micros < 0:
        raise ValueError(f"{moment.isoformat()} is before 1970: OTLP times are unsigned")
    return micros * 1000


def _add_event(out: Any, name: str, time_unix_nano: int, attributes: Mapping[str, Any]) -> None:
    event = out.events.add()
    event.name = name
    event.time_unix_nano = time_unix_nano
    _set_attributes(event.attributes, {k: v for k, v in attributes.items() if v is not None})


def _feedback_event(feedback: Feedback, convention: Convention) -> tuple[str, dict[str, Any]]:
    if feedback.source == "evaluator" and convention != "openinference":
        return EVALUATION_EVENT, {
            "gen_ai.evaluation.name": feedback.name,
            "gen_ai.evaluation.score.value": feedback.score,
            "gen_ai.evaluation.score.label": feedback.label,
            "gen_ai.evaluation.explanation": feedback.explanation,
        }
    if feedback.source in _ANNOTATOR_KINDS and convention == "openinference":
        return ANNOTATION_EVENT, {
            "annotation.name": feedback.name,
            "annotation.annotator_kind": _ANNOTATOR_KINDS[feedback.source],
            "annotation.score": feedback.score,
            "annotation.label": feedback.label,
            "annotation.explanation": feedback.explanation,
        }
    return PROMOTE_FEEDBACK_EVENT, {
        "promote.feedback.source": feedback.source,
        "promote.feedback.name": feedback.name,
        "promote.feedback.score": feedback.score,
        "promote.feedback.label": feedback.label,
        "promote.feedback.explanation": feedback.explanation,
    }


def _set_attributes(out: Any, attributes: Mapping[str, Any]) -> None:
    for key, value in attributes.items():
        kv = out.add()
        kv.key = key
        _set_value(kv.value, value)


def _set_value(out: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer attribute {value} does not fit OTLP's int64")
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, list | tuple):
        # SetInParent: an empty list is still a list, not an absent value.
        out.array_value.SetInParent()
        for item in value:
            _set_value(out.array_value.values.add(), item)
    elif isinstance(value, dict):
        out.kvlist_value.SetInParent()
        for key, item in value.items():
            kv = out.kvlist_value.values.add()
            kv.key = str(key)
            _set_value(kv.value, item)
    else:
        raise ValueError(f"attribute value of type {type(value).__name__} has no OTLP form")


def _base64_ids_to_hex(document: dict[str, Any]) -> None:
    def convert(node: dict[str, Any]) -> None:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in node:
                node[key] = base64.b64decode(node[key]).hex()

    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                convert(span)
                for link in span.get("links", []):
                    convert(link)


# --- attributes per convention -----------------------------------------------------------------


def _span_attributes(
    trace: Trace, span: Span, convention: Convention, is_root: bool
) -> dict[str, Any]:
    emitted: dict[str, Any] = {}
    if convention == "openinference":
        _openinference(emitted, span)
    else:
        _genai(emitted, span, old=convention == "genai_old")

    # No convention covers these: the project's own namespace.
    _put(emitted, "promote.approval", span.approval)
    _put(emitted, "promote.escalated", span.escalated)
    _put(emitted, "promote.retry.attempt", span.retry_attempt)
    _put(emitted, "promote.guardrail.triggered", span.guardrail_triggered)

    # Session and user ride on every span so that any part of a split trace knows them.
    session_key = "gen_ai.conversation.id" if convention == "genai" else "session.id"
    _put(emitted, session_key, trace.session_id)
    _put(emitted, "user.id", trace.user_id)
    if is_root:
        agent_key = "agent.name" if convention == "openinference" else "gen_ai.agent.name"
        _put(emitted, agent_key, trace.agent_name)
        _put(emitted, "promote.outcome", trace.outcome)

    attributes = {**span.attributes, **emitted}
    # Whatever a convention cannot say (approval, other-with-a-model...) promote.span.kind says.
    if span_kind_of(attributes) is not span.kind:
        attributes["promote.span.kind"] = span.kind.value
    return attributes


def _put(attributes: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        attributes[key] = value


def _genai(a: dict[str, Any], span: Span, *, old: bool) -> None:
    kind = span.kind
    _put(a, "gen_ai.operation.name", _GENAI_OPERATIONS.get(kind))
    _put(a, "gen_ai.request.model", span.model)
    _put(a, "gen_ai.tool.name", span.tool_name)
    _put(a, "gen_ai.tool.call.arguments", span.tool_arguments)
    _put(a, "gen_ai.tool.call.result", span.tool_result)
    if kind in (SpanKind.LLM, SpanKind.AGENT):
        messages = _old_messages if old else _new_messages
        messages(a, "input", span.input, "user")
        messages(a, "output", span.output, "assistant")
    elif kind is SpanKind.RETRIEVAL:
        _put(a, "gen_ai.retrieval.query.text", span.input)
        _put(a, "output.value", span.output)
    else:
        _put(a, "input.value", span.input)
        _put(a, "output.value", span.output)
    if span.documents:
        a["gen_ai.retrieval.documents"] = json.dumps(
            [
                {k: v for k, v in document.model_dump().items() if v is not None}
                for document in span.documents
            ]
        )
    if span.usage is not None:
        input_key, output_key = (
            ("gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens")
            if old
            else ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
        )
        _put(a, input_key, span.usage.input_tokens)
        _put(a, output_key, span.usage.output_tokens)
        # Not in the GenAI conventions, but the de-facto key (Langfuse and others read it).
        _put(a, "gen_ai.usage.cost", span.usage.cost_usd)
    _put(a, "error.type", span.error_type)


def _new_messages(a: dict[str, Any], which: str, text: str | None, role: str) -> None:
    if text is not None:
        message = {"role": role, "parts": [{"type": "text", "content": text}]}
        a[f"gen_ai.{which}.messages"] = json.dumps([message])


def _old_messages(a: dict[str, Any], which: str, text: str | None, role: str) -> None:
    if text is not None:
        key = "gen_ai.prompt.0" if which == "input" else "gen_ai.completion.0"
        a[f"{key}.role"] = role
        a[f"{key}.content"] = text


def _openinference(a: dict[str, Any], span: Span) -> None:
    kind = span.kind
    a["openinference.span.kind"] = _OPENINFERENCE_KINDS[kind]
    _put(a, "llm.model_name", span.model)
    _put(a, "tool.name", span.tool_name)
    if kind is SpanKind.LLM:
        for which, text, role in (
            ("input", span.input, "user"),
            ("output", span.output, "assistant"),
        ):
            if text is not None:
                a[f"llm.{which}_messages.0.message.role"] = role
                a[f"llm.{which}_messages.0.message.content"] = text
        _put(a, "tool_call.function.arguments", span.tool_arguments)
        _put(a, "gen_ai.tool.call.result", span.tool_result)
    elif kind is SpanKind.TOOL:
        # A TOOL span's input.value is its arguments; only a distinct input needs the
        # dedicated key beside it. OpenInference has no key for a result beside output.value.
        _tool_side(
            a, "input.value", span.input, "tool_call.function.arguments", span.tool_arguments
        )
        _tool_side(a, "output.value", span.output, "gen_ai.tool.call.result", span.tool_result)
    else:
        _put(a, "input.value", span.input)
        _put(a, "output.value", span.output)
        _put(a, "tool_call.function.arguments", span.tool_arguments)
        _put(a, "gen_ai.tool.call.result", span.tool_result)
    for index, document in enumerate(span.documents):
        for field, value in document.model_dump().items():
            _put(a, f"retrieval.documents.{index}.document.{field}", value)
    if span.usage is not None:
        _put(a, "llm.token_count.prompt", span.usage.input_tokens)
        _put(a, "llm.token_count.completion", span.usage.output_tokens)
        _put(a, "llm.cost.total", span.usage.cost_usd)


def _tool_side(
    a: dict[str, Any], generic_key: str, text: str | None, dedicated_key: str, call: str | None
) -> None:
    if text is None:
        _put(a, generic_key, call)
    else:
        a[generic_key] = text
        _put(a, dedicated_key, call)
