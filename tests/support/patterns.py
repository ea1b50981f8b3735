"""Real runs as dedupe observations, and recording them batch by batch as the dedupe stage
does: the pattern store's parity tests share them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from services.dedupe import logic as dedupe
from services.dedupe.logic import Observation
from services.dedupe.store import PatternStore
from services.ingest.decode import decode_payload
from shared.features import derive_features
from tools.corpus.real.slice import read_slice


def slice_observations(token: str) -> list[Observation]:
    """The committed real runs, each under a trace id and agent of this test's own, so
    the shared store holds nothing else in their buckets."""
    observations = []
    for document, _label in read_slice():
        (trace,) = decode_payload(json.dumps(document).encode(), "application/json")
        mine = trace.model_copy(
            update={
                "trace_id": f"{token}-{trace.trace_id}"[:64],
                "agent_name": f"{trace.agent_name}-{token}",
            }
        )
        observations.append(dedupe.observe(mine, derive_features(mine)))
    return observations


def seen_again(first: Observation, hours: list[int]) -> list[Observation]:
    """The same run seen again, as other traces, so many hours after the first."""
    return [
        replace(
            first,
            trace_id=f"{first.trace_id[:50]}-{k}",
            content_sha256=f"{k:064x}",
            seen_at=first.seen_at + timedelta(hours=h),
        )
        for k, h in enumerate(hours)
    ]


async def record_in_batches(
    store: PatternStore, observations: list[Observation], size: int
) -> list[Any]:
    """As the dedupe stage records: several traces in one session (one transaction)."""
    facts: list[Any] = []
    stream = [*observations, observations[0]]  # the last one is a redelivery
    for start in range(0, len(stream), size):
        chunk = stream[start : start + size]
        async with store.batch(o.bucket for o in chunk) as session:
            await session.prefetch(chunk)
            for obs in chunk:
                recorded = await session.record(obs)
                facts.append((recorded, await session.pattern(recorded.pattern_id)))
        await store.mark_forwarded([o.trace_id for o in chunk])
    return facts
