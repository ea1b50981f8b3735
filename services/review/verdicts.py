"""Giving a verdict: published on traces.reviewed (keyed by pattern id) and acknowledged by
the broker first, then recorded in the review store. A crash in between leaves the cases
in the queue; giving the verdict again yields the same verdict id, which every consumer
recognises. Shared by the web app and the CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from services.review.logic import retire_verdict
from services.review.store import ReviewStore
from shared import topics
from shared.events import CaseReviewed
from shared.kafka import make_producer
from shared.settings import Settings
from shared.stage import to_bytes

Publish = Callable[[bytes, bytes], Awaitable[None]]


async def retirement(
    store: ReviewStore, fixture_id: str, reason: str, reviewer: str, at: datetime
) -> CaseReviewed | None:
    """The RETIRE verdict for a fixture of the store (None: no such fixture), naming the
    trace its current version came from. Raises InvalidVerdict without a reason."""
    summary = next((f for f in await store.all_fixtures() if f.fixture_id == fixture_id), None)
    if summary is None:
        return None
    versions = {v.version: v for v in await store.fixture_versions(fixture_id)}
    if summary.version not in versions:
        return None
    source = versions[summary.version].source_trace_id
    return retire_verdict(fixture_id, summary.pattern_id, source, reason, reviewer, at)


async def give(store: ReviewStore, publish: Publish, verdict: CaseReviewed) -> None:
    await publish(to_bytes(verdict), verdict.pattern_id.encode())
    await store.record_verdict(verdict)


class KafkaVerdicts:
    """An idempotent producer (acks=all) for traces.reviewed; ``publish`` returns once the
    broker has the record."""

    def __init__(self, settings: Settings) -> None:
        self._producer = make_producer(settings, "review")

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, body: bytes, key: bytes) -> None:
        await self._producer.send_and_wait(topics.REVIEWED, body, key=key)
