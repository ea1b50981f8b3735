"""Ingest shell: traces.raw → complete canonical traces on traces.normalized.

Spans are buffered by trace id (services/ingest/assembly.py) and the raw offset of a
partition is committed only up to the oldest message a buffered trace still needs: a
crash or a rebalance loses no span. Offsets are therefore committed here, by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from faststream import AckPolicy, FastStream

from services.ingest import logic
from services.ingest.assembly import FLUSH_INTERVAL_S, Assembler, decoded_size
from services.ingest.decode import decode_payload
from shared import __version__, topics
from shared.errors import is_transient, retry_transient
from shared.events import TraceNormalized
from shared.kafka import make_broker
from shared.kernel import deliver, headers_of, records_of
from shared.log import configure_logging
from shared.ops import BATCH_SIZE, INGEST_BUFFERED, in_flight, instrument
from shared.settings import get_settings
from shared.stage import KafkaMessage, Stage, id_shaped, now

settings = get_settings()
logger = configure_logging("ingest", settings.log_level)
broker = make_broker(settings, "ingest", logger)
app = FastStream(broker, logger=logger)
stage = Stage(broker, "ingest", __version__)
instrument(app, broker, stage.name, database=False)
normalized = broker.publisher(topics.NORMALIZED)
assembler = Assembler(
    quiet=timedelta(milliseconds=settings.assembly_quiet_ms),
    max_wait=timedelta(milliseconds=settings.assembly_max_wait_ms),
    max_traces=settings.assembly_max_traces,
    max_bytes=settings.assembly_max_bytes,
)
INGEST_BUFFERED.set_function(lambda: len(assembler.pending))
# Handler and flusher both touch the buffer across awaits; one at a time.
buffer_lock = asyncio.Lock()
room = asyncio.Event()
committed: dict[int, int] = {}


class ReleaseRevokedPartitions(ConsumerRebalanceListener):
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with buffer_lock:
            await commit_safe_offsets()
            assembler.drop_partitions({tp.partition for tp in revoked if tp.topic == topics.RAW})
            for tp in revoked:
                committed.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


raw = stage.batch_subscriber(
    topics.RAW, ack_policy=AckPolicy.MANUAL, listener=ReleaseRevokedPartitions()
)


@raw
async def on_raw(msg: KafkaMessage) -> None:
    records = records_of(msg)
    BATCH_SIZE.labels(stage.name, "consume").observe(len(records))
    with in_flight(stage.name, records):
        for record in records:
            await buffer_record(record)


async def buffer_record(record: ConsumerRecord[bytes, bytes]) -> None:
    source = (record.partition, record.offset)
    while assembler.full():  # back-pressure: stop reading until the flusher makes room
        room.clear()
        await room.wait()
    body = record.value or b""
    try:
        traces = decode_payload(
            body, headers_of(record).get("content-type"), max_bytes=settings.ingest_max_body_bytes
        )
    except Exception as error:
        await dead_letter_until_acknowledged(record, error)
        async with buffer_lock:
            assembler.mark_consumed(source)
        return
    async with buffer_lock:
        # Counted decoded (a gzipped body is ~70x smaller than what it holds in memory).
        assembler.add(traces, source, max(len(body), decoded_size(traces)), now())
    # Per record, so at debug: at production rates an info line per record costs more
    # CPU than decoding it (profiled), and what matters about a trace is logged when it
    # is released, if it is truncated or incomplete. The level is asked first: below it,
    # the ids were digested and the call made only for structlog to drop the line.
    if stage.log.isEnabledFor(logging.DEBUG):
        stage.log.debug(
            "buffered",
            trace_ids=[logic.loggable_trace_id(t.trace_id) for t in traces],
            offset=record.offset,
        )


async def dead_letter_until_acknowledged(
    record: ConsumerRecord[bytes, bytes], error: Exception
) -> None:
    """The offset will be committed past this record, so its dead letter must land."""
    await retry_transient(
        "ingest dead letter",
        lambda: stage.dead_letter_record(record, error),
        max_delay_s=None,
    )


def fitted(event: TraceNormalized) -> tuple[TraceNormalized, bytes] | Exception:
    try:
        return logic.fit_encoded(event, logic.event_limit(settings.kafka_max_message_bytes))
    except logic.EventTooLarge as error:
        return error


async def flush() -> None:
    """Publishes the traces the assembler releases. A trace whose publish failed
    transiently stays buffered (the next tick retries it, its offsets stay uncommitted);
    one that failed permanently is dead-lettered and forgotten: nothing here can make the
    flusher stop, and the buffer always drains."""
    async with buffer_lock:
        released = assembler.release(now())
        if released:
            BATCH_SIZE.labels(stage.name, "flush").observe(len(released))
            stamp = stage.stamp()
            normalized_events = logic.normalize(
                [r.trace for r in released], stamp, [r.complete for r in released]
            )
            events = [fitted(e) for e in normalized_events]
            debug = stage.log.isEnabledFor(logging.DEBUG)
            results = await deliver(
                [
                    (normalized, e[1], logic.partition_key(e[0]).encode(), None)
                    for e in events
                    if not isinstance(e, Exception)
                ]
            )
            outcomes = iter(results)
            done: list[str] = []
            pending_error: BaseException | None = None
            for trace, e in zip((r.trace for r in released), events, strict=True):
                outcome = e if isinstance(e, Exception) else next(outcomes)
                if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                    raise outcome  # cancellation
                # Anything but an exception is the broker's acknowledgement (RecordMetadata).
                failure = outcome if isinstance(outcome, Exception) else None
                if failure is None:
                    assert not isinstance(e, Exception)
                    event = e[0]
                    # One line per trace only at debug level, unless it is worth a look.
                    notable = event.truncated or not event.complete
                    if notable or debug:
                        (stage.log.info if notable else stage.log.debug)(
                            "assembled",
                            trace_id=logic.loggable_trace_id(event.trace_id),
                            spans=len(event.trace.spans),
                            complete=event.complete,
                            truncated=event.truncated,
                        )
                elif is_transient(failure):
                    pending_error = failure
                    continue
                else:
                    await dead_letter_output(trace.trace_id, failure)
                done.append(trace.trace_id)
            assembler.forget(done)
            if pending_error is not None:
                await commit_safe_offsets()
                raise pending_error
        await commit_safe_offsets()
    if not assembler.full():
        room.set()


async def dead_letter_output(trace_id: str, error: Exception) -> None:
    """A released trace that can never be published (e.g. too large even truncated)."""
    await retry_transient(
        "ingest dead letter",
        lambda: stage.dead_letter_body(
            b"", error, trace_id=id_shaped(trace_id), source_topic=topics.NORMALIZED
        ),
        max_delay_s=None,
    )


async def commit_safe_offsets() -> None:
    consumer = raw.consumer
    if consumer is None:
        return
    assigned = {tp.partition for tp in consumer.assignment()}
    changed = {
        TopicPartition(topics.RAW, p): offset
        for p, offset in assembler.commit_offsets().items()
        if p in assigned and committed.get(p) != offset
    }
    if not changed:
        return
    try:
        await consumer.commit(changed)
    except (CommitFailedError, IllegalStateError) as error:
        stage.log.warning("commit_deferred", error=repr(error))
        return
    committed.update({tp.partition: offset for tp, offset in changed.items()})


async def flush_forever() -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        try:
            await flush()
        except Exception as error:
            # Nothing unpublished was forgotten or committed: the next tick tries the same
            # traces. Whatever the error, the flusher lives on (a dead flusher would leave
            # the handler waiting for room for ever while the process looks alive).
            event = "flush_retry" if is_transient(error) else "flush_failed"
            stage.log.warning(event, error_class=type(error).__name__)


flusher: asyncio.Task[None] | None = None


@app.after_startup
async def start_flusher() -> None:
    global flusher
    flusher = asyncio.create_task(flush_forever())


@app.on_shutdown
async def stop_flusher() -> None:
    if flusher is not None:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
