"""Pattern store: asyncpg adapter and its in-memory twin, behind one Protocol.

Every write is a single idempotent statement (INSERT ... ON CONFLICT), so several dedupe
instances touching one pattern during a rebalance cannot lose or double an update.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg

from services.dedupe.logic import Observation, Recorded
from shared.events import PatternInfo

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


class PatternStore(Protocol):
    async def record(self, obs: Observation) -> Recorded: ...
    async def pattern(self, pattern_id: str) -> PatternInfo: ...
    async def mark_forwarded(self, trace_id: str) -> None: ...
    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None: ...


class PostgresPatternStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, obs: Observation) -> Recorded:
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """INSERT INTO dedupe_traces (trace_id, content_sha256, pattern_id, seen_at)
                   VALUES ($1, $2, $3, $4) ON CONFLICT (trace_id) DO NOTHING
                   RETURNING true""",
                obs.trace_id, obs.content_sha256, obs.pattern_id, obs.seen_at,
            )
            if not inserted:
                row = await conn.fetchrow(
                    """UPDATE dedupe_traces
                       SET forwarded = forwarded AND content_sha256 = $2,
                           content_sha256 = $2
                       WHERE trace_id = $1 RETURNING forwarded""",
                    obs.trace_id, obs.content_sha256,
                )
                return Recorded(first_delivery=False, already_forwarded=bool(row and row[0]))
            await conn.execute(
                """INSERT INTO patterns AS p (pattern_id, fingerprint_version, fingerprint,
                                             occurrences, first_seen, last_seen)
                   VALUES ($1, $2, $3, 1, $4, $4)
                   ON CONFLICT (pattern_id) DO UPDATE
                   SET occurrences = p.occurrences + 1,
                       first_seen = LEAST(p.first_seen, EXCLUDED.first_seen),
                       last_seen = GREATEST(p.last_seen, EXCLUDED.last_seen)""",
                obs.pattern_id, obs.fingerprint_version, obs.fingerprint, obs.seen_at,
            )
            await conn.executemany(
                """INSERT INTO pattern_members (pattern_id, dimension, value) VALUES ($1, $2, $3)
                   ON CONFLICT DO NOTHING""",
                [(obs.pattern_id, d, v) for d, v in obs.members],
            )
            return Recorded(first_delivery=True, already_forwarded=False)

    async def pattern(self, pattern_id: str) -> PatternInfo:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT p.*, c.fixture_version IS NOT NULL AS covered,
                     (SELECT count(*) FROM dedupe_traces t WHERE t.pattern_id = p.pattern_id
                        AND t.seen_at > p.last_seen - interval '24 hours') AS count_24h,
                     (SELECT count(*) FROM dedupe_traces t WHERE t.pattern_id = p.pattern_id
                        AND t.seen_at > p.last_seen - interval '7 days') AS count_7d
                   FROM patterns p LEFT JOIN pattern_coverage c USING (pattern_id)
                   WHERE p.pattern_id = $1""",
                pattern_id,
            )
            members = await conn.fetch(
                "SELECT dimension, value FROM pattern_members WHERE pattern_id = $1", pattern_id
            )
        by_dim: dict[str, list[str]] = defaultdict(list)
        for m in members:
            by_dim[m["dimension"]].append(m["value"])
        return PatternInfo(
            pattern_id=pattern_id,
            fingerprint_version=row["fingerprint_version"],
            fingerprint=row["fingerprint"],
            occurrences=row["occurrences"],
            distinct_sessions=len(by_dim["session"]),
            distinct_users=len(by_dim["user"]),
            distinct_days=len(by_dim["day"]),
            agent_versions=tuple(sorted(by_dim["agent_version"])),
            first_seen=row["first_seen"],
            last_seen=row["last_seen"],
            count_24h=row["count_24h"],
            count_7d=row["count_7d"],
            covered_by_fixture=row["covered"],
        )

    async def mark_forwarded(self, trace_id: str) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE dedupe_traces SET forwarded = true WHERE trace_id = $1", trace_id
            )

    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO pattern_coverage AS c (pattern_id, fixture_version, updated_at)
                   VALUES ($1, $2, $3) ON CONFLICT (pattern_id) DO UPDATE
                   SET fixture_version = GREATEST(c.fixture_version, EXCLUDED.fixture_version),
                       updated_at = EXCLUDED.updated_at""",
                pattern_id, fixture_version, at,
            )


@dataclass
class InMemoryPatternStore:
    traces: dict[str, tuple[str, str, datetime, bool]] = field(default_factory=dict)
    patterns: dict[str, tuple[int, str, int, datetime, datetime]] = field(default_factory=dict)
    members: set[tuple[str, str, str]] = field(default_factory=set)
    coverage: dict[str, int] = field(default_factory=dict)

    async def record(self, obs: Observation) -> Recorded:
        existing = self.traces.get(obs.trace_id)
        if existing is not None:
            sha, pattern_id, seen_at, forwarded = existing
            forwarded = forwarded and sha == obs.content_sha256
            self.traces[obs.trace_id] = (obs.content_sha256, pattern_id, seen_at, forwarded)
            return Recorded(first_delivery=False, already_forwarded=forwarded)
        self.traces[obs.trace_id] = (obs.content_sha256, obs.pattern_id, obs.seen_at, False)
        old = self.patterns.get(obs.pattern_id)
        if old is None:
            self.patterns[obs.pattern_id] = (
                obs.fingerprint_version, obs.fingerprint, 1, obs.seen_at, obs.seen_at,
            )
        else:
            v, text, n, first, last = old
            self.patterns[obs.pattern_id] = (
                v, text, n + 1, min(first, obs.seen_at), max(last, obs.seen_at),
            )
        self.members.update((obs.pattern_id, d, v) for d, v in obs.members)
        return Recorded(first_delivery=True, already_forwarded=False)

    async def pattern(self, pattern_id: str) -> PatternInfo:
        version, text, occurrences, first, last = self.patterns[pattern_id]
        seen = [t[2] for t in self.traces.values() if t[1] == pattern_id]

        def distinct(dimension: str) -> list[str]:
            return sorted(v for p, d, v in self.members if p == pattern_id and d == dimension)

        return PatternInfo(
            pattern_id=pattern_id,
            fingerprint_version=version,
            fingerprint=text,
            occurrences=occurrences,
            distinct_sessions=len(distinct("session")),
            distinct_users=len(distinct("user")),
            distinct_days=len(distinct("day")),
            agent_versions=tuple(distinct("agent_version")),
            first_seen=first,
            last_seen=last,
            count_24h=sum(1 for s in seen if s > last - DAY),
            count_7d=sum(1 for s in seen if s > last - WEEK),
            covered_by_fixture=pattern_id in self.coverage,
        )

    async def mark_forwarded(self, trace_id: str) -> None:
        sha, pattern_id, seen_at, _ = self.traces[trace_id]
        self.traces[trace_id] = (sha, pattern_id, seen_at, True)

    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None:
        self.coverage[pattern_id] = max(self.coverage.get(pattern_id, 0), fixture_version)
