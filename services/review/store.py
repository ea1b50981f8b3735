"""Review state: the held cases and the verdicts on them. An asyncpg adapter and an
in-memory twin behind one Protocol (the twin serves the web tests and a demo)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import asyncpg

from services.review.logic import Case, status_after
from shared.db import jsonb
from shared.events import CaseReviewed, TraceScored
from shared.series import pattern_days
from shared.trends import DayCount


@dataclass(frozen=True)
class FixtureSummary:
    fixture_id: str
    kind: str
    pattern_id: str
    version: int
    status: str
    agent: str
    expected: tuple[str, ...] = ()


@dataclass(frozen=True)
class FixtureVersion:
    fixture_id: str
    version: int
    body: dict[str, Any]
    created_at: datetime
    policy_version: str
    source_trace_id: str


class ReviewStore(Protocol):
    async def add_case(self, case: Case) -> bool: ...
    async def cases(self) -> list[Case]: ...
    async def case(self, trace_id: str) -> Case | None: ...
    async def record_verdict(self, verdict: CaseReviewed) -> None: ...
    async def verdicts(self, limit: int = 50) -> list[dict[str, Any]]: ...
    async def daily_occurrences(self, pattern_id: str, days: int, now: datetime) -> list[int]: ...
    async def pattern_days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]: ...
    async def fixtures_of_agent(self, agent: str, limit: int = 5) -> list[FixtureSummary]: ...
    async def all_fixtures(self) -> list[FixtureSummary]: ...
    async def fixture_versions(self, fixture_id: str) -> list[FixtureVersion]: ...


def _case(row: asyncpg.Record) -> Case:
    return Case(
        trace_id=row["trace_id"],
        pattern_id=row["pattern_id"],
        agent=row["agent"],
        held_at=row["held_at"],
        total=row["total"],
        risk=row["risk"],
        policy_version=row["policy_version"],
        event=TraceScored.model_validate_json(row["event"]),
        status=row["status"],
        snoozed_until=row["snoozed_until"],
    )


def _verdict_row(v: CaseReviewed) -> dict[str, Any]:
    return {
        "verdict_id": v.verdict_id,
        "pattern_id": v.pattern_id,
        "verdict": v.verdict.value,
        "reviewer": v.reviewer,
        "reason": v.reason,
        "expected": v.expected.model_dump(mode="json") if v.expected else None,
        "kinds": list(v.kinds),
        "trace_ids": list(v.trace_ids),
        "whole_pattern": v.whole_pattern,
        "at": v.at,
    }


class PostgresReviewStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add_case(self, case: Case) -> bool:
        added = await self._pool.fetchval(
            """INSERT INTO review_cases (trace_id, pattern_id, agent, held_at, total, risk,
                                         policy_version, event)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
               ON CONFLICT (trace_id) DO NOTHING RETURNING 1""",
            case.trace_id,
            case.pattern_id,
            case.agent,
            case.held_at,
            case.total,
            case.risk,
            case.policy_version,
            case.event.model_dump_json(),
        )
        return bool(added)

    async def cases(self) -> list[Case]:
        rows = await self._pool.fetch(
            "SELECT * FROM review_cases WHERE status IN ('held', 'snoozed') ORDER BY held_at"
        )
        return [_case(r) for r in rows]

    async def case(self, trace_id: str) -> Case | None:
        row = await self._pool.fetchrow("SELECT * FROM review_cases WHERE trace_id = $1", trace_id)
        return _case(row) if row else None

    async def record_verdict(self, verdict: CaseReviewed) -> None:
        """Once per verdict id; the cases it judges leave the queue (or sleep)."""
        row = _verdict_row(verdict)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO review_verdicts (verdict_id, pattern_id, verdict, reviewer,
                       reason, expected, kinds, trace_ids, whole_pattern, at)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)
                   ON CONFLICT (verdict_id) DO NOTHING""",
                row["verdict_id"],
                row["pattern_id"],
                row["verdict"],
                row["reviewer"],
                row["reason"],
                jsonb(row["expected"]) if row["expected"] is not None else None,
                row["kinds"],
                row["trace_ids"],
                row["whole_pattern"],
                row["at"],
            )
            await conn.execute(
                """UPDATE review_cases SET status = $2, verdict_id = $3, snoozed_until = $4
                   WHERE trace_id = ANY($1::text[])""",
                list(verdict.trace_ids),
                status_after(verdict.verdict),
                verdict.verdict_id,
                verdict.snoozed_until,
            )

    async def verdicts(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT * FROM review_verdicts ORDER BY at DESC, verdict_id LIMIT $1", limit
        )
        return [
            {**dict(r), "expected": json.loads(r["expected"]) if r["expected"] else None}
            for r in rows
        ]

    async def pattern_days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]:
        return await pattern_days(self._pool, pattern_id, agent, until)

    async def daily_occurrences(self, pattern_id: str, days: int, now: datetime) -> list[int]:
        """Occurrences per day over the ``days`` up to the pattern's latest day (traces carry
        their own times, which may be long before now), never past now."""
        rows = await self._pool.fetch(
            """SELECT start, sum(occurrences) AS n FROM pattern_series
               WHERE pattern_id = $1 AND grain = 'day' AND start <= $2
               GROUP BY start ORDER BY start DESC LIMIT $3""",
            pattern_id,
            now,
            days,
        )
        if not rows:
            return []
        by_day = {r["start"].date(): int(r["n"]) for r in rows}
        last = max(by_day)
        return [by_day.get(last - timedelta(days=days - 1 - i), 0) for i in range(days)]

    async def fixtures_of_agent(self, agent: str, limit: int = 5) -> list[FixtureSummary]:
        rows = await self._pool.fetch(
            """SELECT f.fixture_id, f.kind, f.pattern_id, f.current_version, f.status,
                      v.body -> 'expected_behaviour' AS expected
               FROM fixtures f JOIN fixture_versions v
                 ON v.fixture_id = f.fixture_id AND v.version = f.current_version
               WHERE v.body -> 'agent' ->> 'name' = $1 AND f.status = 'active'
               ORDER BY f.updated_at DESC LIMIT $2""",
            agent,
            limit,
        )
        return [
            FixtureSummary(
                fixture_id=r["fixture_id"],
                kind=r["kind"],
                pattern_id=r["pattern_id"],
                version=r["current_version"],
                status=r["status"],
                agent=agent,
                expected=tuple(json.loads(r["expected"] or "[]")),
            )
            for r in rows
        ]

    async def all_fixtures(self) -> list[FixtureSummary]:
        rows = await self._pool.fetch(
            """SELECT f.fixture_id, f.kind, f.pattern_id, f.current_version, f.status,
                      v.body -> 'agent' ->> 'name' AS agent,
                      v.body -> 'expected_behaviour' AS expected
               FROM fixtures f JOIN fixture_versions v
                 ON v.fixture_id = f.fixture_id AND v.version = f.current_version
               ORDER BY f.updated_at DESC, f.fixture_id"""
        )
        return [
            FixtureSummary(
                fixture_id=r["fixture_id"],
                kind=r["kind"],
                pattern_id=r["pattern_id"],
                version=r["current_version"],
                status=r["status"],
                agent=r["agent"] or "",
                expected=tuple(json.loads(r["expected"] or "[]")),
            )
            for r in rows
        ]

    async def fixture_versions(self, fixture_id: str) -> list[FixtureVersion]:
        rows = await self._pool.fetch(
            """SELECT fixture_id, version, body, created_at, policy_version, source_trace_id
               FROM fixture_versions WHERE fixture_id = $1 ORDER BY version""",
            fixture_id,
        )
        return [
            FixtureVersion(
                r["fixture_id"],
                r["version"],
                json.loads(r["body"]),
                r["created_at"],
                r["policy_version"],
                r["source_trace_id"],
            )
            for r in rows
        ]


@dataclass
class MemoryReviewStore:
    stored: dict[str, Case] = field(default_factory=dict)
    given: dict[str, CaseReviewed] = field(default_factory=dict)
    series: dict[str, list[int]] = field(default_factory=dict)
    days: dict[str, list[DayCount]] = field(default_factory=dict)
    fixtures: list[FixtureSummary] = field(default_factory=list)
    versions: dict[str, list[FixtureVersion]] = field(default_factory=dict)

    async def add_case(self, case: Case) -> bool:
        if case.trace_id in self.stored:
            return False
        self.stored[case.trace_id] = case
        return True

    async def cases(self) -> list[Case]:
        open_ = [c for c in self.stored.values() if c.status in ("held", "snoozed")]
        return sorted(open_, key=lambda c: c.held_at)

    async def case(self, trace_id: str) -> Case | None:
        return self.stored.get(trace_id)

    async def record_verdict(self, verdict: CaseReviewed) -> None:
        self.given.setdefault(verdict.verdict_id, verdict)
        for trace_id in verdict.trace_ids:
            if trace_id in self.stored:
                self.stored[trace_id] = replace(
                    self.stored[trace_id],
                    status=status_after(verdict.verdict),
                    snoozed_until=verdict.snoozed_until,
                )

    async def verdicts(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = [_verdict_row(v) for v in self.given.values()]
        return sorted(rows, key=lambda r: (r["at"], r["verdict_id"]), reverse=True)[:limit]

    async def pattern_days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]:
        return [d for d in self.days.get(pattern_id, []) if d.day <= until]

    async def daily_occurrences(self, pattern_id: str, days: int, now: datetime) -> list[int]:
        return self.series.get(pattern_id, [])[-days:]

    async def fixtures_of_agent(self, agent: str, limit: int = 5) -> list[FixtureSummary]:
        return [f for f in self.fixtures if f.agent == agent][:limit]

    async def all_fixtures(self) -> list[FixtureSummary]:
        return list(self.fixtures)

    async def fixture_versions(self, fixture_id: str) -> list[FixtureVersion]:
        return sorted(self.versions.get(fixture_id, []), key=lambda v: v.version)
