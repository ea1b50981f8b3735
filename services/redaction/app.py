"""Redaction shell: traces.deduped → traces.redacted, failing closed to the DLQ."""

from __future__ import annotations

import asyncio

from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage

from services.redaction.logic import RedactionFailed, redact_trace
from shared import __version__, topics
from shared.events import TraceDeduped, TraceRedacted, advance
from shared.features import derive_features
from shared.kafka import make_broker
from shared.log import configure_logging
from shared.ops import count_redactions, instrument
from shared.settings import get_settings
from shared.stage import Stage, parse, to_bytes

# A trace that takes longer than this to redact is refused, not waited for.
REDACTION_TIMEOUT_S = 10.0

settings = get_settings()
logger = configure_logging("redaction", settings.log_level)
broker = make_broker(settings, "redaction", logger)
app = FastStream(broker, logger=logger)
stage = Stage(broker, "redaction", __version__)
instrument(app, broker, stage.name, database=False)
redacted = broker.publisher(topics.REDACTED)


@stage.subscriber(topics.DEDUPED)
@stage.guarded
async def on_deduped(msg: KafkaMessage) -> None:
    event = parse(TraceDeduped, msg)
    try:
        clean, report = await asyncio.wait_for(
            asyncio.to_thread(redact_trace, event.trace), REDACTION_TIMEOUT_S
        )
    except TimeoutError as exc:
        # Not transient: the same trace would time out again. Fail closed.
        raise RedactionFailed("timeout") from exc
    out = advance(
        event,
        TraceRedacted,
        stage.stamp(),
        trace=clean,
        features=derive_features(clean),
        redaction=report,
    )
    await redacted.publish(to_bytes(out), key=event.pattern.pattern_id.encode())
    count_redactions(report.counts)
