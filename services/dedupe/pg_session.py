"""The pattern store's queries on PostgreSQL, on one connection inside a batch's
transaction (``PostgresPatternStore.batch`` opens it and takes the buckets' locks)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from datetime import date, datetime

import asyncpg

from services.dedupe.logic import (
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
from shared.trends import DayCount


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


class Session:
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
