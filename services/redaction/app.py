"""Redaction shell: traces.deduped → traces.redacted, failing closed to the DLQ."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faststream import FastStream

from services.redaction import step
from services.redaction.logic import RedactionFailed
from shared import __version__, topics
from shared.events import TraceDeduped
from shared.kafka import make_broker
from shared.kernel import Item, Outbox, process
from shared.log import configure_logging
from shared.ops import count_redactions, instrument
from shared.settings import get_settings
from shared.stage import KafkaMessage, Stage, to_bytes_passing_trace

# A trace that takes longer than this to redact is refused, not waited for.
REDACTION_TIMEOUT_S = 10.0

settings = get_settings()
logger = configure_logging("redaction", settings.log_level)
broker = make_broker(settings, "redaction", logger)
app = FastStream(broker, logger=logger)
stage = Stage(broker, "redaction", __version__)
instrument(app, broker, stage.name, database=False)
redacted = broker.publisher(topics.REDACTED)


@stage.batch_subscriber(topics.DEDUPED)
async def on_deduped(msg: KafkaMessage) -> None:
    await process(stage, msg, TraceDeduped, redact_batch)


async def redact_batch(items: Sequence[Item[TraceDeduped]], out: Outbox) -> None:
    # Redaction is CPU work: the whole batch runs in a worker thread so the event loop
    # keeps the consumer's heartbeats going. A batch that overruns is refused, and the
    # kernel then retries its traces one by one, each with the single-trace allowance.
    try:
        cleaned = await asyncio.wait_for(
            asyncio.to_thread(step.redacted_events, [i.event for i in items], stage.stamp()),
            REDACTION_TIMEOUT_S * len(items),
        )
    except TimeoutError as exc:
        # Not transient: the same trace would time out again. Fail closed.
        raise RedactionFailed("timeout") from exc
    for event, item in zip(cleaned, items, strict=True):
        # A trace redaction left as it was goes on as the bytes it arrived in.
        body = to_bytes_passing_trace(event, item.event, item.record.value)
        out.publish(redacted, body, key=event.pattern.pattern_id.encode())
        count_redactions(event.redaction.counts)
