"""The redaction step over a batch, shared by the stage and the benchmark's inputs: each
trace redacted, its features derived again from the clean trace when redaction changed it,
the event advanced."""

from __future__ import annotations

from collections.abc import Sequence

from services.redaction.logic import redact_trace, redacts_nothing
from shared.events import StageStamp, TraceDeduped, TraceFeatures, TraceRedacted, advance
from shared.features import derive_features


def redacted_events(events: Sequence[TraceDeduped], stamp: StageStamp) -> list[TraceRedacted]:
    results = []
    for event in events:
        clean, report = redact_trace(event.trace)
        # redact_trace hands back the very trace when it replaced nothing: its features,
        # derived from it upstream, are kept when their own texts hold nothing to redact
        # either (this stage is the privacy boundary: it does not take upstream's word).
        kept = clean is event.trace and redacts_nothing(feature_texts(event.features))
        features = event.features if kept else derive_features(clean)
        results.append(
            advance(event, TraceRedacted, stamp, trace=clean, features=features, redaction=report)
        )
    return results


def feature_texts(features: TraceFeatures) -> list[str | None]:
    """Every text a trace's features carry."""
    return [
        features.user_request,
        *features.error_types,
        *features.error_templates,
        *(c.name for c in features.tool_calls),
        *(c.arguments_fingerprint for c in features.tool_calls),
    ]
