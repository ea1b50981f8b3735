"""Stores on the real database answer as their in-memory twins do: scoring's budgets (with
and without counting the day's promotions), and the fixture store withdrawing, reverting,
retiring and restoring fixtures."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from promoter.supervisor import Endpoints
from services.fixture_writer.logic import build_fixtures
from services.fixture_writer.store import (
    FixtureStore,
    InMemoryFixtureStore,
    PostgresFixtureStore,
)
from services.scoring.logic import BudgetState
from services.scoring.store import BudgetStore, InMemoryBudgetStore, PostgresBudgetStore
from shared.db import connect_pool
from shared.events import Decision, Trace, TraceScored
from tests.support.builders import refund_trace, scored

pytestmark = pytest.mark.e2e

DAY = date(2026, 3, 2)
OTHER_DAY = date(2026, 3, 3)


async def promotions_then_budgets(store: BudgetStore, version: str) -> list[BudgetState]:
    for trace, pattern, day in [
        ("t1", "p1", DAY),
        ("t2", "p1", DAY),
        ("t3", "p2", DAY),
        ("t4", "p1", OTHER_DAY),
        ("t1", "p1", DAY),  # a redelivery records nothing new
    ]:
        await store.record_promotion(trace, pattern, version, day)
    return [
        await store.budget("t5", "p1", version, DAY),
        await store.budget("t1", "p1", version, DAY),  # its own promotion is not counted
        await store.budget("t5", "p1", version, DAY, count_today=False),
        await store.budget("t5", "p3", version, OTHER_DAY),
        await store.budget("t5", "p1", "another-policy", DAY),
    ]


def test_the_postgres_budget_store_counts_as_the_in_memory_one_does(infra: Endpoints) -> None:
    version = f"test-{secrets.token_hex(4)}"

    async def on_postgres() -> list[BudgetState]:
        pool = await connect_pool(infra.database_url)
        try:
            return await promotions_then_budgets(PostgresBudgetStore(pool), version)
        finally:
            await pool.close()

    real = asyncio.run(on_postgres())
    twin = asyncio.run(promotions_then_budgets(InMemoryBudgetStore(), version))
    assert real == twin
    assert [(b.promoted_for_pattern, b.promoted_today) for b in real] == [
        (3, 3),
        (2, 2),
        (3, 0),
        (0, 1),
        (0, 0),
    ]


AT = datetime(2026, 3, 2, tzinfo=UTC)


Written_ = tuple[int, bool, bool]  # version, created, restored
Changes = tuple[list[tuple[str, str, int]], list[tuple[str, int]]]  # changed, active


@dataclass(frozen=True)
class Story:
    promoted: list[list[Written_]]
    withdrawn: list[Changes]
    restored: list[Written_]


async def _promote(store: FixtureStore, event: TraceScored) -> list[Written_]:
    await store.record_decision(event, AT)
    written = [await store.write(d, event, AT) for d in build_fixtures(event)]
    return [(w.version, w.created, w.restored) for w in written]


async def _withdraw(store: FixtureStore, event: TraceScored) -> Changes:
    await store.record_decision(event, AT)
    got = await store.withdraw(event, AT)
    return sorted(got.changed), sorted(got.active)


async def withdrawals(store: FixtureStore, nonce: str) -> Story:
    """Two traces of one pattern promoted under policy A; B keeps the first and withdraws
    the second (twice: a redelivery), then withdraws the first too; a replay under A again
    restores the bodies."""
    first = refund_trace(f"{nonce}a".ljust(32, "0"), 120)
    second = refund_trace(f"{nonce}b".ljust(32, "0"), 999)
    policy_b = f"B-{nonce}"

    def decided(trace: Trace, policy: str, decision: Decision) -> TraceScored:
        return scored(trace, policy_version=policy, pattern_id=f"p-{nonce}", decision=decision)

    promoted = [
        await _promote(store, decided(first, "A", Decision.PROMOTE)),
        await _promote(store, decided(second, "A", Decision.PROMOTE)),
    ]
    await store.record_decision(decided(first, policy_b, Decision.PROMOTE), AT)
    withdrawn = [
        await _withdraw(store, decided(t, policy_b, Decision.REJECT))
        for t in (second, second, first)
    ]
    restored = await _promote(store, decided(second, "A", Decision.PROMOTE))
    return Story(promoted, withdrawn, restored)


def test_the_postgres_fixture_store_withdraws_as_the_in_memory_one_does(infra: Endpoints) -> None:
    nonce = secrets.token_hex(4)

    async def on_postgres() -> Story:
        pool = await connect_pool(infra.database_url)
        try:
            return await withdrawals(PostgresFixtureStore(pool), nonce)
        finally:
            await pool.close()

    real = asyncio.run(on_postgres())
    assert real == asyncio.run(withdrawals(InMemoryFixtureStore(), nonce))
    second, again, first = real.withdrawn
    assert {action for _, action, _ in second[0]} == {"reverted"}, "the first trace stands"
    assert again == ([], second[1]), "a redelivered withdrawal changes nothing"
    assert {action for _, action, _ in first[0]} == {"retired"}
    assert first[1] == [], "nothing of the pattern is left active"
    assert real.restored and all(restored for _, _, restored in real.restored)
