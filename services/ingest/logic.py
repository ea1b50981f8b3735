"""Ingest's functional core: canonical traces into normalized events and their keys."""

from __future__ import annotations

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
