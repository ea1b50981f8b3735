"""Pattern store: asyncpg adapter and its in-memory twin, behind one Protocol.

Every write is idempotent (INSERT ... ON CONFLICT), and a trace's assignment to a pattern
happens under a transaction-scoped advisory lock on its bucket: several dedupe instances
touching one bucket during a rebalance cannot lose or double an update, nor found two
patterns where one would have been founded. The decisions themselves (which pattern,
exemplar or near copy) are the pure functions of ``logic``; the stores only fetch what
those functions compare with and record what they decided.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

import asyncpg

from services.dedupe.logic import (
    DEFAULT_EXEMPLARS,
    INTENT_THRESHOLD,
    Candidate,
    MeasureSums,
    Observation,
    Recorded,
    Role,
    Sketch,
    assign,
    baseline_of,
    best_match,
    exemplar_role,
    pattern_fingerprint,
    series_starts,
    success_bucket,
)
from services.dedupe.pg_session import Session
from services.dedupe.trajectory import MAX_PATHS, Path
from shared.events import AgentBaseline, PatternInfo
from shared.trends import BASELINE_DAYS, RECENT_DAYS, DayCount

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


class PatternCalls(Protocol):
    """The store's calls, each in a transaction of its own or, inside a batch, sharing the
    batch's."""

    async def record(self, obs: Observation) -> Recorded: ...
    async def pattern(self, pattern_id: str) -> PatternInfo: ...
    async def mark_forwarded(self, trace_ids: Collection[str]) -> None: ...
    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None: ...
    async def clear_coverage(self, pattern_id: str) -> None: ...
    async def baseline(self, agent: str) -> AgentBaseline: ...
    async def days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]: ...
    async def reference(self, obs: Observation) -> tuple[str | None, list[Path]]: ...


class PatternSession(PatternCalls, Protocol):
    """The calls inside ``PatternStore.batch``: one transaction for the whole batch."""

    async def prefetch(self, observations: Sequence[Observation]) -> None: ...


class PatternStore(PatternCalls, Protocol):
    def batch(self, buckets: Iterable[str]) -> AbstractAsyncContextManager[PatternSession]: ...


class PostgresPatternStore:
    """Every call runs in a transaction of its own; ``batch`` opens one transaction for a
    whole batch of traces, with the advisory locks of all its buckets taken once, in a
    fixed order (two instances locking overlapping buckets cannot deadlock)."""

    def __init__(self, pool: asyncpg.Pool, max_exemplars: int = DEFAULT_EXEMPLARS) -> None:
        self._pool = pool
        self._max_exemplars = max_exemplars

    @asynccontextmanager
    async def batch(self, buckets: Iterable[str]) -> AsyncIterator[PatternSession]:
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialises assignment within one bucket across instances: the second of two
            # concurrent traces sees the pattern the first one founded.
            await conn.execute(
                """SELECT pg_advisory_xact_lock(k) FROM (
                       SELECT DISTINCT hashtextextended(b, 0) AS k FROM unnest($1::text[]) b
                       ORDER BY k) AS sorted""",
                sorted(set(buckets)),
            )
            yield Session(conn, self._max_exemplars)

    @asynccontextmanager
    async def _alone(self) -> AsyncIterator[Session]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield Session(conn, self._max_exemplars)

    async def record(self, obs: Observation) -> Recorded:
        async with self.batch([obs.bucket]) as session:
            return await session.record(obs)

    async def pattern(self, pattern_id: str) -> PatternInfo:
        async with self._alone() as session:
            return await session.pattern(pattern_id)

    async def mark_forwarded(self, trace_ids: Collection[str]) -> None:
        async with self._alone() as session:
            await session.mark_forwarded(trace_ids)

    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None:
        async with self._alone() as session:
            await session.set_coverage(pattern_id, fixture_version, at)

    async def clear_coverage(self, pattern_id: str) -> None:
        async with self._alone() as session:
            await session.clear_coverage(pattern_id)

    async def baseline(self, agent: str) -> AgentBaseline:
        async with self._alone() as session:
            return await session.baseline(agent)

    async def days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]:
        async with self._alone() as session:
            return await session.days(pattern_id, agent, until)

    async def reference(self, obs: Observation) -> tuple[str | None, list[Path]]:
        async with self._alone() as session:
            return await session.reference(obs)


@dataclass
class _TraceRow:
    content_sha256: str
    pattern_id: str
    seen_at: datetime
    forwarded: bool
    near_copy: bool


@dataclass
class InMemoryPatternStore:
    """The same decisions as the PostgreSQL store, for tests and the evaluation scripts."""

    max_exemplars: int = DEFAULT_EXEMPLARS
    # Only evaluations change it: a threshold sweep runs the twin, never the live store.
    intent_threshold: float = INTENT_THRESHOLD
    traces: dict[str, _TraceRow] = field(default_factory=dict)
    patterns: dict[str, tuple[int, str, int, datetime, datetime]] = field(default_factory=dict)
    members: set[tuple[str, str, str]] = field(default_factory=set)
    coverage: dict[str, int] = field(default_factory=dict)
    intents: dict[str, list[Sketch]] = field(default_factory=dict)
    intent_bands: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    exemplars: dict[str, list[tuple[str, Sketch]]] = field(default_factory=dict)
    measures: dict[tuple[str, str], MeasureSums] = field(default_factory=dict)
    # (pattern, grain, start, version) -> [occurrences, failures, retries, rescues,
    # escalations, latency_ms, tokens]; (agent, grain, start, version) -> traces
    series: dict[tuple[str, str, datetime, str], list[float]] = field(default_factory=dict)
    agent_series: dict[tuple[str, str, datetime, str], int] = field(default_factory=dict)
    paths: dict[str, list[Path]] = field(default_factory=dict)
    # Indexes over the rows above, so that a call costs what the database's indexed query
    # does, not a scan of everything (the benchmark builds 36k traces' inputs with the twin).
    _seen: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    _members: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    _daily: dict[tuple[str, date], list[int]] = field(default_factory=dict)
    _agent_daily: dict[tuple[str, date], int] = field(default_factory=lambda: defaultdict(int))

    async def record(self, obs: Observation) -> Recorded:
        existing = self.traces.get(obs.trace_id)
        if existing is not None:
            same = existing.content_sha256 == obs.content_sha256
            existing.forwarded = existing.forwarded and same
            existing.content_sha256 = obs.content_sha256
            return Recorded(
                existing.pattern_id,
                first_delivery=False,
                already_forwarded=existing.forwarded,
                near_copy=existing.near_copy,
            )
        near = sorted(
            {p for key in obs.intent_bands for p in self.intent_bands.get((obs.bucket, key), ())}
        )
        assigned = assign(
            obs, [Candidate(p, tuple(self.intents[p])) for p in near], self.intent_threshold
        )
        pattern_id = assigned.pattern_id
        kept = self.exemplars.setdefault(pattern_id, [])
        role = exemplar_role(obs.content, [s for _, s in kept], self.max_exemplars)
        self.traces[obs.trace_id] = _TraceRow(
            obs.content_sha256,
            pattern_id,
            obs.seen_at,
            forwarded=False,
            near_copy=role == Role.NEAR_COPY,
        )
        old = self.patterns.get(pattern_id)
        if old is None:
            self.patterns[pattern_id] = (
                obs.fingerprint_version,
                pattern_fingerprint(obs.fingerprint, obs.intent),
                1,
                obs.seen_at,
                obs.seen_at,
            )
        else:
            v, text, n, first, last = old
            self.patterns[pattern_id] = (
                v,
                text,
                n + 1,
                min(first, obs.seen_at),
                max(last, obs.seen_at),
            )
        self.members.update((pattern_id, d, v) for d, v in obs.members)
        for dimension, member in obs.members:
            self._members[(pattern_id, dimension)].add(member)
        self._seen[pattern_id].append(obs.seen_at)
        if obs.point is not None:
            p = obs.point
            for grain, start in series_starts(obs.seen_at):
                row = self.series.setdefault(
                    (pattern_id, grain, start, p.agent_version), [0, 0, 0, 0, 0, 0.0, 0]
                )
                added = (1, int(p.failed), p.retries, p.rescues, int(p.escalated))
                for i, value in enumerate((*added, p.latency_ms, p.tokens)):
                    row[i] += value
                traffic = (obs.agent, grain, start, p.agent_version)
                self.agent_series[traffic] = self.agent_series.get(traffic, 0) + 1
                if grain == "day":
                    daily = self._daily.setdefault((pattern_id, start.date()), [0, 0])
                    daily[0] += 1
                    daily[1] += p.rescues
                    self._agent_daily[(obs.agent, start.date())] += 1
        kept_paths = self.paths.setdefault(pattern_id, [])
        if len(kept_paths) < MAX_PATHS:
            kept_paths.append(obs.path)
        for name, value in obs.measures:
            old_sums = self.measures.get((obs.agent, name), MeasureSums(0, 0.0, 0.0))
            self.measures[(obs.agent, name)] = MeasureSums(
                old_sums.traces + 1, old_sums.total + value, old_sums.squares + value * value
            )
        if assigned.remember_intent:
            self.intents.setdefault(pattern_id, []).append(obs.intent)
            for key in obs.intent_bands:
                self.intent_bands.setdefault((obs.bucket, key), set()).add(pattern_id)
        if role == Role.EXEMPLAR:
            kept.append((obs.trace_id, obs.content))
        return Recorded(
            pattern_id,
            first_delivery=True,
            already_forwarded=False,
            near_copy=role == Role.NEAR_COPY,
        )

    async def pattern(self, pattern_id: str) -> PatternInfo:
        version, text, occurrences, first, last = self.patterns[pattern_id]
        seen = self._seen[pattern_id]

        def distinct(dimension: str) -> list[str]:
            return sorted(self._members[(pattern_id, dimension)])

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

    @asynccontextmanager
    async def batch(self, buckets: Iterable[str]) -> AsyncIterator[PatternSession]:
        yield self

    async def prefetch(self, observations: Sequence[Observation]) -> None:
        """Nothing to fetch: every row is at hand."""

    async def mark_forwarded(self, trace_ids: Collection[str]) -> None:
        for trace_id in trace_ids:
            self.traces[trace_id].forwarded = True

    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None:
        self.coverage[pattern_id] = max(self.coverage.get(pattern_id, 0), fixture_version)

    async def clear_coverage(self, pattern_id: str) -> None:
        self.coverage.pop(pattern_id, None)

    async def baseline(self, agent: str) -> AgentBaseline:
        return baseline_of(agent, {m: s for (a, m), s in self.measures.items() if a == agent})

    async def reference(self, obs: Observation) -> tuple[str | None, list[Path]]:
        bucket = success_bucket(obs.agent)
        near = sorted(
            {p for key in obs.intent_bands for p in self.intent_bands.get((bucket, key), ())}
        )
        best = best_match(
            obs.intent, [Candidate(p, tuple(self.intents[p])) for p in near], self.intent_threshold
        )
        if best is None:
            return None, []
        return best[1].pattern_id, list(self.paths.get(best[1].pattern_id, []))

    async def days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]:
        since = until - timedelta(days=RECENT_DAYS + BASELINE_DAYS)
        found = []
        for offset in range((until - since).days + 1):
            day = since + timedelta(days=offset)
            traffic = self._agent_daily.get((agent, day), 0)
            if traffic:
                occurrences, rescues = self._daily.get((pattern_id, day), (0, 0))
                found.append(DayCount(day, occurrences, traffic, rescues))
        return found
