"""The pass-through ceiling: five aiokafka hops, each its own process, doing what a stage
does minus the work: consume one record, publish it to the next topic, wait for the
broker's acknowledgement, then commit the input offset (FastStream's default subscriber
reads with getone() and commits after each handled message; the producer settings are the
stages'). Run one hop: ``python -m bench.chain BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP [LINGER_MS]``
(the stages' linger is 5 ms; the chain also runs with 0 to show what that costs).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

HOPS = 5
TOPIC_PREFIX = "bench.chain"
GROUP_PREFIX = "promote-bench.chain"


def topic(i: int, variant: str = "") -> str:
    """Hop i reads topic(i) and writes topic(i + 1): five hops, six topics (the last one
    is where the fifth hop's output lands, as the fixture writer's writes leave the pipeline)."""
    return f"{TOPIC_PREFIX}{variant}.{i}"


def group(i: int, variant: str = "") -> str:
    return f"{GROUP_PREFIX}{variant}.{i}"


def wanted_groups(variant: str = "") -> dict[str, tuple[str, ...]]:
    return {group(i, variant): (topic(i, variant),) for i in range(HOPS)}


async def hop(bootstrap: str, source: str, target: str, group_id: str, linger_ms: int = 5) -> None:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=group_id,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        client_id=group_id,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            getter = asyncio.ensure_future(consumer.getone())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            stopper.cancel()
            record = getter.result()
            await producer.send_and_wait(
                target, record.value, key=record.key, headers=list(record.headers) or None
            )
            tp = TopicPartition(record.topic, record.partition)
            await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str]) -> None:
    bootstrap, source, target, group_id, *linger = argv
    asyncio.run(hop(bootstrap, source, target, group_id, int(linger[0]) if linger else 5))


if __name__ == "__main__":
    main(sys.argv[1:])
