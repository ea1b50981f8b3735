"""OTLP requests (protobuf, or JSON parsed into the same message) to canonical traces."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError

from services.ingest.attribute_values import (
    as_approval,
    as_bool,
    as_id,
    as_int,
    as_text,
    pick,
)
from services.ingest.conventions import (
    EXCEPTION_EVENT,
    TRACE_FIELDS,
    SpanEvent,
    documents_of,
    feedback_of,
    input_of,
    output_of,
    span_kind_of,
    usage_of,
)
from services.ingest.fragments import supersedes
from services.ingest.invalid_payload import InvalidPayload, describe_validation
from shared.events import Feedback, Span, SpanKind, SpanStatus, Trace

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
# OTLP status codes (opentelemetry.proto.trace.v1.Status.StatusCode).
_STATUS_OK = 1
_STATUS_ERROR = 2

_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})*")
_PARSE_ERROR_FIELD_RE = re.compile(r"Failed to parse (\w+) field")


def decode_otlp_proto(data: bytes, max_depth: int) -> list[Trace]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, ValueError, TypeError, RuntimeError):
        raise InvalidPayload(
            "bad_protobuf", "not an OTLP ExportTraceServiceRequest (corrupt wire format)"
        ) from None
    return _decode_otlp_request(request, max_depth)


def decode_otlp_json(document: dict[str, Any], max_depth: int) -> list[Trace]:
    _hex_ids_to_base64(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(
            document, request, ignore_unknown_fields=True, max_recursion_depth=max_depth + 8
        )
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
        message = f"not a valid OTLP JSON request ({_field_path(exc)})"
        raise InvalidPayload("schema", message) from None
    return _decode_otlp_request(request, max_depth)


def _field_path(exc: Exception) -> str:
    # json_format's messages quote the offending value (it may be PII): keep only the field path.
    fields = _PARSE_ERROR_FIELD_RE.findall(str(exc))
    return f"in field {'.'.join(fields)}" if fields else "malformed request"


def _children(node: Any, *keys: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    for key in keys:
        value = node.get(key)
        if isinstance(value, list):
            return value
    return []


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    # OTLP JSON carries trace/span ids as hex, where json_format (proto3 JSON) expects base64 for
    # bytes fields: convert in place, on the document json_payload parsed itself. Values that are
    # not hex are left for json_format, which accepts the base64 some emitters send.
    def convert(node: Any, *keys: str) -> None:
        if not isinstance(node, dict):
            return
        for key in keys:
            value = node.get(key)
            if isinstance(value, str) and _HEX_RE.fullmatch(value):
                node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")

    id_keys = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
    for resource_spans in _children(document, "resourceSpans", "resource_spans"):
        for scope_spans in _children(resource_spans, "scopeSpans", "scope_spans"):
            for span in _children(scope_spans, "spans"):
                convert(span, *id_keys)
                for link in _children(span, "links"):
                    convert(link, *id_keys)


@dataclass
class _PendingTrace:
    spans: list[Span] = field(default_factory=list)
    span_resource: list[int] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    resources: dict[int, dict[str, Any]] = field(default_factory=dict)
    span_index: dict[str, int] = field(default_factory=dict)


def _decode_otlp_request(request: Any, max_depth: int) -> list[Trace]:
    pending: dict[str, _PendingTrace] = {}
    for resource_index, resource_spans in enumerate(request.resource_spans):
        resource = _attributes(resource_spans.resource.attributes, max_depth)
        for scope_spans in resource_spans.scope_spans:
            for otlp_span in scope_spans.spans:
                trace_id = _trace_id(otlp_span.trace_id)
                span, feedback = _span(otlp_span, max_depth)
                trace = pending.setdefault(trace_id, _PendingTrace())
                trace.resources.setdefault(resource_index, resource)
                index = trace.span_index.get(span.span_id)
                if index is None:
                    trace.span_index[span.span_id] = len(trace.spans)
                    trace.spans.append(span)
                    trace.span_resource.append(resource_index)
                    trace.feedback.extend(feedback)
                elif supersedes(span, trace.spans[index]):
                    trace.spans[index] = span
                    trace.span_resource[index] = resource_index
    return [_trace(trace_id, trace) for trace_id, trace in pending.items()]


def _trace_id(raw: bytes) -> str:
    if not raw or not any(raw):
        raise InvalidPayload("missing_trace_id", "a span has no trace id")
    if len(raw) != _TRACE_ID_BYTES:
        raise InvalidPayload(
            "invalid_trace_id", f"a trace id is {len(raw)} bytes, OTLP requires {_TRACE_ID_BYTES}"
        )
    return raw.hex()


def _span_id(raw: bytes) -> str:
    if not raw or not any(raw):
        raise InvalidPayload("missing_span_id", "a span has no span id")
    if len(raw) != _SPAN_ID_BYTES:
        raise InvalidPayload(
            "invalid_span_id", f"a span id is {len(raw)} bytes, OTLP requires {_SPAN_ID_BYTES}"
        )
    return raw.hex()


def _parent_span_id(raw: bytes) -> str | None:
    if not raw or not any(raw):
        return None
    if len(raw) != _SPAN_ID_BYTES:
        raise InvalidPayload(
            "invalid_span_id",
            f"a parent span id is {len(raw)} bytes, OTLP requires {_SPAN_ID_BYTES}",
        )
    return raw.hex()


def _time(unix_nanos: int) -> datetime:
    # Integer microseconds: float seconds would lose precision on current timestamps.
    return _EPOCH + timedelta(microseconds=unix_nanos // 1000)


def _attributes(key_values: Iterable[Any], max_depth: int) -> dict[str, Any]:
    return {kv.key: _plain(kv.value, max_depth, 1) for kv in key_values}


def _plain(value: Any, max_depth: int, depth: int) -> Any:
    """An OTLP AnyValue as plain JSON: str, int, float, bool, list, dict or None."""
    if depth > max_depth:
        raise InvalidPayload("too_deep", f"an attribute value nests deeper than {max_depth} levels")
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        number = value.double_value
        # NaN and infinities are not JSON; keep them readable rather than drop them.
        return number if math.isfinite(number) else str(number)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if which == "array_value":
        return [_plain(item, max_depth, depth + 1) for item in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _plain(kv.value, max_depth, depth + 1) for kv in value.kvlist_value.values}
    return None


def _span(otlp_span: Any, max_depth: int) -> tuple[Span, list[Feedback]]:
    span_id = _span_id(otlp_span.span_id)
    parent_span_id = _parent_span_id(otlp_span.parent_span_id)
    attributes = _attributes(otlp_span.attributes, max_depth)
    events = [SpanEvent(e.name, _attributes(e.attributes, max_depth)) for e in otlp_span.events]
    kind = span_kind_of(attributes)

    input_text = input_of(attributes, events)
    output_text = output_of(attributes, events)
    generic_input = pick(attributes, ("input.value",), as_text)
    generic_output = pick(attributes, ("output.value",), as_text)
    tool_arguments = pick(
        attributes, ("gen_ai.tool.call.arguments", "tool_call.function.arguments"), as_text
    )
    tool_result = pick(attributes, ("gen_ai.tool.call.result",), as_text)
    if kind is SpanKind.TOOL:
        # OpenInference records a tool call's arguments and result in input.value/output.value
        # where gen_ai has dedicated keys: without those keys, the generic ones are the call.
        if tool_arguments is None:
            tool_arguments, generic_input = generic_input, None
        if tool_result is None:
            tool_result, generic_output = generic_output, None
    input_text = generic_input if input_text is None else input_text
    output_text = generic_output if output_text is None else output_text

    exception = next((e for e in reversed(events) if e.name == EXCEPTION_EVENT), None)
    exception_attributes = exception.attributes if exception else {}
    error_type = pick(attributes, ("error.type",), as_id)
    if error_type is None:
        error_type = pick(exception_attributes, ("exception.type",), as_id)
    error_message = pick(exception_attributes, ("exception.message",), as_id)
    if error_message is None:
        error_message = as_id(otlp_span.status.message)

    end_nanos = otlp_span.end_time_unix_nano
    span = Span(
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=otlp_span.name,
        kind=kind,
        start_time=_time(otlp_span.start_time_unix_nano),
        end_time=_time(end_nanos) if end_nanos else None,
        status=_status(otlp_span.status.code),
        error_type=error_type,
        error_message=error_message,
        input=input_text,
        output=output_text,
        model=pick(
            attributes,
            (
                "gen_ai.request.model",
                "gen_ai.response.model",
                "llm.model_name",
                "embedding.model_name",
            ),
            as_id,
        ),
        tool_name=pick(
            attributes, ("gen_ai.tool.name", "tool.name", "tool_call.function.name"), as_id
        ),
        tool_arguments=tool_arguments,
        tool_result=tool_result,
        documents=documents_of(attributes),
        usage=usage_of(attributes),
        approval=pick(attributes, ("promote.approval",), as_approval),
        escalated=pick(attributes, ("promote.escalated",), as_bool),
        retry_attempt=pick(attributes, ("promote.retry.attempt",), as_int),
        guardrail_triggered=pick(attributes, ("promote.guardrail.triggered",), as_bool),
        attributes=attributes,
    )
    return span, feedback_of(events)


def _status(code: int) -> SpanStatus:
    if code == _STATUS_ERROR:
        return SpanStatus.ERROR
    if code == _STATUS_OK:
        return SpanStatus.OK
    return SpanStatus.UNSET


def _trace(trace_id: str, pending: _PendingTrace) -> Trace:
    roots = [i for i, span in enumerate(pending.spans) if span.parent_span_id is None]
    others = [i for i, span in enumerate(pending.spans) if span.parent_span_id is not None]
    # Root spans speak for the trace first; a sub-agent span must not name the whole trace.
    ordered = roots + others
    resource: dict[str, Any] = {}
    for resource_index in [pending.span_resource[i] for i in ordered]:
        for key, value in pending.resources[resource_index].items():
            resource.setdefault(key, value)
    sources = [pending.spans[i].attributes for i in ordered] + [resource]

    def lookup(keys: tuple[tuple[str, Callable[[Any], str | None]], ...]) -> str | None:
        for key, convert in keys:
            for attributes in sources:
                if key in attributes:
                    value = convert(attributes[key])
                    if value is not None:
                        return value
        return None

    fields = {name: lookup(keys) for name, keys in TRACE_FIELDS.items()}
    try:
        return Trace(
            trace_id=trace_id,
            spans=tuple(pending.spans),
            feedback=tuple(pending.feedback),
            resource=resource,
            **fields,
        )
    except ValidationError as exc:  # pragma: no cover - every field was typed above
        raise InvalidPayload("schema", describe_validation(exc)) from None
