"""Ingest shell: traces.raw → complete canonical traces on traces.normalized.

Spans are buffered by trace id (services/ingest/assembly.py) and the raw offset of a
partition is committed only up to the oldest message a buffered trace still needs: a
crash or a rebalance loses no span. Offsets are therefore committed here, by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import cast

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from faststream import AckPolicy, FastStream
from faststream.kafka.annotations import KafkaMessage

from services.ingest import logic
from services.ingest.assembly import Assembler
from services.ingest.decode import decode_payload
from shared import __version__, topics
from shared.kafka import make_broker
from shared.log import configure_logging
from shared.settings import get_settings
from shared.stage import TRANSIENT_ERRORS, Stage, now, to_bytes

FLUSH_INTERVAL_S = 0.2

settings = get_settings()
logger = configure_logging("ingest", settings.log_level)
broker = make_broker(settings, "ingest", logger)
app = FastStream(broker, logger=logger)
stage = Stage(broker, "ingest", __version__)
normalized = broker.publisher(topics.NORMALIZED)
assembler = Assembler(
    quiet=timedelta(milliseconds=settings.assembly_quiet_ms),
    max_wait=timedelta(milliseconds=settings.assembly_max_wait_ms),
    max_traces=settings.assembly_max_traces,
    max_bytes=settings.assembly_max_bytes,
)
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


raw = stage.subscriber(topics.RAW, ack_policy=AckPolicy.MANUAL, listener=ReleaseRevokedPartitions())


@raw
async def on_raw(msg: KafkaMessage) -> None:
    record = single_record(msg)
    source = (record.partition, record.offset)
    while assembler.full():  # back-pressure: stop reading until the flusher makes room
        room.clear()
        await room.wait()
    content_type = msg.headers.get("content-type") or msg.content_type
    try:
        traces = decode_payload(msg.body, content_type, max_bytes=settings.ingest_max_body_bytes)
    except Exception as error:
        await dead_letter_until_acknowledged(msg, error)
        async with buffer_lock:
            assembler.mark_consumed(source)
        return
    async with buffer_lock:
        assembler.add(traces, source, len(msg.body), now())
    stage.log.info(
        "buffered",
        trace_ids=[logic.loggable_trace_id(t.trace_id) for t in traces],
        offset=record.offset,
    )


def single_record(msg: KafkaMessage) -> ConsumerRecord[bytes, bytes]:
    # The subscriber is not a batch one: every message wraps exactly one record.
    return cast("ConsumerRecord[bytes, bytes]", msg.raw_message)


async def dead_letter_until_acknowledged(msg: KafkaMessage, error: Exception) -> None:
    """The offset will be committed past this message, so its dead letter must land."""
    while True:
        try:
            trace_id = logic.trace_id_hint(single_record(msg).key)
            await stage.dead_letter(msg, error, trace_id=trace_id)
            return
        except TRANSIENT_ERRORS as failure:
            stage.log.warning("dead_letter_retry", error=repr(failure))
            await asyncio.sleep(1.0)


async def flush() -> None:
    async with buffer_lock:
        released = assembler.release(now())
        if released:
            stamp = stage.stamp()
            events = logic.normalize([r.trace for r in released], stamp)
            await asyncio.gather(
                *(
                    normalized.publish(to_bytes(e), key=logic.partition_key(e).encode())
                    for e in events
                )
            )
            assembler.forget([e.trace_id for e in events])
            for e in events:
                stage.log.info(
                    "assembled",
                    trace_id=logic.loggable_trace_id(e.trace_id),
                    spans=len(e.trace.spans),
                    complete=e.complete,
                )
        await commit_safe_offsets()
    if not assembler.full():
        room.set()


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
        except TRANSIENT_ERRORS as error:
            # Nothing was forgotten or committed: the next tick tries the same traces.
            stage.log.warning("flush_retry", error=repr(error))


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
