"""Dedupe keeps what it read of a bucket's patterns from one batch to the next, and still
decides as its in-memory twin does: when another instance writes the bucket meanwhile,
when the fixture index changes a kept pattern's coverage, and after a batch that failed."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from promoter.supervisor import Endpoints
from services.dedupe.logic import Observation
from services.dedupe.store import InMemoryPatternStore, PatternStore, PostgresPatternStore
from shared.db import connect_pool, migrate
from tests.support.patterns import record_in_batches, seen_again, slice_observations

pytestmark = pytest.mark.e2e

T = TypeVar("T")
AT = datetime(2026, 3, 2, tzinfo=UTC)
SIZE = 7


Instances = Callable[[], PatternStore]


def on_postgres_and_twin(
    infra: Endpoints, story: Callable[[Instances], Coroutine[Any, Any, T]], **store: Any
) -> tuple[T, T]:
    """The story told on PostgreSQL, where every instance it starts is a store of its own
    (made with ``store``) on one database, and to the twin, which plays every instance."""

    async def run() -> T:
        pool = await connect_pool(infra.database_url)
        try:
            await migrate(pool)
            return await story(lambda: PostgresPatternStore(pool, **store))
        finally:
            await pool.close()

    twin = InMemoryPatternStore()
    return asyncio.run(run()), asyncio.run(story(lambda: twin))


def copies(observations: list[Observation], tag: str) -> list[Observation]:
    """The same runs again under other trace ids: they join the patterns of the first."""
    return [
        replace(o, trace_id=f"{o.trace_id[:56]}-{tag}", content_sha256=f"{tag}{o.content_sha256}")
        for o in observations
    ]


async def record_batch(store: PatternStore, chunk: list[Observation]) -> list[Any]:
    async with store.batch(o.bucket for o in chunk) as session:
        await session.prefetch(chunk)
        facts = []
        for obs in chunk:
            recorded = await session.record(obs)
            facts.append((recorded, await session.pattern(recorded.pattern_id)))
    await store.mark_forwarded([o.trace_id for o in chunk])
    return facts


async def taking_turns(stores: list[PatternStore], observations: list[Observation]) -> list[Any]:
    """Two batches on one instance, then two on the other, over the same buckets: as when
    a rebalance moves a partition back and forth."""
    facts: list[Any] = []
    for i, start in enumerate(range(0, len(observations), SIZE)):
        store = stores[(i // 2) % len(stores)]
        facts += await record_batch(store, observations[start : start + SIZE])
    return facts


def test_a_bucket_written_by_another_instance_is_read_again_and_groups_as_the_twin_does(
    infra: Endpoints,
) -> None:
    first = slice_observations(secrets.token_hex(4))
    observations = [*first, *copies(first, "again")]

    async def two_instances(instance: Instances) -> list[Any]:
        return await taking_turns([instance(), instance()], observations)

    on_db, twin = on_postgres_and_twin(infra, two_instances)
    assert on_db == twin
    instance_of = [(k // SIZE // 2) % 2 for k in range(len(observations))]
    writers: dict[str, set[int]] = {}
    for (recorded, _), instance in zip(on_db, instance_of, strict=True):
        writers.setdefault(recorded.pattern_id, set()).add(instance)
    assert any(len(w) == 2 for w in writers.values()), "a pattern grew on both instances"


async def covered_between_batches(store: PatternStore, observations: list[Observation]) -> Any:
    """A batch, its busiest pattern covered by a fixture, a batch, the coverage withdrawn,
    a batch: each batch sees the coverage as it stands."""
    facts = await record_batch(store, observations[:SIZE])
    busiest = max(facts, key=lambda f: f[1].occurrences)[0].pattern_id
    await store.set_coverage(busiest, 1, AT)
    facts += await record_batch(store, copies(observations[:SIZE], "covered"))
    await store.clear_coverage(busiest)
    facts += await record_batch(store, copies(observations[:SIZE], "withdrawn"))
    return busiest, facts


def test_coverage_changed_between_batches_is_seen_by_a_kept_pattern_as_by_the_twin(
    infra: Endpoints,
) -> None:
    observations = slice_observations(secrets.token_hex(4))

    on_db, twin = on_postgres_and_twin(
        infra, lambda instance: covered_between_batches(instance(), observations)
    )
    assert on_db == twin
    busiest, on_db = on_db
    seen = [info.covered_by_fixture for _, info in on_db if info.pattern_id == busiest]
    assert True in seen and seen[-1] is False


class Abandoned(Exception):
    pass


async def with_an_abandoned_batch(store: PatternStore, observations: list[Observation]) -> Any:
    """A batch, then one that fails after recording its traces (rolled back), then the
    rest from where the failed one started, as its redelivery would."""
    facts = await record_batch(store, observations[:SIZE])
    if not isinstance(store, InMemoryPatternStore):  # the twin cannot roll back
        with pytest.raises(Abandoned):
            async with store.batch(o.bucket for o in observations) as session:
                await session.prefetch(observations[SIZE:])
                for obs in observations[SIZE:]:
                    await session.record(obs)
                raise Abandoned
    return facts + await record_in_batches(store, observations[SIZE:], SIZE)


def test_a_batch_rolled_back_leaves_nothing_kept_behind(infra: Endpoints) -> None:
    observations = slice_observations(secrets.token_hex(4))

    on_db, twin = on_postgres_and_twin(
        infra, lambda instance: with_an_abandoned_batch(instance(), observations)
    )
    assert on_db == twin
    assert all(recorded.first_delivery for recorded, _ in on_db[:-1]), "counted once"


def test_nothing_is_kept_between_batches_when_the_store_is_told_to_keep_nothing(
    infra: Endpoints,
) -> None:
    observations = slice_observations(secrets.token_hex(4))

    on_db, twin = on_postgres_and_twin(
        infra, lambda instance: record_in_batches(instance(), observations, SIZE), kept_patterns=0
    )
    assert on_db == twin


def seen_over_six_weeks(token: str) -> list[Observation]:
    """One request every other day for six weeks, then one from the first week arriving
    late: the trend windows move past the days kept from the first batches."""
    return seen_again(slice_observations(token)[0], [*(48 * k for k in range(21)), 30])


async def daily_series_in_batches(store: PatternStore, observations: list[Observation]) -> Any:
    facts = []
    for start in range(0, len(observations), 3):
        chunk = observations[start : start + 3]
        async with store.batch(o.bucket for o in chunk) as session:
            await session.prefetch(chunk)
            for obs in chunk:
                recorded = await session.record(obs)
                facts.append(await session.days(recorded.pattern_id, obs.agent, obs.seen_at.date()))
    return facts


def test_daily_series_kept_across_weeks_count_as_the_twin_does_late_traces_included(
    infra: Endpoints,
) -> None:
    observations = seen_over_six_weeks(secrets.token_hex(4))

    on_db, twin = on_postgres_and_twin(
        infra, lambda instance: daily_series_in_batches(instance(), observations)
    )
    assert on_db == twin
    late = on_db[-1]
    assert late and late[-1] != on_db[-2][-1], "the late trace's window ends weeks earlier"
