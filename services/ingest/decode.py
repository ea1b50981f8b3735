"""Decode what arrives on traces.raw into canonical Traces.

Pure: bytes and a content type in, ``list[Trace]`` out, or ``InvalidPayload`` with a short
machine-readable reason for the DLQ. Three input formats are accepted:

* OTLP protobuf (``ExportTraceServiceRequest``), as sent by SDK exporters and the Collector;
* OTLP JSON (the same message in the OTLP/HTTP JSON encoding: hex ids, lowerCamelCase);
* native JSON: a ``shared.events.Trace`` object, a JSON list of them, or JSONL.

A payload may hold spans of several traces, and a trace's spans may arrive across several
payloads, so each returned Trace is possibly partial; assembly merges them by trace id.

The formats live in json_payload.py and otlp.py, the attribute conventions in
conventions.py; this module frames the payload and picks the format.
"""

from __future__ import annotations

import zlib

from services.ingest.conventions import (
    ANNOTATION_EVENT,
    EVALUATION_EVENT,
    EXCEPTION_EVENT,
    PROMOTE_FEEDBACK_EVENT,
    span_kind_of,
)
from services.ingest.invalid_payload import InvalidPayload
from services.ingest.json_payload import decode_json
from services.ingest.otlp import decode_otlp_proto
from shared.events import Trace

# Callers import the error, the span-kind rule and the event names from here.
__all__ = [
    "ANNOTATION_EVENT",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "EVALUATION_EVENT",
    "EXCEPTION_EVENT",
    "JSON_MEDIA_TYPES",
    "PROMOTE_FEEDBACK_EVENT",
    "PROTOBUF_MEDIA_TYPES",
    "InvalidPayload",
    "decode_payload",
    "span_kind_of",
]

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
        return decode_otlp_proto(data, max_depth)
    if media_type in JSON_MEDIA_TYPES or not _looks_like_protobuf(data):
        return decode_json(data, max_depth)
    return decode_otlp_proto(data, max_depth)


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
