"""Scoring's budget store on the real database answers as its in-memory twin does, with
and without counting the day's promotions."""

from __future__ import annotations

import asyncio
import secrets
from datetime import date

import pytest

from promoter.supervisor import Endpoints
from services.scoring.logic import BudgetState
from services.scoring.store import BudgetStore, InMemoryBudgetStore, PostgresBudgetStore
from shared.db import connect_pool

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
