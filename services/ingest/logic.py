"""Ingest's functional core: canonical traces into normalized events and their keys."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from shared.events import StageStamp, Trace, TraceNormalized
from shared.features import derive_features, is_complete
from shared.keys import pattern_partition_key


def normalize(traces: list[Trace], stamp: StageStamp) -> list[TraceNormalized]:
    return [
        TraceNormalized(
            trace_id=t.trace_id,
            stages=(stamp,),
            trace=t,
            features=derive_features(t),
            complete=is_complete(t),
        )
        for t in traces
    ]


def partition_key(event: TraceNormalized) -> str:
    return pattern_partition_key(event.trace.agent_name, event.features)


def trace_id_hint(key: bytes | None) -> str | None:
    """traces.raw is keyed by trace id when the producer knew it."""
    if not key:
        return None
    text = key.decode("utf-8", errors="replace").strip()
    return text[:64] or None


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
