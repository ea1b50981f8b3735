"""Ingest's functional core: canonical traces into normalized events and their keys."""

from __future__ import annotations

import hmac
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
