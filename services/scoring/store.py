"""Scoring's budget state: asyncpg adapter and in-memory twin behind one Protocol.

Stores return facts for a whole batch (promotions already spent by other traces, per
pattern and per day); the fold in ``step.py`` decides. A batch's own traces are left out
of the facts, so a redelivered batch re-decides exactly as it first did."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import asyncpg

from services.scoring.logic import BudgetFacts, BudgetState


@dataclass(frozen=True)
class Promotion:
    trace_id: str
    pattern_id: str
    policy_version: str
    day: date


class BudgetStore(Protocol):
    async def facts(
        self,
        trace_ids: Collection[str],
        pattern_ids: Collection[str],
        days: Collection[date],
        policy_version: str,
    ) -> BudgetFacts: ...
    async def record_promotions(self, promotions: Sequence[Promotion]) -> None: ...


class SingleTrace:
    """One trace's budget, through the batch methods (the rule stays in one place)."""

    async def budget(
        self: BudgetStore,
        trace_id: str,
        pattern_id: str,
        policy_version: str,
        day: date,
        *,
        count_today: bool = True,
    ) -> BudgetState:
        found = await self.facts(
            [trace_id], [pattern_id], [day] if count_today else [], policy_version
        )
        return BudgetState(
            promoted_for_pattern=found.for_pattern.get(pattern_id, 0),
            promoted_today=found.on_day.get(day, 0),
        )

    async def record_promotion(
        self: BudgetStore, trace_id: str, pattern_id: str, policy_version: str, day: date
    ) -> None:
        await self.record_promotions([Promotion(trace_id, pattern_id, policy_version, day)])


class PostgresBudgetStore(SingleTrace):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def facts(
        self,
        trace_ids: Collection[str],
        pattern_ids: Collection[str],
        days: Collection[date],
        policy_version: str,
    ) -> BudgetFacts:
        # Two indexed counts for the whole batch. The day count is taken only for the days
        # asked: a policy without a daily cap asks none (it grows with the store).
        async with self._pool.acquire() as conn:
            by_pattern = await conn.fetch(
                """SELECT pattern_id, count(*) AS n FROM scoring_promotions
                   WHERE policy_version = $1 AND pattern_id = ANY($2::text[])
                     AND NOT trace_id = ANY($3::text[])
                   GROUP BY pattern_id""",
                policy_version,
                sorted(set(pattern_ids)),
                list(trace_ids),
            )
            by_day = (
                await conn.fetch(
                    """SELECT day, count(*) AS n FROM scoring_promotions
                       WHERE policy_version = $1 AND day = ANY($2::date[])
                         AND NOT trace_id = ANY($3::text[])
                       GROUP BY day""",
                    policy_version,
                    sorted(set(days)),
                    list(trace_ids),
                )
                if days
                else []
            )
        return BudgetFacts(
            for_pattern={r["pattern_id"]: r["n"] for r in by_pattern},
            on_day={r["day"]: r["n"] for r in by_day},
        )

    async def record_promotions(self, promotions: Sequence[Promotion]) -> None:
        if not promotions:
            return
        await self._pool.execute(
            """INSERT INTO scoring_promotions (trace_id, policy_version, pattern_id, day)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[])
               ON CONFLICT DO NOTHING""",
            [p.trace_id for p in promotions],
            [p.policy_version for p in promotions],
            [p.pattern_id for p in promotions],
            [p.day for p in promotions],
        )


@dataclass
class InMemoryBudgetStore(SingleTrace):
    promotions: dict[tuple[str, str], tuple[str, date]] = field(default_factory=dict)

    async def facts(
        self,
        trace_ids: Collection[str],
        pattern_ids: Collection[str],
        days: Collection[date],
        policy_version: str,
    ) -> BudgetFacts:
        excluded, patterns, wanted_days = set(trace_ids), set(pattern_ids), set(days)
        others = [
            v for (t, p), v in self.promotions.items() if p == policy_version and t not in excluded
        ]
        return BudgetFacts(
            for_pattern=dict(Counter(pid for pid, _ in others if pid in patterns)),
            on_day=dict(Counter(d for _, d in others if d in wanted_days)),
        )

    async def record_promotions(self, promotions: Sequence[Promotion]) -> None:
        for p in promotions:
            self.promotions.setdefault((p.trace_id, p.policy_version), (p.pattern_id, p.day))
