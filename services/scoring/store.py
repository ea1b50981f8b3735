"""Scoring's budget state: asyncpg adapter and in-memory twin behind one Protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import asyncpg

from services.scoring.logic import BudgetState


class BudgetStore(Protocol):
    async def budget(
        self,
        trace_id: str,
        pattern_id: str,
        policy_version: str,
        day: date,
        *,
        count_today: bool = True,
    ) -> BudgetState: ...
    async def record_promotion(
        self, trace_id: str, pattern_id: str, policy_version: str, day: date
    ) -> None: ...


class PostgresBudgetStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def budget(
        self,
        trace_id: str,
        pattern_id: str,
        policy_version: str,
        day: date,
        *,
        count_today: bool = True,
    ) -> BudgetState:
        # The trace's own earlier promotion is excluded: a redelivery decides as before.
        if not count_today:
            # Counting a day's promotions grows with the store (profiling at 1M patterns):
            # a policy without a daily cap never reads the count, so it is not taken.
            for_pattern = await self._pool.fetchval(
                """SELECT count(*) FROM scoring_promotions
                   WHERE policy_version = $3 AND trace_id <> $1 AND pattern_id = $2""",
                trace_id,
                pattern_id,
                policy_version,
            )
            return BudgetState(promoted_for_pattern=for_pattern, promoted_today=0)
        row = await self._pool.fetchrow(
            """SELECT
                 count(*) FILTER (WHERE pattern_id = $2) AS for_pattern,
                 count(*) FILTER (WHERE day = $4) AS today
               FROM scoring_promotions
               WHERE policy_version = $3 AND trace_id <> $1
                 AND (pattern_id = $2 OR day = $4)""",
            trace_id,
            pattern_id,
            policy_version,
            day,
        )
        assert row is not None
        return BudgetState(promoted_for_pattern=row["for_pattern"], promoted_today=row["today"])

    async def record_promotion(
        self, trace_id: str, pattern_id: str, policy_version: str, day: date
    ) -> None:
        await self._pool.execute(
            """INSERT INTO scoring_promotions (trace_id, policy_version, pattern_id, day)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            trace_id,
            policy_version,
            pattern_id,
            day,
        )


@dataclass
class InMemoryBudgetStore:
    promotions: dict[tuple[str, str], tuple[str, date]] = field(default_factory=dict)

    async def budget(
        self,
        trace_id: str,
        pattern_id: str,
        policy_version: str,
        day: date,
        *,
        count_today: bool = True,
    ) -> BudgetState:
        others = [
            v for (t, p), v in self.promotions.items() if p == policy_version and t != trace_id
        ]
        return BudgetState(
            promoted_for_pattern=sum(1 for pid, _ in others if pid == pattern_id),
            promoted_today=sum(1 for _, d in others if d == day) if count_today else 0,
        )

    async def record_promotion(
        self, trace_id: str, pattern_id: str, policy_version: str, day: date
    ) -> None:
        self.promotions.setdefault((trace_id, policy_version), (pattern_id, day))
