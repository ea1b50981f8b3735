"""Ingest shell: traces.raw → canonical, complete traces on traces.normalized."""

from __future__ import annotations

from faststream import AckPolicy, FastStream
from faststream.kafka.annotations import KafkaMessage

from services.ingest import logic
from services.ingest.decode import decode_payload
from shared import __version__, topics
from shared.kafka import make_broker
from shared.log import configure_logging
from shared.settings import get_settings
from shared.stage import Stage, to_bytes

settings = get_settings()
configure_logging("ingest", settings.log_level)
broker = make_broker(settings, "ingest")
app = FastStream(broker)
stage = Stage(broker, "ingest", __version__)
normalized = broker.publisher(topics.NORMALIZED)


@broker.subscriber(
    topics.RAW,
    group_id=topics.consumer_group("ingest"),
    ack_policy=AckPolicy.NACK_ON_ERROR,
    auto_offset_reset="earliest",
)
@stage.guarded
async def on_raw(msg: KafkaMessage) -> None:
    content_type = msg.headers.get("content-type") or msg.content_type
    traces = decode_payload(msg.body, content_type, max_bytes=settings.ingest_max_body_bytes)
    for event in logic.normalize(traces, stage.stamp()):
        await normalized.publish(to_bytes(event), key=logic.partition_key(event).encode())
