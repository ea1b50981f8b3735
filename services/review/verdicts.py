"""Giving a verdict: published on traces.reviewed (keyed by pattern id) and acknowledged by
the broker first, then recorded in the review store. A crash in between leaves the cases
in the queue; giving the verdict again yields the same verdict id, which every consumer
recognises. Shared by the web app and the CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from services.review.store import ReviewStore
from shared import topics
from shared.events import CaseReviewed
from shared.kafka import client_options, max_request_bytes
from shared.settings import Settings
from shared.stage import to_bytes

Publish = Callable[[bytes, bytes], Awaitable[None]]


async def give(store: ReviewStore, publish: Publish, verdict: CaseReviewed) -> None:
    await publish(to_bytes(verdict), verdict.pattern_id.encode())
    await store.record_verdict(verdict)


class KafkaVerdicts:
    """An idempotent producer (acks=all) for traces.reviewed; ``publish`` returns once the
    broker has the record."""

    def __init__(self, settings: Settings) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers(),
            acks="all",
            enable_idempotence=True,
            max_request_size=max_request_bytes(settings),
            **client_options(settings),
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, body: bytes, key: bytes) -> None:
        await self._producer.send_and_wait(topics.REVIEWED, body, key=key)
