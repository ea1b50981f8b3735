"""The redaction step over a batch, shared by the stage and the benchmark's inputs: each
trace redacted, its features derived again from the clean trace, the event advanced."""

from __future__ import annotations

from collections.abc import Sequence

from services.redaction.logic import redact_trace
from shared.events import StageStamp, TraceDeduped, TraceRedacted, advance
from shared.features import derive_features


def redacted_events(events: Sequence[TraceDeduped], stamp: StageStamp) -> list[TraceRedacted]:
    results = []
    for event in events:
        clean, report = redact_trace(event.trace)
        results.append(
            advance(
                event,
                TraceRedacted,
                stamp,
                trace=clean,
                features=derive_features(clean),
                redaction=report,
            )
        )
    return results
