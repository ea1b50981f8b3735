"""Ingest's functional core: canonical traces into normalized events and their keys."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shared.events import StageStamp, Trace, TraceNormalized
from shared.features import derive_features, is_complete
from shared.keys import pattern_partition_key


def normalize(
    traces: list[Trace], stamp: StageStamp, complete: Sequence[bool] | None = None
) -> list[TraceNormalized]:
    """``complete``: ``is_complete`` of each trace when the caller knows it already (the
    assembly keeps it per buffered trace)."""
    known: Sequence[bool | None] = [None] * len(traces) if complete is None else complete
    return [
        TraceNormalized(
            trace_id=t.trace_id,
            stages=(stamp,),
            trace=t,
            features=derive_features(t),
            complete=is_complete(t) if done is None else done,
        )
        for t, done in zip(traces, known, strict=True)
    ]


def partition_key(event: TraceNormalized) -> str:
    return pattern_partition_key(event.trace.agent_name, event.features)


# Hexadecimal with at least one letter (an all-digit id could be a phone or a card number),
# or a UUID.
_HEX_ID = re.compile(
    r"(?=[0-9]*[a-fA-F])[0-9a-fA-F]{8,64}|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
)


def loggable_trace_id(trace_id: str) -> str:
    """What a log line may say about a trace id before redaction: a hexadecimal id or a UUID
    as it is, anything else (a native id can be any string: an e-mail, a name) as a digest
    of it, so the line still correlates with the trace without carrying its text."""
    if _HEX_ID.fullmatch(trace_id):
        return trace_id
    return "sha256:" + hashlib.sha256(trace_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def authorized(headers: Mapping[str, str], api_key: str) -> bool:
    """`x-api-key: KEY` or `Authorization: Bearer KEY`, compared in constant time."""
    if not api_key:
        return False
    offered = headers.get("x-api-key") or ""
    bearer = headers.get("authorization") or ""
    if bearer.lower().startswith("bearer "):
        offered = offered or bearer[7:].strip()
    return hmac.compare_digest(offered.encode(), api_key.encode())


def response_media_type(request_content_type: str | None) -> str:
    """OTLP answers in the encoding it was spoken to."""
    media = (request_content_type or "").split(";", 1)[0].strip().lower()
    return "application/x-protobuf" if media == "application/x-protobuf" else "application/json"


# --- events over the size limit ---------------------------------------------------------
#
# One rule for large events (README "Large traces"): every Kafka limit (producer request,
# topic max.message.bytes, broker message.max.bytes, consumer fetch) is raised together to
# PROMOTE_KAFKA_MAX_MESSAGE_BYTES. Ingest keeps a normalized event within a share of it
# (the later stages add a pattern, a redaction report and scores): above that, its longest
# strings are cut, halving the cap until it fits, the cut strings end with
# TRUNCATION_MARKER and the event says ``truncated: true``. An event that still does not
# fit (e.g. hundreds of thousands of spans) is dead-lettered with reason ``too_large``.

TRUNCATION_MARKER = " …[truncated]"
NORMALIZED_SHARE = 0.75
MIN_STRING_CAP = 64


class EventTooLarge(ValueError):
    reason = "too_large"


def event_limit(max_message_bytes: int) -> int:
    return int(max_message_bytes * NORMALIZED_SHARE)


def _cut(value: str, cap: int) -> str:
    return value if len(value) <= cap else value[:cap] + TRUNCATION_MARKER


def _cut_any(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        return _cut(value, cap)
    if isinstance(value, dict):
        return {k: _cut_any(v, cap) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cut_any(v, cap) for v in value]
    return value


_SPAN_TEXT = ("input", "output", "tool_arguments", "tool_result", "error_message", "name")


def truncate_strings(trace: Trace, cap: int) -> Trace:
    spans = []
    for span in trace.spans:
        update: dict[str, Any] = {
            f: _cut(getattr(span, f), cap) for f in _SPAN_TEXT if getattr(span, f) is not None
        }
        update["attributes"] = _cut_any(span.attributes, cap)
        update["documents"] = tuple(
            d.model_copy(update={"content": _cut(d.content, cap)}) if d.content else d
            for d in span.documents
        )
        spans.append(span.model_copy(update=update))
    feedback = tuple(
        f.model_copy(update={"explanation": _cut(f.explanation, cap)}) if f.explanation else f
        for f in trace.feedback
    )
    return trace.model_copy(
        update={
            "spans": tuple(spans),
            "feedback": feedback,
            "resource": _cut_any(trace.resource, cap),
        }
    )


def _encoded(event: TraceNormalized) -> bytes:
    # model_dump_json()'s bytes before it decodes them to a str (that we would encode back).
    return event.__pydantic_serializer__.to_json(event)


def fit(event: TraceNormalized, limit: int) -> TraceNormalized:
    """``event`` if its JSON is within ``limit`` bytes, else a truncated copy that is, marked
    ``truncated``; EventTooLarge if even strings of MIN_STRING_CAP characters do not fit."""
    return fit_encoded(event, limit)[0]


def fit_encoded(event: TraceNormalized, limit: int) -> tuple[TraceNormalized, bytes]:
    """``fit``, with the JSON it measured: the record to publish, encoded once."""
    encoded = _encoded(event)
    if len(encoded) <= limit:
        return event, encoded
    cap = max(MIN_STRING_CAP, (limit // 4) // max(len(event.trace.spans), 1))
    while True:
        trace = truncate_strings(event.trace, cap)
        smaller = event.model_copy(
            update={"trace": trace, "features": derive_features(trace), "truncated": True}
        )
        encoded = _encoded(smaller)
        if len(encoded) <= limit:
            return smaller, encoded
        if cap <= MIN_STRING_CAP:
            raise EventTooLarge(f"normalized event of {len(encoded)} bytes over the {limit} limit")
        cap = max(MIN_STRING_CAP, cap // 2)
