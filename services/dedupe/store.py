"""Pattern store: asyncpg adapter and its in-memory twin, behind one Protocol.

Every write is idempotent (INSERT ... ON CONFLICT), and a trace's assignment to a pattern
happens under a transaction-scoped advisory lock on its bucket: several dedupe instances
touching one bucket during a rebalance cannot lose or double an update, nor found two
patterns where one would have been founded. The decisions themselves (which pattern,
exemplar or near copy) are the pure functions of ``logic``; the stores only fetch what
those functions compare with and record what they decided.
"""

from __future__ import annotations

from collections import Counter, defaultdict
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
from services.dedupe.trajectory import MAX_PATHS, Path
from shared.db import Connection
from shared.events import AgentBaseline, PatternInfo
from shared.series import pattern_days
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
            yield _Session(conn, self._max_exemplars)

    @asynccontextmanager
    async def _alone(self) -> AsyncIterator[_Session]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _Session(conn, self._max_exemplars)

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


def _recorded_again(row: asyncpg.Record) -> Recorded:
    return Recorded(
        row["pattern_id"],
        first_delivery=False,
        already_forwarded=row["forwarded"],
        near_copy=row["near_copy"],
    )


# One statement for a new trace: $1-$5 the trace row; $6-$7 the pattern; $8-$9 members;
# $10-$12 the agent's baseline sums; $13-$18 the hourly and daily series; $19-$20 the tool
# path (capped); $21-$24 the intent remembered; $25-$27 the exemplar (capped). Positions
# come from the rows already there: the bucket's lock is held, nobody else appends.
_WRITE_TRACE = """
WITH t AS (
    INSERT INTO dedupe_traces (trace_id, content_sha256, pattern_id, seen_at, near_copy)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (trace_id) DO NOTHING
    RETURNING pattern_id
), p AS (
    INSERT INTO patterns AS p (pattern_id, fingerprint_version, fingerprint, occurrences,
                               first_seen, last_seen)
    SELECT $3, $6, $7, 1, $4, $4 FROM t
    ON CONFLICT (pattern_id) DO UPDATE
    SET occurrences = p.occurrences + 1,
        first_seen = LEAST(p.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(p.last_seen, EXCLUDED.last_seen)
), m AS (
    INSERT INTO pattern_members (pattern_id, dimension, value)
    SELECT $3, d, v FROM t, unnest($8::text[], $9::text[]) AS u(d, v)
    ON CONFLICT DO NOTHING
), b AS (
    INSERT INTO agent_baselines AS b (agent, measure, traces, total, squares)
    SELECT $10, name, 1, x, x * x FROM t, unnest($11::text[], $12::float8[]) AS u(name, x)
    ON CONFLICT (agent, measure) DO UPDATE
    SET traces = b.traces + 1, total = b.total + EXCLUDED.total,
        squares = b.squares + EXCLUDED.squares
), s AS (
    INSERT INTO pattern_series AS s (pattern_id, grain, start, agent_version, agent,
        occurrences, failures, retries, rescues, escalations, latency_ms, tokens)
    SELECT $3, grain, start, $15, $10, 1, ($16::int[])[1], ($16::int[])[2], ($16::int[])[3],
        ($16::int[])[4], $17::float8, $18::int8
    FROM t, unnest($13::text[], $14::timestamptz[]) AS u(grain, start)
    ON CONFLICT (pattern_id, grain, start, agent_version) DO UPDATE
    SET occurrences = s.occurrences + 1, failures = s.failures + EXCLUDED.failures,
        retries = s.retries + EXCLUDED.retries, rescues = s.rescues + EXCLUDED.rescues,
        escalations = s.escalations + EXCLUDED.escalations,
        latency_ms = s.latency_ms + EXCLUDED.latency_ms, tokens = s.tokens + EXCLUDED.tokens
), a AS (
    INSERT INTO agent_series AS a (agent, grain, start, agent_version, traces)
    SELECT $10, grain, start, $15, 1
    FROM t, unnest($13::text[], $14::timestamptz[]) AS u(grain, start)
    ON CONFLICT (agent, grain, start, agent_version) DO UPDATE SET traces = a.traces + 1
), path AS (
    INSERT INTO pattern_paths (pattern_id, position, tools)
    SELECT $3, kept.next, $19 FROM t,
        (SELECT coalesce(max(position) + 1, 0) AS next, count(*) AS n
         FROM pattern_paths WHERE pattern_id = $3) AS kept
    WHERE kept.n < $20
    ON CONFLICT DO NOTHING
), intent AS (
    INSERT INTO pattern_intents (pattern_id, position, bucket, signature)
    SELECT $3, kept.next, $22, $23 FROM t,
        (SELECT coalesce(max(position) + 1, 0) AS next FROM pattern_intents
         WHERE pattern_id = $3) AS kept
    WHERE $21
    ON CONFLICT DO NOTHING
), band AS (
    INSERT INTO pattern_intent_bands (bucket, band_key, pattern_id)
    SELECT $22, k, $3 FROM t, unnest($24::int8[]) AS k
    WHERE $21
    ON CONFLICT DO NOTHING
), exemplar AS (
    INSERT INTO pattern_exemplars (pattern_id, position, trace_id, signature)
    SELECT $3, kept.next, $1, $26 FROM t,
        (SELECT coalesce(max(position) + 1, 0) AS next, count(*) AS n
         FROM pattern_exemplars WHERE pattern_id = $3) AS kept
    WHERE $25 AND kept.n < $27
    ON CONFLICT DO NOTHING
)
SELECT count(*) > 0 FROM t
"""


class _Session:
    """The store's queries on one connection, inside the batch's transaction."""

    def __init__(self, conn: Connection, max_exemplars: int) -> None:
        self._conn = conn
        self._max_exemplars = max_exemplars
        self._again: dict[str, Recorded] = {}

    async def prefetch(self, observations: Sequence[Observation]) -> None:
        """Takes the batch's redeliveries in one statement: a trace id seen before keeps its
        pattern and role; changed content makes it worth forwarding again."""
        latest = {o.trace_id: o.content_sha256 for o in observations}
        rows = await self._conn.fetch(
            """UPDATE dedupe_traces t
               SET forwarded = t.forwarded AND t.content_sha256 = u.sha, content_sha256 = u.sha
               FROM unnest($1::text[], $2::text[]) AS u(trace_id, sha)
               WHERE t.trace_id = u.trace_id
               RETURNING t.trace_id, t.pattern_id, t.forwarded, t.near_copy""",
            list(latest),
            list(latest.values()),
        )
        self._again = {r["trace_id"]: _recorded_again(r) for r in rows}

    async def record(self, obs: Observation) -> Recorded:
        again = self._again.pop(obs.trace_id, None)
        if again is not None:
            return again
        intents, exemplars = await self._candidates(obs)
        assigned = assign(obs, [Candidate(p, tuple(i)) for p, i in intents.items()])
        kept = exemplars.get(assigned.pattern_id, [])
        role = exemplar_role(obs.content, kept, self._max_exemplars)
        if not await self._write(obs, assigned.pattern_id, assigned.remember_intent, role):
            # The same trace id met twice in the batch, or with other content in another
            # bucket whose instance got there first: a redelivery.
            row = await self._conn.fetchrow(
                """UPDATE dedupe_traces
                   SET forwarded = forwarded AND content_sha256 = $2, content_sha256 = $2
                   WHERE trace_id = $1 RETURNING trace_id, pattern_id, forwarded, near_copy""",
                obs.trace_id,
                obs.content_sha256,
            )
            assert row is not None
            return _recorded_again(row)
        return Recorded(
            assigned.pattern_id,
            first_delivery=True,
            already_forwarded=False,
            near_copy=role == Role.NEAR_COPY,
        )

    async def _candidates(
        self, obs: Observation
    ) -> tuple[dict[str, list[Sketch]], dict[str, list[Sketch]]]:
        """The remembered intents and the exemplars of the bucket's patterns that share an
        index key with the trace, in one round trip."""
        rows = await self._conn.fetch(
            """WITH near AS (SELECT DISTINCT pattern_id FROM pattern_intent_bands
                             WHERE bucket = $1 AND band_key = ANY($2::int8[]))
               SELECT true AS intent, pattern_id, position, signature FROM pattern_intents
               WHERE pattern_id IN (SELECT pattern_id FROM near)
               UNION ALL
               SELECT false, pattern_id, position, signature FROM pattern_exemplars
               WHERE pattern_id IN (SELECT pattern_id FROM near)
               ORDER BY pattern_id, position""",
            obs.bucket,
            list(obs.intent_bands),
        )
        intents: dict[str, list[Sketch]] = defaultdict(list)
        exemplars: dict[str, list[Sketch]] = defaultdict(list)
        for r in rows:
            kind = intents if r["intent"] else exemplars
            kind[r["pattern_id"]].append(tuple(r["signature"]))
        return intents, exemplars

    async def _write(
        self, obs: Observation, pattern_id: str, remember_intent: bool, role: Role
    ) -> bool:
        """Everything a new trace changes, in one statement. Every write hangs on the trace
        row being newly inserted (the CTE ``t``), so a redelivery counts nothing twice."""
        point = obs.point
        starts = series_starts(obs.seen_at) if point is not None else ()
        added = (
            [int(point.failed), point.retries, point.rescues, int(point.escalated)]
            if point is not None
            else [0, 0, 0, 0]
        )
        inserted = await self._conn.fetchval(
            _WRITE_TRACE,
            obs.trace_id,
            obs.content_sha256,
            pattern_id,
            obs.seen_at,
            role == Role.NEAR_COPY,
            obs.fingerprint_version,
            pattern_fingerprint(obs.fingerprint, obs.intent),
            [d for d, _ in obs.members],
            [v for _, v in obs.members],
            obs.agent,
            [name for name, _ in obs.measures],
            [float(value) for _, value in obs.measures],
            [grain for grain, _ in starts],
            [start for _, start in starts],
            point.agent_version if point is not None else "",
            added,
            point.latency_ms if point is not None else 0.0,
            point.tokens if point is not None else 0,
            list(obs.path),
            MAX_PATHS,
            remember_intent,
            obs.bucket,
            list(obs.intent),
            list(obs.intent_bands),
            role == Role.EXEMPLAR,
            list(obs.content),
            self._max_exemplars,
        )
        return bool(inserted)

    async def reference(self, obs: Observation) -> tuple[str | None, list[Path]]:
        """The agent's successful pattern of the same request, and its runs' paths."""
        bucket = success_bucket(obs.agent)
        conn = self._conn
        rows = await conn.fetch(
            """SELECT pattern_id, signature FROM pattern_intents
               WHERE pattern_id IN (SELECT pattern_id FROM pattern_intent_bands
                                    WHERE bucket = $1 AND band_key = ANY($2::int8[]))
               ORDER BY pattern_id, position""",
            bucket,
            list(obs.intent_bands),
        )
        intents: dict[str, list[Sketch]] = defaultdict(list)
        for r in rows:
            intents[r["pattern_id"]].append(tuple(r["signature"]))
        best = best_match(obs.intent, [Candidate(p, tuple(i)) for p, i in intents.items()])
        if best is None:
            return None, []
        pattern_id = best[1].pattern_id
        paths = await conn.fetch(
            "SELECT tools FROM pattern_paths WHERE pattern_id = $1 ORDER BY position",
            pattern_id,
        )
        return pattern_id, [tuple(r["tools"]) for r in paths]

    async def days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]:
        return await pattern_days(self._conn, pattern_id, agent, until)

    async def pattern(self, pattern_id: str) -> PatternInfo:
        row = await self._conn.fetchrow(
            """SELECT p.*, c.fixture_version IS NOT NULL AS covered,
                 (SELECT count(*) FROM dedupe_traces t WHERE t.pattern_id = p.pattern_id
                    AND t.seen_at > p.last_seen - interval '24 hours') AS count_24h,
                 (SELECT count(*) FROM dedupe_traces t WHERE t.pattern_id = p.pattern_id
                    AND t.seen_at > p.last_seen - interval '7 days') AS count_7d,
                 ARRAY(SELECT dimension FROM pattern_members m
                       WHERE m.pattern_id = p.pattern_id AND m.dimension <> 'agent_version')
                   AS dimensions,
                 ARRAY(SELECT value FROM pattern_members m WHERE m.pattern_id = p.pattern_id
                       AND m.dimension = 'agent_version' ORDER BY value) AS agent_versions
               FROM patterns p LEFT JOIN pattern_coverage c USING (pattern_id)
               WHERE p.pattern_id = $1""",
            pattern_id,
        )
        if row is None:
            raise KeyError(pattern_id)
        dimensions = Counter(row["dimensions"])
        return PatternInfo(
            pattern_id=pattern_id,
            fingerprint_version=row["fingerprint_version"],
            fingerprint=row["fingerprint"],
            occurrences=row["occurrences"],
            distinct_sessions=dimensions["session"],
            distinct_users=dimensions["user"],
            distinct_days=dimensions["day"],
            agent_versions=tuple(row["agent_versions"]),
            first_seen=row["first_seen"],
            last_seen=row["last_seen"],
            count_24h=row["count_24h"],
            count_7d=row["count_7d"],
            covered_by_fixture=row["covered"],
        )

    async def mark_forwarded(self, trace_ids: Collection[str]) -> None:
        await self._conn.execute(
            "UPDATE dedupe_traces SET forwarded = true WHERE trace_id = ANY($1::text[])",
            list(trace_ids),
        )

    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None:
        conn = self._conn
        await conn.execute(
            """INSERT INTO pattern_coverage AS c (pattern_id, fixture_version, updated_at)
               VALUES ($1, $2, $3) ON CONFLICT (pattern_id) DO UPDATE
               SET fixture_version = GREATEST(c.fixture_version, EXCLUDED.fixture_version),
                   updated_at = EXCLUDED.updated_at""",
            pattern_id,
            fixture_version,
            at,
        )

    async def clear_coverage(self, pattern_id: str) -> None:
        await self._conn.execute("DELETE FROM pattern_coverage WHERE pattern_id = $1", pattern_id)

    async def baseline(self, agent: str) -> AgentBaseline:
        rows = await self._conn.fetch(
            "SELECT measure, traces, total, squares FROM agent_baselines WHERE agent = $1", agent
        )
        return baseline_of(
            agent, {r["measure"]: MeasureSums(r["traces"], r["total"], r["squares"]) for r in rows}
        )


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
