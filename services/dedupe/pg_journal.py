"""Writes a dedupe batch's journal (``memory_store``'s record of what each trace changed)
to PostgreSQL in one set-based statement, counts as deltas, inside the batch's
transaction: the second half of ``pg_session.Session``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

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

    async def write(self, changes: Sequence[NewTrace | Redelivered]) -> dict[str, int]:
        """One statement for every table: under load a round trip costs more than the
        rows it carries, and the batch holds its buckets' locks until it commits. Answers
        the new version of each bucket it wrote patterns of."""
        new = [c for c in changes if isinstance(c, NewTrace)]
        again = sorted({c.trace_id for c in changes if isinstance(c, Redelivered)})
        if not new and not again:
            return {}
        row = await self._conn.fetchrow(
            WRITE_BATCH,
            *self._redelivered(again),
            *_traces(new),
            *self._patterns(new),
            *_columns([(n.pattern_id, d, v) for n in new for d, v in n.new_members], 3),
            *self._kept(new),
            *_series_and_baselines(new),
            sorted({n.obs.bucket for n in new}),
        )
        assert row is not None
        if row["inserted"] != len(new):
            raise ConcurrentRecording(
                f"{len(new) - row['inserted']} of the batch's traces were recorded meanwhile"
            )
        return dict(zip(row["buckets"] or (), row["versions"] or (), strict=True))

    def _redelivered(self, again: list[str]) -> list[list[Any]]:
        rows = [self._state.traces[t] for t in again]
        return [list(again), [r.content_sha256 for r in rows], [r.forwarded for r in rows]]

    def _patterns(self, new: list[NewTrace]) -> list[list[Any]]:
        added: dict[str, list[datetime]] = defaultdict(list)
        for n in new:
            added[n.pattern_id].append(n.obs.seen_at)
        ids = sorted(added)
        rows = [self._state.patterns[p] for p in ids]
        return [
            list(ids),
            [r.fingerprint_version for r in rows],
            [r.fingerprint for r in rows],
            [len(added[p]) for p in ids],
            [min(added[p]) for p in ids],
            [max(added[p]) for p in ids],
        ]

    def _kept(self, new: list[NewTrace]) -> list[list[Any]]:
        """Intents, their band rows, exemplars and paths, each at the pattern's next free
        position."""
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
        return [
            *_columns(intents, 4, json_last=True),
            *_columns(sorted(bands), 3),
            *_columns(exemplars, 4, json_last=True),
            *_columns(paths, 3, json_last=True),
        ]

    def _take(self, kind: int, pattern_id: str) -> int:
        position = self._next[(kind, pattern_id)]
        self._next[(kind, pattern_id)] = position + 1
        return position


def _traces(new: list[NewTrace]) -> list[list[Any]]:
    return [
        [n.obs.trace_id for n in new],
        [n.obs.content_sha256 for n in new],
        [n.pattern_id for n in new],
        [n.obs.seen_at for n in new],
        [n.role == Role.NEAR_COPY for n in new],
    ]


def _series_and_baselines(new: list[NewTrace]) -> list[list[Any]]:
    """The series rows each trace adds to (per pattern and per agent) and the measure sums
    of each agent, as deltas."""
    series: dict[tuple[str, str, datetime, str], list[float]] = {}
    owner: dict[str, str] = {}
    traffic: dict[tuple[str, str, datetime, str], int] = defaultdict(int)
    sums: dict[tuple[str, str], list[float]] = {}
    for n in new:
        obs, point = n.obs, n.obs.point
        for name, x in obs.measures:
            s = sums.setdefault((obs.agent, name), [0, 0.0, 0.0])
            s[0], s[1], s[2] = s[0] + 1, s[1] + x, s[2] + x * x
        owner[n.pattern_id] = obs.agent
        added = (1, int(point.failed), point.retries, point.rescues, int(point.escalated),
                 point.latency_ms, point.tokens)  # fmt: skip
        for grain, start in series_starts(obs.seen_at):
            row = series.setdefault((n.pattern_id, grain, start, point.agent_version),
                                    [0, 0, 0, 0, 0, 0.0, 0])  # fmt: skip
            for i, value in enumerate(added):
                row[i] += value
            traffic[(obs.agent, grain, start, point.agent_version)] += 1
    keys = sorted(series)
    values = [series[k] for k in keys]
    keys_a = sorted(traffic)
    keys_b = sorted(sums)
    return [
        *_columns(keys, 4),
        [owner[k[0]] for k in keys],
        *([int(v[i]) for v in values] for i in range(5)),
        [float(v[5]) for v in values],
        [int(v[6]) for v in values],
        *_columns(keys_a, 4),
        [traffic[k] for k in keys_a],
        *_columns(keys_b, 2),
        *([sums[k][i] for k in keys_b] for i in range(3)),
    ]


# Every table of the batch in one statement. Its parts write different tables and rows
# (no foreign keys between them), so that they share one snapshot changes nothing; the
# counts still grow only by the rows actually inserted (a retried batch adds nothing
# twice), and the statement answers how many of the batch's traces were new.
WRITE_BATCH = """
WITH redelivered AS (
    UPDATE dedupe_traces t SET content_sha256 = u.sha, forwarded = u.forwarded
    FROM unnest($1::text[], $2::text[], $3::bool[]) AS u(trace_id, sha, forwarded)
    WHERE t.trace_id = u.trace_id),
traces AS (
    INSERT INTO dedupe_traces (trace_id, content_sha256, pattern_id, seen_at, near_copy)
    SELECT * FROM unnest($4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::bool[])
    ON CONFLICT (trace_id) DO NOTHING RETURNING 1),
counted AS (
    INSERT INTO patterns AS p (pattern_id, fingerprint_version, fingerprint, occurrences,
                               first_seen, last_seen)
    SELECT * FROM unnest($9::text[], $10::int[], $11::text[], $12::int8[],
                         $13::timestamptz[], $14::timestamptz[])
    ON CONFLICT (pattern_id) DO UPDATE
    SET occurrences = p.occurrences + EXCLUDED.occurrences,
        first_seen = LEAST(p.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(p.last_seen, EXCLUDED.last_seen)),
members AS (
    INSERT INTO pattern_members (pattern_id, dimension, value)
    SELECT * FROM unnest($15::text[], $16::text[], $17::text[])
    ON CONFLICT DO NOTHING
    RETURNING pattern_id, dimension),
member_counts AS (
    INSERT INTO pattern_member_counts AS c (pattern_id, dimension, members)
    SELECT pattern_id, dimension, count(*) FROM members GROUP BY 1, 2
    ON CONFLICT (pattern_id, dimension) DO UPDATE SET members = c.members + EXCLUDED.members),
intents AS (
    INSERT INTO pattern_intents (pattern_id, position, bucket, signature)
    SELECT u.p, u.pos, u.b, ARRAY(SELECT jsonb_array_elements_text(u.sig)::int8)
    FROM unnest($18::text[], $19::int2[], $20::text[], $21::jsonb[]) AS u(p, pos, b, sig)
    ON CONFLICT DO NOTHING),
bands AS (
    INSERT INTO pattern_intent_bands (bucket, band_key, pattern_id)
    SELECT * FROM unnest($22::text[], $23::int8[], $24::text[])
    ON CONFLICT DO NOTHING),
exemplars AS (
    INSERT INTO pattern_exemplars (pattern_id, position, trace_id, signature)
    SELECT u.p, u.pos, u.t, ARRAY(SELECT jsonb_array_elements_text(u.sig)::int8)
    FROM unnest($25::text[], $26::int2[], $27::text[], $28::jsonb[]) AS u(p, pos, t, sig)
    ON CONFLICT DO NOTHING),
paths AS (
    INSERT INTO pattern_paths (pattern_id, position, tools)
    SELECT u.p, u.pos, ARRAY(SELECT jsonb_array_elements_text(u.tools))
    FROM unnest($29::text[], $30::int2[], $31::jsonb[]) AS u(p, pos, tools)
    ON CONFLICT DO NOTHING),
series AS (
    INSERT INTO pattern_series AS s (pattern_id, grain, start, agent_version, agent,
        occurrences, failures, retries, rescues, escalations, latency_ms, tokens)
    SELECT * FROM unnest($32::text[], $33::text[], $34::timestamptz[], $35::text[],
        $36::text[], $37::int[], $38::int[], $39::int[], $40::int[], $41::int[],
        $42::float8[], $43::int8[])
    ON CONFLICT (pattern_id, grain, start, agent_version) DO UPDATE
    SET occurrences = s.occurrences + EXCLUDED.occurrences,
        failures = s.failures + EXCLUDED.failures,
        retries = s.retries + EXCLUDED.retries,
        rescues = s.rescues + EXCLUDED.rescues,
        escalations = s.escalations + EXCLUDED.escalations,
        latency_ms = s.latency_ms + EXCLUDED.latency_ms,
        tokens = s.tokens + EXCLUDED.tokens),
traffic AS (
    INSERT INTO agent_series AS a (agent, grain, start, agent_version, traces)
    SELECT * FROM unnest($44::text[], $45::text[], $46::timestamptz[], $47::text[], $48::int[])
    ON CONFLICT (agent, grain, start, agent_version) DO UPDATE
    SET traces = a.traces + EXCLUDED.traces),
baselines AS (
    INSERT INTO agent_baselines AS b (agent, measure, traces, total, squares)
    SELECT * FROM unnest($49::text[], $50::text[], $51::int[], $52::float8[], $53::float8[])
    ON CONFLICT (agent, measure) DO UPDATE
    SET traces = b.traces + EXCLUDED.traces, total = b.total + EXCLUDED.total,
        squares = b.squares + EXCLUDED.squares),
versions AS (
    INSERT INTO dedupe_bucket_versions AS v (bucket, version)
    SELECT b, nextval('dedupe_bucket_version_seq') FROM unnest($54::text[]) AS b
    ON CONFLICT (bucket) DO UPDATE SET version = EXCLUDED.version
    RETURNING bucket, version)
SELECT (SELECT count(*) FROM traces) AS inserted,
       (SELECT array_agg(bucket ORDER BY bucket) FROM versions) AS buckets,
       (SELECT array_agg(version ORDER BY bucket) FROM versions) AS versions
"""


def _columns(
    rows: Sequence[tuple[object, ...]], width: int, json_last: bool = False
) -> list[list[Any]]:
    """Rows as column arrays for unnest (``width`` empty ones when there are no rows); a
    list-valued last column goes as jsonb, since PostgreSQL arrays cannot hold rows of
    different lengths."""
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    if json_last:
        columns[-1] = [jsonb(v) for v in columns[-1]]
    return columns
