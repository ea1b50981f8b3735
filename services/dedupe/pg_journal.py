"""Writes a dedupe batch's journal (``memory_store``'s record of what each trace changed)
to PostgreSQL, one set-based statement per table, counts as deltas, inside the batch's
transaction: the second half of ``pg_session.Session``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.dedupe.logic import Role, series_starts
from services.dedupe.memory_store import InMemoryPatternStore, NewTrace, Redelivered
from shared.db import Connection, jsonb

# Kinds of the positioned rows a pattern keeps, as the session loads them.
INTENT, EXEMPLAR, PATH = 0, 1, 2


class ConcurrentRecording(asyncpg.SerializationError):
    """A trace of the batch was recorded by another instance meanwhile (a rebalance
    moved its partition): the batch is rolled back and retried, and then sees it."""


class JournalWriter:
    """``state`` is the batch's in-memory store after it decided; ``next_positions`` the
    next free position of each (kind, pattern) in the database, taken as rows are added."""

    def __init__(
        self,
        conn: Connection,
        state: InMemoryPatternStore,
        next_positions: dict[tuple[int, str], int],
    ) -> None:
        self._conn = conn
        self._state = state
        self._next = next_positions

    async def write(self, changes: Sequence[NewTrace | Redelivered]) -> None:
        """One statement per table."""
        new = [c for c in changes if isinstance(c, NewTrace)]
        again = sorted({c.trace_id for c in changes if isinstance(c, Redelivered)})
        if again:
            rows = [self._state.traces[t] for t in again]
            await self._conn.execute(
                """UPDATE dedupe_traces t SET content_sha256 = u.sha, forwarded = u.forwarded
                   FROM unnest($1::text[], $2::text[], $3::bool[]) AS u(trace_id, sha, forwarded)
                   WHERE t.trace_id = u.trace_id""",
                again,
                [r.content_sha256 for r in rows],
                [r.forwarded for r in rows],
            )
        if not new:
            return
        await self._insert_traces(new)
        await self._count_patterns(new)
        await self._add_members_and_kept(new)
        await self._add_series_and_baselines(new)

    async def _insert_traces(self, new: list[NewTrace]) -> None:
        inserted = await self._conn.fetchval(
            """WITH t AS (
                   INSERT INTO dedupe_traces (trace_id, content_sha256, pattern_id, seen_at,
                                              near_copy)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[],
                                        $4::timestamptz[], $5::bool[])
                   ON CONFLICT (trace_id) DO NOTHING RETURNING 1)
               SELECT count(*) FROM t""",
            [n.obs.trace_id for n in new],
            [n.obs.content_sha256 for n in new],
            [n.pattern_id for n in new],
            [n.obs.seen_at for n in new],
            [n.role == Role.NEAR_COPY for n in new],
        )
        if inserted != len(new):
            raise ConcurrentRecording(
                f"{len(new) - inserted} of the batch's traces were recorded meanwhile"
            )

    async def _count_patterns(self, new: list[NewTrace]) -> None:
        added: dict[str, list[datetime]] = defaultdict(list)
        for n in new:
            added[n.pattern_id].append(n.obs.seen_at)
        ids = sorted(added)
        rows = [self._state.patterns[p] for p in ids]
        await self._conn.execute(
            """INSERT INTO patterns AS p (pattern_id, fingerprint_version, fingerprint,
                                          occurrences, first_seen, last_seen)
               SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int8[],
                                    $5::timestamptz[], $6::timestamptz[])
               ON CONFLICT (pattern_id) DO UPDATE
               SET occurrences = p.occurrences + EXCLUDED.occurrences,
                   first_seen = LEAST(p.first_seen, EXCLUDED.first_seen),
                   last_seen = GREATEST(p.last_seen, EXCLUDED.last_seen)""",
            ids,
            [r.fingerprint_version for r in rows],
            [r.fingerprint for r in rows],
            [len(added[p]) for p in ids],
            [min(added[p]) for p in ids],
            [max(added[p]) for p in ids],
        )

    async def _add_members_and_kept(self, new: list[NewTrace]) -> None:
        conn = self._conn
        members = [(n.pattern_id, d, v) for n in new for d, v in n.new_members]
        if members:
            # The counts grow by the rows actually inserted, so a member written twice (a
            # retried batch) is counted once.
            await conn.execute(
                """WITH added AS (
                       INSERT INTO pattern_members (pattern_id, dimension, value)
                       SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                       ON CONFLICT DO NOTHING
                       RETURNING pattern_id, dimension)
                   INSERT INTO pattern_member_counts AS c (pattern_id, dimension, members)
                   SELECT pattern_id, dimension, count(*) FROM added GROUP BY 1, 2
                   ON CONFLICT (pattern_id, dimension)
                   DO UPDATE SET members = c.members + EXCLUDED.members""",
                *map(list, zip(*members, strict=True)),
            )
        intents: list[tuple[str, int, str, list[int]]] = []
        bands: set[tuple[str, int, str]] = set()
        exemplars: list[tuple[str, int, str, list[int]]] = []
        paths: list[tuple[str, int, list[str]]] = []
        for n in new:
            obs, pattern_id = n.obs, n.pattern_id
            if n.remember_intent:
                intents.append((pattern_id, self._take(INTENT, pattern_id), obs.bucket,
                                list(obs.intent)))  # fmt: skip
                bands.update((obs.bucket, k, pattern_id) for k in obs.intent_bands)
            if n.role == Role.EXEMPLAR:
                exemplars.append((pattern_id, self._take(EXEMPLAR, pattern_id), obs.trace_id,
                                  list(obs.content)))  # fmt: skip
            if n.path_kept:
                paths.append((pattern_id, self._take(PATH, pattern_id), list(obs.path)))
        if intents:
            await conn.execute(
                """INSERT INTO pattern_intents (pattern_id, position, bucket, signature)
                   SELECT u.p, u.pos, u.b, ARRAY(SELECT jsonb_array_elements_text(u.sig)::int8)
                   FROM unnest($1::text[], $2::int2[], $3::text[], $4::jsonb[])
                        AS u(p, pos, b, sig)
                   ON CONFLICT DO NOTHING""",
                *_columns(intents, json_last=True),
            )
            await conn.execute(
                """INSERT INTO pattern_intent_bands (bucket, band_key, pattern_id)
                   SELECT * FROM unnest($1::text[], $2::int8[], $3::text[])
                   ON CONFLICT DO NOTHING""",
                *map(list, zip(*sorted(bands), strict=True)),
            )
        if exemplars:
            await conn.execute(
                """INSERT INTO pattern_exemplars (pattern_id, position, trace_id, signature)
                   SELECT u.p, u.pos, u.t, ARRAY(SELECT jsonb_array_elements_text(u.sig)::int8)
                   FROM unnest($1::text[], $2::int2[], $3::text[], $4::jsonb[])
                        AS u(p, pos, t, sig)
                   ON CONFLICT DO NOTHING""",
                *_columns(exemplars, json_last=True),
            )
        if paths:
            await conn.execute(
                """INSERT INTO pattern_paths (pattern_id, position, tools)
                   SELECT u.p, u.pos, ARRAY(SELECT jsonb_array_elements_text(u.tools))
                   FROM unnest($1::text[], $2::int2[], $3::jsonb[]) AS u(p, pos, tools)
                   ON CONFLICT DO NOTHING""",
                *_columns(paths, json_last=True),
            )

    def _take(self, kind: int, pattern_id: str) -> int:
        position = self._next[(kind, pattern_id)]
        self._next[(kind, pattern_id)] = position + 1
        return position

    async def _add_series_and_baselines(self, new: list[NewTrace]) -> None:
        series: dict[tuple[str, str, datetime, str], list[float]] = {}
        owner: dict[str, str] = {}
        traffic: dict[tuple[str, str, datetime, str], int] = defaultdict(int)
        sums: dict[tuple[str, str], list[float]] = {}
        for n in new:
            obs, point = n.obs, n.obs.point
            for name, x in obs.measures:
                s = sums.setdefault((obs.agent, name), [0, 0.0, 0.0])
                s[0], s[1], s[2] = s[0] + 1, s[1] + x, s[2] + x * x
            if point is None:
                continue
            owner[n.pattern_id] = obs.agent
            added = (1, int(point.failed), point.retries, point.rescues, int(point.escalated),
                     point.latency_ms, point.tokens)  # fmt: skip
            for grain, start in series_starts(obs.seen_at):
                row = series.setdefault((n.pattern_id, grain, start, point.agent_version),
                                        [0, 0, 0, 0, 0, 0.0, 0])  # fmt: skip
                for i, value in enumerate(added):
                    row[i] += value
                traffic[(obs.agent, grain, start, point.agent_version)] += 1
        conn = self._conn
        if series:
            keys = sorted(series)
            values = [series[k] for k in keys]
            await conn.execute(
                """INSERT INTO pattern_series AS s (pattern_id, grain, start, agent_version, agent,
                       occurrences, failures, retries, rescues, escalations, latency_ms, tokens)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[],
                       $5::text[], $6::int[], $7::int[], $8::int[], $9::int[], $10::int[],
                       $11::float8[], $12::int8[])
                   ON CONFLICT (pattern_id, grain, start, agent_version) DO UPDATE
                   SET occurrences = s.occurrences + EXCLUDED.occurrences,
                       failures = s.failures + EXCLUDED.failures,
                       retries = s.retries + EXCLUDED.retries,
                       rescues = s.rescues + EXCLUDED.rescues,
                       escalations = s.escalations + EXCLUDED.escalations,
                       latency_ms = s.latency_ms + EXCLUDED.latency_ms,
                       tokens = s.tokens + EXCLUDED.tokens""",
                *map(list, zip(*keys, strict=True)),
                [owner[k[0]] for k in keys],
                *([int(v[i]) for v in values] for i in range(5)),
                [float(v[5]) for v in values],
                [int(v[6]) for v in values],
            )
            keys_a = sorted(traffic)
            await conn.execute(
                """INSERT INTO agent_series AS a (agent, grain, start, agent_version, traces)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[],
                                        $5::int[])
                   ON CONFLICT (agent, grain, start, agent_version) DO UPDATE
                   SET traces = a.traces + EXCLUDED.traces""",
                *map(list, zip(*keys_a, strict=True)),
                [traffic[k] for k in keys_a],
            )
        if sums:
            keys_b = sorted(sums)
            await conn.execute(
                """INSERT INTO agent_baselines AS b (agent, measure, traces, total, squares)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::float8[],
                                        $5::float8[])
                   ON CONFLICT (agent, measure) DO UPDATE
                   SET traces = b.traces + EXCLUDED.traces, total = b.total + EXCLUDED.total,
                       squares = b.squares + EXCLUDED.squares""",
                *map(list, zip(*keys_b, strict=True)),
                *([sums[k][i] for k in keys_b] for i in range(3)),
            )


def _columns(rows: Sequence[tuple[object, ...]], json_last: bool) -> list[list[object]]:
    """Rows as column arrays for unnest; a list-valued last column goes as jsonb, since
    PostgreSQL arrays cannot hold rows of different lengths."""
    columns = [list(c) for c in zip(*rows, strict=True)]
    if json_last:
        columns[-1] = [jsonb(v) for v in columns[-1]]
    return columns
