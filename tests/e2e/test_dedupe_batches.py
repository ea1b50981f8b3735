"""Dedupe's batch session on the real database: what happens when another instance
records one of the batch's traces between the batch's load and its write."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace

import pytest

from promoter.supervisor import Endpoints
from services.dedupe.pg_journal import ConcurrentRecording
from services.dedupe.store import PostgresPatternStore
from shared.db import connect_pool, migrate
from shared.errors import is_transient
from tests.e2e.test_store_twins import slice_observations

pytestmark = pytest.mark.e2e


def test_a_trace_recorded_meanwhile_by_another_instance_rolls_the_batch_back_and_the_retry_counts_it_once(  # noqa: E501
    infra: Endpoints,
) -> None:
    observations = slice_observations(secrets.token_hex(4))
    first = observations[0]
    # The same trace id with other content in another bucket: another instance's lock.
    other = next(o for o in observations if o.bucket != first.bucket)
    elsewhere = replace(other, trace_id=first.trace_id)

    async def story() -> tuple[BaseException | None, bool, int, int]:
        pool = await connect_pool(infra.database_url)
        try:
            await migrate(pool)
            store = PostgresPatternStore(pool)
            failure: BaseException | None = None
            try:
                async with store.batch([first.bucket]) as session:
                    await session.prefetch([first])
                    # Another instance gets there between this batch's load and its write.
                    await store.record(elsewhere)
                    await session.record(first)
            except ConcurrentRecording as error:
                failure = error
            # The retry, as the kernel makes it: the whole batch again.
            async with store.batch([first.bucket]) as session:
                await session.prefetch([first])
                again = await session.record(first)
            rows = await pool.fetchval(
                "SELECT count(*) FROM dedupe_traces WHERE trace_id = $1", first.trace_id
            )
            occurrences = await pool.fetchval(
                "SELECT coalesce(sum(occurrences), 0) FROM patterns WHERE pattern_id = $1",
                again.pattern_id,
            )
            return failure, again.first_delivery, rows, occurrences
        finally:
            await pool.close()

    failure, first_delivery, rows, occurrences = asyncio.run(story())
    assert isinstance(failure, ConcurrentRecording)
    assert is_transient(failure), "the kernel retries the batch instead of dead-lettering it"
    assert not first_delivery, "the retry sees the trace the other instance recorded"
    assert rows == 1
    assert occurrences == 1, "the rolled-back batch added nothing to the pattern's count"
