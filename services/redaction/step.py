"""The redaction step over a batch, shared by the stage and the benchmark's inputs: each
trace redacted, its features derived again from the clean trace when redaction changed it,
the event advanced."""

from __future__ import annotations

from collections.abc import Sequence

from services.redaction.logic import redact_trace
from shared.events import StageStamp, TraceDeduped, TraceRedacted, advance
from shared.features import derive_features


def redacted_events(events: Sequence[TraceDeduped], stamp: StageStamp) -> list[TraceRedacted]:
    results = []
    for event in events:
        clean, report = redact_trace(event.trace)
        # redact_trace hands back the very trace when it replaced nothing: its features
        # are then the ones derived from it upstream, and are not derived again.
        features = event.features if clean is event.trace else derive_features(clean)
        results.append(
            advance(event, TraceRedacted, stamp, trace=clean, features=features, redaction=report)
        )
    return results
