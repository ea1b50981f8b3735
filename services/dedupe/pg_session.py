"""The pattern store on PostgreSQL, one batch at a time, inside the batch's transaction
(``PostgresPatternStore.batch`` opens it and takes the buckets' locks).

A session loads every row the batch can read into an in-memory store (``load``: about ten
set-based queries for the whole batch), lets it decide trace after trace by the rules
written once in ``memory_store``, and at the end writes what its journal says changed
(``flush``: one statement per table, counts added as deltas). Holding the buckets' locks
from load to commit is what makes the loaded rows the truth for the batch: a bucket's
patterns are written only under its lock. Agent-wide rows (baselines, daily traffic) are
also written by other buckets' batches; they are loaded as committed at the start, added
to, and written as deltas, so nothing concurrent is lost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, timedelta

import asyncpg

from services.dedupe.logic import (
    MeasureSums,
    Observation,
    Recorded,
    Role,
    pattern_id_of,
    series_starts,
    success_bucket,
)
from services.dedupe.memory_store import (
    TREND_DAYS,
    InMemoryPatternStore,
    NewTrace,
    PatternRow,
    Redelivered,
    TraceRow,
)
from services.dedupe.trajectory import Path
from shared.db import Connection, jsonb
from shared.events import AgentBaseline, PatternInfo
from shared.trends import DayCount

# Kinds of the positioned rows a pattern keeps, as ``_load_kept`` returns them.
INTENT, EXEMPLAR, PATH = 0, 1, 2


class ConcurrentRecording(asyncpg.SerializationError):
    """A trace of the batch was recorded by another instance meanwhile (a rebalance
    moved its partition): the batch is rolled back and retried, and then sees it."""


class Session:
    """The store's calls on one connection, inside one transaction, over loaded rows."""

    def __init__(self, conn: Connection, max_exemplars: int) -> None:
        self._conn = conn
        self._journal: list[NewTrace | Redelivered] = []
        self._state = InMemoryPatternStore(max_exemplars, journal=self._journal)
        # Next free position of each pattern's intents, exemplars and paths in the database.
        self._next: dict[tuple[int, str], int] = defaultdict(int)
        self._loaded_pairs: set[tuple[str, int]] = set()
        self._loaded_patterns: set[str] = set()
        self._loaded_traces: set[str] = set()
        self._loaded_agents: set[str] = set()
        self._loaded_days: set[tuple[str, str, date]] = set()

    # --- reading -------------------------------------------------------------------

    async def prefetch(self, observations: Sequence[Observation]) -> None:
        """Loads what the batch's traces can read: their rows if redelivered, their
        buckets' candidate patterns, the agents' baselines and the trend windows."""
        await self.load(observations)

    async def load(
        self,
        observations: Sequence[Observation] = (),
        pattern_ids: Iterable[str] = (),
        agents: Iterable[str] = (),
        until: date | None = None,
    ) -> None:
        agents = {*agents, *(o.agent for o in observations)}
        pattern_ids = set(pattern_ids)
        pattern_ids |= await self._load_traces([o.trace_id for o in observations])
        pairs = {
            (bucket, key)
            for o in observations
            for bucket in (o.bucket, success_bucket(o.agent))
            for key in o.intent_bands
        }
        pattern_ids |= await self._load_bands(pairs)
        # A pattern a trace would found may exist already (founded by a redelivery's
        # first, or by the same intent met again after its band rows went).
        pattern_ids |= {pattern_id_of(o.bucket, o.intent) for o in observations}
        await self._load_patterns(pattern_ids, observations)
        await self._load_baselines(agents)
        ends = {o.seen_at.date() for o in observations} | ({until} if until else set())
        if ends:
            await self._load_days(pattern_ids, agents, min(ends), max(ends))

    async def _load_traces(self, trace_ids: Sequence[str]) -> set[str]:
        wanted = sorted(set(trace_ids) - self._loaded_traces)
        if not wanted:
            return set()
        self._loaded_traces.update(wanted)
        rows = await self._conn.fetch(
            """SELECT trace_id, content_sha256, pattern_id, seen_at, forwarded, near_copy
               FROM dedupe_traces WHERE trace_id = ANY($1::text[])""",
            wanted,
        )
        for r in rows:
            self._state.traces[r["trace_id"]] = TraceRow(
                r["content_sha256"], r["pattern_id"], r["seen_at"], r["forwarded"], r["near_copy"]
            )
        return {r["pattern_id"] for r in rows}

    async def _load_bands(self, pairs: set[tuple[str, int]]) -> set[str]:
        wanted = sorted(pairs - self._loaded_pairs)
        if not wanted:
            return set()
        self._loaded_pairs.update(wanted)
        rows = await self._conn.fetch(
            """SELECT b.bucket, b.band_key, b.pattern_id FROM pattern_intent_bands b
               JOIN unnest($1::text[], $2::int8[]) AS w(bucket, band_key)
                 ON b.bucket = w.bucket AND b.band_key = w.band_key""",
            [b for b, _ in wanted],
            [k for _, k in wanted],
        )
        bands = self._state.intent_bands
        for pair in wanted:
            bands.setdefault(pair, set())
        for r in rows:
            bands[(r["bucket"], r["band_key"])].add(r["pattern_id"])
        return {r["pattern_id"] for r in rows}

    async def _load_patterns(
        self, pattern_ids: set[str], observations: Sequence[Observation]
    ) -> None:
        wanted = sorted(pattern_ids - self._loaded_patterns)
        if not wanted:
            return
        self._loaded_patterns.update(wanted)
        conn, state = self._conn, self._state
        for r in await conn.fetch(
            """SELECT p.pattern_id, p.fingerprint_version, p.fingerprint, p.occurrences,
                      p.first_seen, p.last_seen, c.fixture_version
               FROM patterns p LEFT JOIN pattern_coverage c USING (pattern_id)
               WHERE p.pattern_id = ANY($1::text[])""",
            wanted,
        ):
            state.patterns[r["pattern_id"]] = PatternRow(
                r["fingerprint_version"],
                r["fingerprint"],
                r["occurrences"],
                r["first_seen"],
                r["last_seen"],
            )
            if r["fixture_version"] is not None:
                state.coverage[r["pattern_id"]] = r["fixture_version"]
        # Only the last 7 days of a pattern's traces count; its last sighting only moves on.
        for r in await conn.fetch(
            """SELECT t.pattern_id, array_agg(t.seen_at ORDER BY t.seen_at) AS seen
               FROM patterns p JOIN dedupe_traces t USING (pattern_id)
               WHERE p.pattern_id = ANY($1::text[])
                 AND t.seen_at > p.last_seen - interval '7 days'
               GROUP BY t.pattern_id""",
            wanted,
        ):
            state.seen[r["pattern_id"]] = list(r["seen"])
        await self._load_members(wanted, observations)
        await self._load_kept(wanted)

    async def _load_members(self, wanted: list[str], observations: Sequence[Observation]) -> None:
        """How many distinct members each pattern has, its agent versions, and which of
        the batch's own members it has already."""
        state = self._state
        for r in await self._conn.fetch(
            """SELECT pattern_id, dimension, count(*) AS n FROM pattern_members
               WHERE pattern_id = ANY($1::text[]) GROUP BY pattern_id, dimension""",
            wanted,
        ):
            state.member_counts[(r["pattern_id"], r["dimension"])] = r["n"]
        batch_members = sorted({m for o in observations for m in o.members})
        for r in await self._conn.fetch(
            """SELECT m.pattern_id, m.dimension, m.value FROM pattern_members m
               WHERE m.pattern_id = ANY($1::text[])
                 AND (m.dimension = 'agent_version'
                      OR (m.dimension, m.value) IN (
                          SELECT * FROM unnest($2::text[], $3::text[])))""",
            wanted,
            [d for d, _ in batch_members],
            [v for _, v in batch_members],
        ):
            state.members.add((r["pattern_id"], r["dimension"], r["value"]))
            if r["dimension"] == "agent_version":
                state.versions[r["pattern_id"]].add(r["value"])

    async def _load_kept(self, wanted: list[str]) -> None:
        """The intents, exemplars and paths each pattern keeps, in position order."""
        state = self._state
        rows = await self._conn.fetch(
            """SELECT 0 AS kind, pattern_id, position, NULL AS trace_id, signature,
                      NULL::text[] AS tools
               FROM pattern_intents WHERE pattern_id = ANY($1::text[])
               UNION ALL
               SELECT 1, pattern_id, position, trace_id, signature, NULL
               FROM pattern_exemplars WHERE pattern_id = ANY($1::text[])
               UNION ALL
               SELECT 2, pattern_id, position, NULL, NULL, tools
               FROM pattern_paths WHERE pattern_id = ANY($1::text[])
               ORDER BY kind, pattern_id, position""",
            wanted,
        )
        for r in rows:
            kind, pattern_id = r["kind"], r["pattern_id"]
            self._next[(kind, pattern_id)] = r["position"] + 1
            if kind == INTENT:
                state.intents.setdefault(pattern_id, []).append(tuple(r["signature"]))
            elif kind == EXEMPLAR:
                state.exemplars.setdefault(pattern_id, []).append(
                    (r["trace_id"], tuple(r["signature"]))
                )
            else:
                state.paths.setdefault(pattern_id, []).append(tuple(r["tools"]))

    async def _load_baselines(self, agents: set[str]) -> None:
        wanted = sorted(agents - self._loaded_agents)
        if not wanted:
            return
        self._loaded_agents.update(wanted)
        for r in await self._conn.fetch(
            """SELECT agent, measure, traces, total, squares FROM agent_baselines
               WHERE agent = ANY($1::text[])""",
            wanted,
        ):
            self._state.measures[(r["agent"], r["measure"])] = MeasureSums(
                r["traces"], r["total"], r["squares"]
            )

    async def _load_days(
        self, pattern_ids: set[str], agents: set[str], first: date, last: date
    ) -> None:
        """Daily series over every trend window ending between ``first`` and ``last``."""
        since = first - timedelta(days=TREND_DAYS)
        days = [since + timedelta(days=d) for d in range((last - since).days + 1)]
        wanted_patterns = sorted(
            {p for p in pattern_ids for d in days if ("p", p, d) not in self._loaded_days}
        )
        wanted_agents = sorted(
            {a for a in agents for d in days if ("a", a, d) not in self._loaded_days}
        )
        self._loaded_days.update(("p", p, d) for p in wanted_patterns for d in days)
        self._loaded_days.update(("a", a, d) for a in wanted_agents for d in days)
        state = self._state
        if wanted_patterns:
            for r in await self._conn.fetch(
                """SELECT pattern_id, start::date AS day, sum(occurrences)::int AS occurrences,
                          sum(rescues)::int AS rescues
                   FROM pattern_series WHERE pattern_id = ANY($1::text[]) AND grain = 'day'
                     AND start::date BETWEEN $2 AND $3 GROUP BY 1, 2""",
                wanted_patterns,
                since,
                last,
            ):
                state.daily[(r["pattern_id"], r["day"])] = [r["occurrences"], r["rescues"]]
        if wanted_agents:
            for r in await self._conn.fetch(
                """SELECT agent, start::date AS day, sum(traces)::int AS traces
                   FROM agent_series WHERE agent = ANY($1::text[]) AND grain = 'day'
                     AND start::date BETWEEN $2 AND $3 GROUP BY 1, 2""",
                wanted_agents,
                since,
                last,
            ):
                state.agent_daily[(r["agent"], r["day"])] = r["traces"]

    # --- the calls -----------------------------------------------------------------

    async def record(self, obs: Observation) -> Recorded:
        if obs.trace_id not in self._loaded_traces:  # not prefetched with its batch
            await self.load([obs])
        return self._state.record_now(obs)

    async def pattern(self, pattern_id: str) -> PatternInfo:
        await self.load(pattern_ids=[pattern_id])
        if pattern_id not in self._state.patterns:
            raise KeyError(pattern_id)
        return self._state.pattern_now(pattern_id)

    async def days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]:
        await self.load(pattern_ids=[pattern_id], agents=[agent], until=until)
        return self._state.days_now(pattern_id, agent, until)

    async def baseline(self, agent: str) -> AgentBaseline:
        await self.load(agents=[agent])
        return self._state.baseline_now(agent)

    async def reference(self, obs: Observation) -> tuple[str | None, list[Path]]:
        await self.load([obs])
        return self._state.reference_now(obs)

    async def mark_forwarded(self, trace_ids: Collection[str]) -> None:
        await self._conn.execute(
            "UPDATE dedupe_traces SET forwarded = true WHERE trace_id = ANY($1::text[])",
            list(trace_ids),
        )

    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None:
        await self._conn.execute(
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

    # --- writing -------------------------------------------------------------------

    async def flush(self) -> None:
        """Writes what the batch changed: one statement per table."""
        changes, self._journal[:] = list(self._journal), []
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
            await conn.execute(
                """INSERT INTO pattern_members (pattern_id, dimension, value)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                   ON CONFLICT DO NOTHING""",
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
