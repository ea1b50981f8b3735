"""The pass-through ceiling: five aiokafka hops, each its own process, doing what a stage
does minus the work.

- ``batched`` (the ceiling the report compares the pipeline with), as the batched stage
  kernel (shared/kernel.py) does: take a poll of up to ``stage_batch_records`` records
  (``getmany``, waiting at most ``stage_batch_timeout_ms``), hand every record to the
  producer without awaiting each, await all the acknowledgements together, then commit the
  batch's offsets.
- ``single``: the chain of before the batched kernel: consume one record (``getone``),
  publish it, wait for its acknowledgement, commit its offset.

Both use exactly the stages' producer and consumer settings (shared.kafka
``make_producer`` / ``make_consumer``: idempotent, acks=all, the linger and batch size of
the settings). Run one hop:
``python -m tools.bench.chain BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP [batched|single]``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared.kafka import make_consumer, make_producer, producer_options
from shared.settings import Settings

HOPS = 5
TOPIC_PREFIX = "bench.chain"
GROUP_PREFIX = "promote-bench.chain"
MODES = ("batched", "single")


def topic(i: int, variant: str = "") -> str:
    """Hop i reads topic(i) and writes topic(i + 1): five hops, six topics (the last one
    is where the fifth hop's output lands, as the fixture writer's writes leave the pipeline)."""
    return f"{TOPIC_PREFIX}{variant}.{i}"


def group(i: int, variant: str = "") -> str:
    return f"{GROUP_PREFIX}{variant}.{i}"


def wanted_groups(variant: str = "") -> dict[str, tuple[str, ...]]:
    return {group(i, variant): (topic(i, variant),) for i in range(HOPS)}


def stage_settings() -> dict[str, Any]:
    """What the report says about the hops' settings: the stages' own."""
    settings = Settings()
    return {
        **producer_options(settings),
        "stage_batch_records": settings.stage_batch_records,
        "stage_batch_timeout_ms": settings.stage_batch_timeout_ms,
    }


def _clients(
    bootstrap: str, source: str, group_id: str
) -> tuple[Settings, AIOKafkaConsumer, AIOKafkaProducer]:
    settings = Settings()
    consumer = make_consumer(
        settings, source, bootstrap_servers=bootstrap, group_id=group_id, client_id=group_id
    )
    producer = make_producer(settings, group_id, bootstrap_servers=bootstrap)
    return settings, consumer, producer


async def _until_stopped(stop: asyncio.Event, work: Any) -> Any:
    """``work`` (an awaitable), or None when ``stop`` is set first."""
    getter = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if getter not in done:
        getter.cancel()
        return None
    return getter.result()


async def hop(bootstrap: str, source: str, target: str, group_id: str, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    settings, consumer, producer = _clients(bootstrap, source, group_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            if mode == "single":
                record = await _until_stopped(stop, consumer.getone())
                if record is None:
                    break
                await producer.send_and_wait(
                    target, record.value, key=record.key, headers=list(record.headers) or None
                )
                tp = TopicPartition(record.topic, record.partition)
                await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
                continue
            batch = await consumer.getmany(
                timeout_ms=settings.stage_batch_timeout_ms,
                max_records=settings.stage_batch_records,
            )
            if not batch:
                continue
            deliveries = [
                await producer.send(target, r.value, key=r.key, headers=list(r.headers) or None)
                for records in batch.values()
                for r in records
            ]
            await asyncio.gather(*deliveries)
            await consumer.commit(
                {tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batch.items()}
            )
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str]) -> None:
    bootstrap, source, target, group_id, *mode = argv
    asyncio.run(hop(bootstrap, source, target, group_id, mode[0] if mode else "batched"))


if __name__ == "__main__":
    main(sys.argv[1:])
