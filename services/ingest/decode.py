"""Decode what arrives on traces.raw into canonical Traces.

Pure: bytes and a content type in, ``list[Trace]`` out, or ``InvalidPayload`` with a short
machine-readable reason for the DLQ. Three input formats are accepted:

* OTLP protobuf (``ExportTraceServiceRequest``), as sent by SDK exporters and the Collector;
* OTLP JSON (the same message in the OTLP/HTTP JSON encoding: hex ids, lowerCamelCase);
* native JSON: a ``shared.events.Trace`` object, a JSON list of them, or JSONL.

A payload may hold spans of several traces, and a trace's spans may arrive across several
payloads, so each returned Trace is possibly partial; assembly merges them by trace id.

Attribute precedence (documented in docs/attributes.md): ``promote.*`` > ``gen_ai.*`` current
names > ``gen_ai.*`` older names > OpenInference > generic (``input.value``/``output.value``).
A value of an unusable type is ignored for normalisation (it stays in ``Span.attributes``) and
the next key in precedence is tried: one odd attribute must not send a whole trace to the DLQ.
"""

from __future__ import annotations

import base64
import json
import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError

from shared.events import Document, Feedback, Span, SpanKind, SpanStatus, Trace, Usage

T = TypeVar("T")

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

PROTOBUF_MEDIA_TYPES = frozenset(
    {"application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf"}
)
JSON_MEDIA_TYPES = frozenset(
    {
        "application/json",
        "text/json",
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
# OTLP status codes (opentelemetry.proto.trace.v1.Status.StatusCode).
_STATUS_OK = 1
_STATUS_ERROR = 2

_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})*")
# A JSON string (escapes included), an opening bracket, a closing bracket, or a lone quote. The
# lone-quote alternative keeps the depth scan linear on unterminated strings: a failed string
# match is tried once, then the scan stops (see _check_json_depth).
_JSON_DEPTH_TOKEN_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|([\[{])|([\]}])|(")', re.S)
# Indexes are bounded to 9 digits: int() of a key-sized digit run could exceed
# Python's int-string conversion limit and raise.
_OI_MESSAGE_RE = re.compile(
    r"llm\.(input|output)_messages\.(\d{1,9})\.message\."
    r"(?:content|contents\.(\d{1,9})\.message_content\.text)"
)
_OLD_GENAI_MESSAGE_RE = re.compile(r"gen_ai\.(prompt|completion)\.(\d{1,9})\.content")
_OI_DOCUMENT_RE = re.compile(
    r"(retrieval\.documents|reranker\.output_documents)\.(\d{1,9})\.document\.(id|content|score)"
)
_PARSE_ERROR_FIELD_RE = re.compile(r"Failed to parse (\w+) field")
_INT_STR_RE = re.compile(r"\s*[+-]?\d{1,19}\s*")

_GENAI_OPERATION_KINDS: Mapping[str, SpanKind] = {
    "chat": SpanKind.LLM,
    "text_completion": SpanKind.LLM,
    "generate_content": SpanKind.LLM,
    # An embedding call is a model call with token cost; it groups with llm spans.
    "embeddings": SpanKind.LLM,
    "execute_tool": SpanKind.TOOL,
    "invoke_agent": SpanKind.AGENT,
    "create_agent": SpanKind.AGENT,
    "invoke_workflow": SpanKind.AGENT,
    "retrieval": SpanKind.RETRIEVAL,
}
_OPENINFERENCE_KINDS: Mapping[str, SpanKind] = {
    "LLM": SpanKind.LLM,
    "EMBEDDING": SpanKind.LLM,
    "TOOL": SpanKind.TOOL,
    "RETRIEVER": SpanKind.RETRIEVAL,
    "RERANKER": SpanKind.RETRIEVAL,
    "AGENT": SpanKind.AGENT,
    "GUARDRAIL": SpanKind.GUARDRAIL,
    "EVALUATOR": SpanKind.EVALUATOR,
    "CHAIN": SpanKind.OTHER,
    "PROMPT": SpanKind.OTHER,
    "UNKNOWN": SpanKind.OTHER,
}
_SPAN_KIND_VALUES = frozenset(k.value for k in SpanKind)
_APPROVAL_VALUES = frozenset({"requested", "granted", "denied"})
# Phoenix/OpenInference annotator kinds mapped onto Feedback.source.
_ANNOTATOR_SOURCES: Mapping[str, str] = {"LLM": "evaluator", "HUMAN": "human", "CODE": "code"}

EVALUATION_EVENT = "gen_ai.evaluation.result"
ANNOTATION_EVENT = "annotation"
PROMOTE_FEEDBACK_EVENT = "promote.feedback"
EXCEPTION_EVENT = "exception"
_OLD_PROMPT_EVENT = "gen_ai.content.prompt"
_OLD_COMPLETION_EVENT = "gen_ai.content.completion"


class InvalidPayload(ValueError):
    """The payload can never be decoded; it belongs in the DLQ.

    ``reason`` is short and machine-readable; the message never quotes payload content, which
    may hold PII.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def decode_payload(
    payload: bytes,
    content_type: str | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Trace]:
    """One (possibly partial) Trace per trace id in ``payload``, in order of first appearance."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise InvalidPayload("schema", f"payload must be bytes, not {type(payload).__name__}")
    data = bytes(payload)
    if len(data) > max_bytes:
        raise InvalidPayload("too_large", f"payload is {len(data)} bytes, limit is {max_bytes}")
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data, max_bytes)
    media_type = _media_type(content_type)
    if media_type in PROTOBUF_MEDIA_TYPES:
        return _decode_otlp_proto(data, max_depth)
    if media_type in JSON_MEDIA_TYPES or not _looks_like_protobuf(data):
        return _decode_json(data, max_depth)
    return _decode_otlp_proto(data, max_depth)


def span_kind_of(attributes: Mapping[str, Any]) -> SpanKind:
    """The canonical kind a span's raw attributes say, by the documented precedence."""
    declared = _as_id(attributes.get("promote.span.kind"))
    if declared is not None and declared.lower() in _SPAN_KIND_VALUES:
        return SpanKind(declared.lower())
    operation = _as_id(attributes.get("gen_ai.operation.name"))
    if operation is not None and operation.lower() in _GENAI_OPERATION_KINDS:
        return _GENAI_OPERATION_KINDS[operation.lower()]
    if "gen_ai.tool.name" in attributes or "gen_ai.tool.call.id" in attributes:
        return SpanKind.TOOL
    # Emitters older than gen_ai.operation.name marked model calls only by these.
    if any(
        key in attributes for key in ("gen_ai.system", "gen_ai.prompt", "gen_ai.completion")
    ) or any(_OLD_GENAI_MESSAGE_RE.fullmatch(key) for key in attributes):
        return SpanKind.LLM
    openinference = _as_id(attributes.get("openinference.span.kind"))
    if openinference is not None and openinference.upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[openinference.upper()]
    if "tool.name" in attributes:
        return SpanKind.TOOL
    if "llm.model_name" in attributes:
        return SpanKind.LLM
    return SpanKind.OTHER


# --- framing: size, compression, format ------------------------------------------------------


def _media_type(content_type: str | None) -> str | None:
    if not isinstance(content_type, str):
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type or None


def _looks_like_protobuf(data: bytes) -> bool:
    # Field 1 (resource_spans), wire type 2: every non-empty ExportTraceServiceRequest starts
    # with 0x0a. JSON may start with "\n" too, so only call it protobuf when the JSON-ish
    # reading fails to start with a bracket.
    if not data or data[0] != 0x0A:
        return False
    stripped = data.lstrip(b" \t\r\n")
    return not stripped.startswith((b"{", b"["))


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    remaining = data
    try:
        while True:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk_input = remaining
            while True:
                # max_length bounds each step so a zip bomb stops at max_bytes + 1 bytes.
                out += inflater.decompress(chunk_input, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise InvalidPayload(
                        "too_large", f"gzip payload inflates beyond the limit of {max_bytes} bytes"
                    )
                if inflater.eof or not inflater.unconsumed_tail:
                    break
                chunk_input = inflater.unconsumed_tail
            if not inflater.eof:
                raise InvalidPayload("bad_gzip", "gzip stream is truncated")
            remaining = inflater.unused_data
            if not remaining:
                return bytes(out)
            if not remaining.startswith(_GZIP_MAGIC):
                raise InvalidPayload("bad_gzip", "trailing bytes after the gzip stream")
    except zlib.error as exc:
        raise InvalidPayload("bad_gzip", f"gzip stream is corrupt ({exc})") from None


# --- JSON: OTLP JSON or native -----------------------------------------------------------------


class _NonFiniteNumber(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFiniteNumber(f"number out of range: {text[:20]}")
    return value


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=_finite_float, parse_constant=_reject_constant)


def _check_json_depth(text: str, max_depth: int) -> None:
    # json.loads recurses once per nesting level; scan bracket depth first so hostile nesting
    # is refused before the parser (or pydantic, or protobuf) recurses into it.
    depth = 0
    for match in _JSON_DEPTH_TOKEN_RE.finditer(text):
        group = match.lastindex
        if group == 1:
            depth += 1
            if depth > max_depth:
                raise InvalidPayload("too_deep", f"JSON nests deeper than {max_depth} levels")
        elif group == 2:
            depth -= 1
        elif group == 3:
            # An unterminated string: the JSON is invalid and json.loads will say where.
            return


def _decode_json(data: bytes, max_depth: int) -> list[Trace]:
    data = data.removeprefix(_UTF8_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload("not_utf8", f"byte {exc.start} is not valid UTF-8") from None
    if not text.strip():
        raise InvalidPayload("invalid_json", "empty payload")
    _check_json_depth(text, max_depth)
    documents: list[Any]
    try:
        documents = [_loads(text)]
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise InvalidPayload("invalid_json", _json_error(exc)) from None
        documents = _loads_lines(text)
    except RecursionError:
        raise InvalidPayload("too_deep", "JSON nests too deeply to parse") from None
    except ValueError as exc:
        raise InvalidPayload("invalid_json", _value_error(exc)) from None
    if len(documents) == 1 and isinstance(documents[0], list):
        documents = documents[0]
    traces: list[Trace] = []
    for document in documents:
        traces.extend(_from_json_document(document, max_depth))
    return _merge_by_trace_id(traces)


def _loads_lines(text: str) -> list[Any]:
    # Split on "\n" only: str.splitlines() also splits on U+2028 and friends, which JSON
    # allows raw inside strings.
    documents = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            documents.append(_loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidPayload("invalid_json", f"line {number}: {_json_error(exc)}") from None
        except RecursionError:
            raise InvalidPayload("too_deep", f"line {number} nests too deeply") from None
        except ValueError as exc:
            raise InvalidPayload("invalid_json", f"line {number}: {_value_error(exc)}") from None
    return documents


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}"


def _value_error(exc: ValueError) -> str:
    if isinstance(exc, _NonFiniteNumber):
        return str(exc)
    return "a number is out of range"


def _from_json_document(document: Any, max_depth: int) -> list[Trace]:
    if not isinstance(document, dict):
        raise InvalidPayload(
            "schema", f"expected a JSON object (a trace), got {_json_type(document)}"
        )
    if "resourceSpans" in document or "resource_spans" in document:
        return _decode_otlp_json(document, max_depth)
    return [_native_trace(document)]


def _json_type(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "a list"
        case _:
            return type(value).__name__


def _native_trace(document: dict[str, Any]) -> Trace:
    trace_id = document.get("trace_id")
    if trace_id is None or trace_id == "":
        raise InvalidPayload("missing_trace_id", "native trace has no trace_id")
    try:
        trace = Trace.model_validate(document)
    except ValidationError as exc:
        raise InvalidPayload("schema", _describe_validation(exc)) from None
    except RecursionError:
        raise InvalidPayload("too_deep", "native trace nests too deeply") from None
    return _with_utc_times(trace)


def _describe_validation(exc: ValidationError) -> str:
    # include_input=False: the offending values may be PII and this message goes to the DLQ.
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    described = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        for error in errors[:5]
    )
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"not a valid Trace: {described}{more}"


def _with_utc_times(trace: Trace) -> Trace:
    # Downstream arithmetic mixes times from many sources; naive or offset datetimes would
    # raise or mislead there. Naive times are read as UTC.
    def utc(moment: datetime) -> datetime:
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        if moment.tzinfo is UTC:
            return moment
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise InvalidPayload("schema", "a span time is out of range in UTC") from None

    spans = []
    changed = False
    for span in trace.spans:
        start = utc(span.start_time)
        end = None if span.end_time is None else utc(span.end_time)
        if start is not span.start_time or end is not span.end_time:
            changed = True
            span = span.model_copy(update={"start_time": start, "end_time": end})
        spans.append(span)
    return trace.model_copy(update={"spans": tuple(spans)}) if changed else trace


def _merge_by_trace_id(traces: list[Trace]) -> list[Trace]:
    """Native payloads may repeat a trace id; fold them the way assembly merges fragments."""
    order: dict[str, list[Trace]] = {}
    for trace in traces:
        order.setdefault(trace.trace_id, []).append(trace)
    return [parts[0] if len(parts) == 1 else _merge(parts) for parts in order.values()]


def _supersedes(span: Span, known: Span | None) -> bool:
    # The first copy of a span wins, except that a finished copy replaces an unfinished one.
    return known is None or (known.end_time is None and span.end_time is not None)


def _merge(parts: list[Trace]) -> Trace:
    first = parts[0]
    spans: dict[str, Span] = {}
    feedback: list[Feedback] = []
    resource: dict[str, Any] = {}
    update: dict[str, Any] = {}
    for part in parts:
        for span in part.spans:
            if _supersedes(span, spans.get(span.span_id)):
                spans[span.span_id] = span
        # Feedback repeated by a resent fragment counts once; repeats within one part are kept.
        # A set of what earlier parts held: a list made this quadratic (issue 13).
        earlier = set(feedback)
        feedback.extend(f for f in part.feedback if f not in earlier)
        for key, value in part.resource.items():
            resource.setdefault(key, value)
        for name in ("session_id", "user_id", "agent_name", "agent_version", "outcome"):
            if update.get(name) is None:
                update[name] = getattr(part, name)
    update.update(spans=tuple(spans.values()), feedback=tuple(feedback), resource=resource)
    return first.model_copy(update=update)


def _decode_otlp_json(document: dict[str, Any], max_depth: int) -> list[Trace]:
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
    # bytes fields: convert in place, on the document this module parsed itself. Values that are
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


# --- OTLP: protobuf request to canonical traces -----------------------------------------------


def _decode_otlp_proto(data: bytes, max_depth: int) -> list[Trace]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, ValueError, TypeError, RuntimeError):
        raise InvalidPayload(
            "bad_protobuf", "not an OTLP ExportTraceServiceRequest (corrupt wire format)"
        ) from None
    return _decode_otlp_request(request, max_depth)


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
                elif _supersedes(span, trace.spans[index]):
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


@dataclass(frozen=True)
class _Event:
    name: str
    attributes: dict[str, Any]


def _span(otlp_span: Any, max_depth: int) -> tuple[Span, list[Feedback]]:
    span_id = _span_id(otlp_span.span_id)
    parent_span_id = _parent_span_id(otlp_span.parent_span_id)
    attributes = _attributes(otlp_span.attributes, max_depth)
    events = [_Event(e.name, _attributes(e.attributes, max_depth)) for e in otlp_span.events]
    kind = span_kind_of(attributes)

    input_text = _input(attributes, events)
    output_text = _output(attributes, events)
    generic_input = _pick(attributes, ("input.value",), _as_text)
    generic_output = _pick(attributes, ("output.value",), _as_text)
    tool_arguments = _pick(
        attributes, ("gen_ai.tool.call.arguments", "tool_call.function.arguments"), _as_text
    )
    tool_result = _pick(attributes, ("gen_ai.tool.call.result",), _as_text)
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
    error_type = _pick(attributes, ("error.type",), _as_id)
    if error_type is None:
        error_type = _pick(exception_attributes, ("exception.type",), _as_id)
    error_message = _pick(exception_attributes, ("exception.message",), _as_id)
    if error_message is None:
        error_message = _as_id(otlp_span.status.message)

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
        model=_pick(
            attributes,
            (
                "gen_ai.request.model",
                "gen_ai.response.model",
                "llm.model_name",
                "embedding.model_name",
            ),
            _as_id,
        ),
        tool_name=_pick(
            attributes, ("gen_ai.tool.name", "tool.name", "tool_call.function.name"), _as_id
        ),
        tool_arguments=tool_arguments,
        tool_result=tool_result,
        documents=_documents(attributes),
        usage=_usage(attributes),
        approval=_pick(attributes, ("promote.approval",), _as_approval),
        escalated=_pick(attributes, ("promote.escalated",), _as_bool),
        retry_attempt=_pick(attributes, ("promote.retry.attempt",), _as_int),
        guardrail_triggered=_pick(attributes, ("promote.guardrail.triggered",), _as_bool),
        attributes=attributes,
    )
    return span, _feedback(events)


def _status(code: int) -> SpanStatus:
    if code == _STATUS_ERROR:
        return SpanStatus.ERROR
    if code == _STATUS_OK:
        return SpanStatus.OK
    return SpanStatus.UNSET


def _input(attributes: Mapping[str, Any], events: list[_Event]) -> str | None:
    """Input from every key above the generic input.value (which _span weighs itself)."""
    messages = _messages_text(attributes.get("gen_ai.input.messages"))
    instructions = _parts_text(attributes.get("gen_ai.system_instructions"))
    if messages is not None or instructions is not None:
        return _join([instructions, messages])
    return _first_not_none(
        lambda: _pick(attributes, ("gen_ai.retrieval.query.text",), _as_text),
        lambda: _messages_text(attributes.get("gen_ai.prompt")),
        lambda: _flattened_old_genai(attributes, "prompt"),
        lambda: _event_text(events, _OLD_PROMPT_EVENT, "gen_ai.prompt"),
        lambda: _flattened_openinference(attributes, "input"),
    )


def _output(attributes: Mapping[str, Any], events: list[_Event]) -> str | None:
    return _first_not_none(
        lambda: _messages_text(attributes.get("gen_ai.output.messages")),
        lambda: _messages_text(attributes.get("gen_ai.completion")),
        lambda: _flattened_old_genai(attributes, "completion"),
        lambda: _event_text(events, _OLD_COMPLETION_EVENT, "gen_ai.completion"),
        lambda: _flattened_openinference(attributes, "output"),
    )


def _first_not_none(*candidates: Callable[[], T | None]) -> T | None:
    for candidate in candidates:
        value = candidate()
        if value is not None:
            return value
    return None


def _join(texts: Iterable[str | None]) -> str | None:
    present = [text for text in texts if text is not None]
    return "\n".join(present) if present else None


def _maybe_json(value: Any) -> Any:
    """Structured content may arrive as an AnyValue or as a JSON string; read both."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


def _messages_text(value: Any) -> str | None:
    """Text of chat messages: gen_ai ``parts`` form, or the older ``content`` form."""
    if value is None:
        return None
    parsed = _maybe_json(value)
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not (
        isinstance(parsed, list)
        and parsed
        and all(
            isinstance(m, dict) and ("parts" in m or "content" in m or "role" in m) for m in parsed
        )
    ):
        # Not message-shaped: a plain prompt string is the text itself.
        return _as_text(value)
    texts: list[str | None] = []
    for message in parsed:
        texts.append(_parts_text(message.get("parts"), allow_plain=False))
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.append(_parts_text(content, allow_plain=False))
    return _join(texts)


def _parts_text(value: Any, *, allow_plain: bool = True) -> str | None:
    """Text parts of a gen_ai parts list (``[{"type": "text", "content": ...}]``)."""
    if value is None:
        return None
    parsed = _maybe_json(value)
    if isinstance(parsed, str):
        return parsed if allow_plain else None
    if not isinstance(parsed, list):
        return _as_text(value) if allow_plain else None
    texts: list[str | None] = []
    for part in parsed:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type", "text") == "text":
            text = part.get("content", part.get("text"))
            if isinstance(text, str):
                texts.append(text)
    return _join(texts)


def _flattened_old_genai(attributes: Mapping[str, Any], which: str) -> str | None:
    found: list[tuple[int, str]] = []
    for key, value in attributes.items():
        match = _OLD_GENAI_MESSAGE_RE.fullmatch(key)
        if match and match.group(1) == which and isinstance(value, str):
            found.append((int(match.group(2)), value))
    return _join(text for _, text in sorted(found)) if found else None


def _flattened_openinference(attributes: Mapping[str, Any], which: str) -> str | None:
    found: list[tuple[int, int, str]] = []
    for key, value in attributes.items():
        match = _OI_MESSAGE_RE.fullmatch(key)
        if match and match.group(1) == which and isinstance(value, str):
            content_index = -1 if match.group(3) is None else int(match.group(3))
            found.append((int(match.group(2)), content_index, value))
    return _join(text for _, _, text in sorted(found)) if found else None


def _event_text(events: list[_Event], event_name: str, key: str) -> str | None:
    for event in events:
        if event.name == event_name and key in event.attributes:
            return _messages_text(event.attributes[key])
    return None


def _documents(attributes: Mapping[str, Any]) -> tuple[Document, ...]:
    listed = _maybe_json(attributes.get("gen_ai.retrieval.documents"))
    if isinstance(listed, list) and listed:
        return tuple(
            Document(
                id=_as_id(item.get("id")),
                content=_as_text(item.get("content", item.get("text"))),
                score=_as_float(item.get("score")),
            )
            for item in listed
            if isinstance(item, dict)
        )
    for prefix in ("retrieval.documents", "reranker.output_documents"):
        fields: dict[int, dict[str, Any]] = {}
        for key, value in attributes.items():
            match = _OI_DOCUMENT_RE.fullmatch(key)
            if match and match.group(1) == prefix:
                fields.setdefault(int(match.group(2)), {})[match.group(3)] = value
        if fields:
            return tuple(
                Document(
                    id=_as_id(doc.get("id")),
                    content=_as_text(doc.get("content")),
                    score=_as_float(doc.get("score")),
                )
                for _, doc in sorted(fields.items())
            )
    return ()


def _usage(attributes: Mapping[str, Any]) -> Usage | None:
    input_tokens = _pick(
        attributes,
        ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
        _as_int,
    )
    output_tokens = _pick(
        attributes,
        (
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ),
        _as_int,
    )
    cost = _pick(attributes, ("gen_ai.usage.cost", "llm.cost.total"), _as_float)
    if input_tokens is None and output_tokens is None and cost is None:
        return None
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost)


def _feedback(events: list[_Event]) -> list[Feedback]:
    feedback = []
    for event in events:
        a = event.attributes
        if event.name == EVALUATION_EVENT:
            source: str | None = "evaluator"
            prefix = "gen_ai.evaluation."
            name = _as_id(a.get("gen_ai.evaluation.name"))
            score = _as_float(a.get("gen_ai.evaluation.score.value"))
            label = _as_id(a.get("gen_ai.evaluation.score.label"))
            default_name = "evaluation"
        elif event.name == ANNOTATION_EVENT:
            kind = _as_id(a.get("annotation.annotator_kind"))
            source = None if kind is None else _ANNOTATOR_SOURCES.get(kind.upper(), kind.lower())
            prefix = "annotation."
            name = _as_id(a.get("annotation.name"))
            score = _as_float(a.get("annotation.score"))
            label = _as_id(a.get("annotation.label"))
            default_name = "annotation"
        elif event.name == PROMOTE_FEEDBACK_EVENT:
            source = _as_id(a.get("promote.feedback.source"))
            prefix = "promote.feedback."
            name = _as_id(a.get("promote.feedback.name"))
            score = _as_float(a.get("promote.feedback.score"))
            label = _as_id(a.get("promote.feedback.label"))
            default_name = "feedback"
        else:
            continue
        feedback.append(
            Feedback(
                source=source or "unknown",
                name=default_name if name is None else name,
                score=score,
                label=label,
                explanation=_as_text(a.get(prefix + "explanation")),
            )
        )
    return feedback


# --- attribute value conversion ----------------------------------------------------------------


def _pick(
    attributes: Mapping[str, Any], keys: Iterable[str], convert: Callable[[Any], T | None]
) -> T | None:
    for key in keys:
        if key in attributes:
            value = convert(attributes[key])
            if value is not None:
                return value
    return None


def _as_id(value: Any) -> str | None:
    """An identifier-like string; empty means absent."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _as_text(value: Any) -> str | None:
    """Content: strings as they are (empty included), structured values as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INT_STR_RE.fullmatch(value):
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float | str) or (isinstance(value, str) and len(value) > 64):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        # OverflowError: an integer beyond float range, e.g. from JSON inside an attribute.
        return None
    return number if math.isfinite(number) else None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _as_approval(value: Any) -> str | None:
    if isinstance(value, str) and value.strip().lower() in _APPROVAL_VALUES:
        return value.strip().lower()
    return None


# --- trace level -------------------------------------------------------------------------------


def _agent_name_from_service(value: Any) -> str | None:
    # SDKs fill service.name with "unknown_service[:exe]" when unset: not an agent name.
    name = _as_id(value)
    return None if name is None or name.startswith("unknown_service") else name


_TRACE_FIELDS: Mapping[str, tuple[tuple[str, Callable[[Any], str | None]], ...]] = {
    "session_id": (
        ("promote.session.id", _as_id),
        ("gen_ai.conversation.id", _as_id),
        ("session.id", _as_id),
    ),
    "user_id": (
        ("promote.user.id", _as_id),
        ("user.id", _as_id),
        ("enduser.id", _as_id),
    ),
    "agent_name": (
        ("gen_ai.agent.name", _as_id),
        ("agent.name", _as_id),
        ("service.name", _agent_name_from_service),
    ),
    "agent_version": (
        ("promote.agent.version", _as_id),
        ("gen_ai.agent.version", _as_id),
        ("service.version", _as_id),
    ),
    "outcome": (("promote.outcome", _as_id),),
}


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

    fields = {name: lookup(keys) for name, keys in _TRACE_FIELDS.items()}
    try:
        return Trace(
            trace_id=trace_id,
            spans=tuple(pending.spans),
            feedback=tuple(pending.feedback),
            resource=resource,
            **fields,
        )
    except ValidationError as exc:  # pragma: no cover - every field was typed above
        raise InvalidPayload("schema", _describe_validation(exc)) from None
