"""The pattern store on PostgreSQL, one batch at a time, inside the batch's transaction
(``PostgresPatternStore.batch`` opens it and takes the buckets' locks).

A session loads every row the batch can read into an in-memory store (``load``: two round
trips for the whole batch, its set-based reads answered together by ``shared.db.Reads``),
lets it decide trace after trace by the rules written once in ``memory_store``, and at the
end writes what its journal says changed (``flush``: one statement, counts added as
deltas). Holding the buckets' locks
from load to commit is what makes the loaded rows the truth for the batch: a bucket's
patterns are written only under its lock. Agent-wide rows (baselines, daily traffic) are
also written by other buckets' batches; they are loaded as committed at the start, added
to, and written as deltas, so nothing concurrent is lost.

A session also carries what it loaded of a bucket's patterns on to the next batch
(``begin``): the partition that holds a bucket brings its traces to one instance, so that
instance is the only one writing it, and its next batch of the bucket needs nothing of
those rows again. Every batch writing a bucket gives it a new version; a batch reads its
buckets' versions under their locks, and drops what it kept of a bucket whose version is
not the one it wrote or read last (another instance wrote it meanwhile, during a
rebalance). What other writers change is read again in every batch: the traces, the
agents' rows, coverage (the fixture index), and the members and sightings the batch's
traces are counted against.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, timedelta

from services.dedupe.logic import (
    DAY_HOURS,
    WEEK_HOURS,
    MeasureSums,
    Observation,
    Recorded,
    hour_of,
    pattern_id_of,
    success_bucket,
)
from services.dedupe.memory_store import (
    InMemoryPatternStore,
    NewTrace,
    PatternRow,
    Redelivered,
    TraceRow,
)
from services.dedupe.pg_journal import EXEMPLAR, INTENT, PATH, JournalWriter
from services.dedupe.trajectory import Path
from shared.db import Connection, Reads, Rows, instant
from shared.events import AgentBaseline, PatternInfo
from shared.series import AGENT_DAILY, PATTERN_DAILY, TREND_DAYS
from shared.trends import DayCount

# Patterns a session keeps between batches before it starts afresh. A kept pattern holds
# its intents, exemplars (128-value sketches), paths and daily series: 4 KB on average on
# the generated corpus (tracemalloc), up to ~15 KB with every exemplar kept.
DEFAULT_KEPT_PATTERNS = 10_000


class Session:
    """The store's calls on one connection, inside one transaction, over loaded rows."""

    def __init__(self, conn: Connection | None, max_exemplars: int) -> None:
        self._conn: Connection | None = conn
        self._journal: list[NewTrace | Redelivered] = []
        self._state = InMemoryPatternStore(max_exemplars, journal=self._journal)
        # Next free position of each pattern's intents, exemplars and paths in the database.
        self._next: dict[tuple[int, str], int] = defaultdict(int)
        self._loaded_pairs: set[tuple[str, int]] = set()
        self._loaded_patterns: set[str] = set()
        self._loaded_traces: set[str] = set()
        # The latest trace any load was for, and the horizon each pattern's sightings were
        # read up to (see _read_sightings).
        self._horizon: datetime | None = None
        self._sightings_until: dict[str, datetime | None] = {}
        self._loaded_agents: set[str] = set()
        # Per pattern or agent, the days of the daily series loaded (one contiguous span).
        self._day_spans: dict[str, dict[str, tuple[date, date]]] = {"pattern": {}, "agent": {}}
        # What is kept across batches, by bucket: the bucket each loaded pattern belongs
        # to, the version its rows are as of, and the buckets checked in this batch.
        self._bucket_of: dict[str, str] = {}
        self._versions: dict[str, int] = {}
        self._checked: set[str] = set()
        # Patterns whose coverage, members and sightings were read in this batch.
        self._fresh: set[str] = set()
        # The kept daily series hold no day before this one.
        self._trimmed_before: date | None = None

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the session is between batches: begin one first")
        return self._conn

    @property
    def patterns_kept(self) -> int:
        """Kept patterns, with the band rows kept counted ten to a pattern and the members
        known (sessions, users, days: a few per trace) twenty to a pattern."""
        return (
            len(self._loaded_patterns)
            + len(self._loaded_pairs) // 10
            + len(self._state.members) // 20
        )

    def begin(self, conn: Connection) -> Session:
        """The next batch, on its own connection and transaction: what other writers
        change is forgotten, what the buckets' own batches write is kept."""
        state = self._state
        self._conn = conn
        self._journal.clear()
        state.traces.clear()
        self._loaded_traces.clear()
        state.measures.clear()
        self._loaded_agents.clear()
        state.agent_daily.clear()
        self._day_spans["agent"].clear()
        state.coverage.clear()
        self._checked.clear()
        self._fresh.clear()
        self._trim_days()
        return self

    def end(self) -> None:
        """After the batch's writes: a pattern read in this batch but not of a bucket
        whose version it checked (read for a redelivered trace or by id alone) cannot be
        checked by the next one."""
        self._conn = None
        self._forget_patterns(
            {p for p in self._fresh if self._bucket_of.get(p) not in self._checked}
        )

    def _trim_days(self) -> None:
        """Drops the days no trend window of the latest traces reaches any more (once a
        day): a late trace reads its own again."""
        if self._horizon is None:
            return
        cutoff = self._horizon.date() - timedelta(days=TREND_DAYS + 1)
        if self._trimmed_before is not None and cutoff <= self._trimmed_before:
            return
        self._trimmed_before = cutoff
        spans = self._day_spans["pattern"]
        for key, (lo, hi) in list(spans.items()):
            if hi < cutoff:
                del spans[key]
            elif lo < cutoff:
                spans[key] = (cutoff, hi)
        daily = self._state.daily
        for day_key in [k for k in daily if k[1] < cutoff]:
            del daily[day_key]

    def _forget(self, buckets: set[str]) -> None:
        """Another instance wrote these buckets since their rows were loaded."""
        self._forget_patterns(
            {p for p in self._loaded_patterns if self._bucket_of.get(p) in buckets}
        )
        stale_pairs = {pair for pair in self._loaded_pairs if pair[0] in buckets}
        self._loaded_pairs -= stale_pairs
        for pair in stale_pairs:
            self._state.intent_bands.pop(pair, None)

    def _forget_patterns(self, pattern_ids: set[str]) -> None:
        state = self._state
        for p in pattern_ids:
            state.patterns.pop(p, None)
            state.intents.pop(p, None)
            state.exemplars.pop(p, None)
            state.paths.pop(p, None)
            state.sightings.pop(p, None)
            state.versions.pop(p, None)
            self._sightings_until.pop(p, None)
            self._bucket_of.pop(p, None)
            for dimension in ("session", "user", "day", "agent_version"):
                state.member_counts.pop((p, dimension), None)
            for kind in (INTENT, EXEMPLAR, PATH):
                self._next.pop((kind, p), None)
            self._day_spans["pattern"].pop(p, None)
        if pattern_ids:
            state.members = {m for m in state.members if m[0] not in pattern_ids}
            for key in [k for k in state.daily if k[0] in pattern_ids]:
                del state.daily[key]
            # A band row naming one of them stays: the pattern is a candidate again, and
            # is loaded again when a batch meets it.
            self._loaded_patterns -= pattern_ids

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
        """Two round trips: the traces and band rows say which patterns the batch can
        touch, then everything of those patterns and agents is read at once."""
        agents = {*agents, *(o.agent for o in observations)}
        pattern_ids = set(pattern_ids)
        reads = Reads()
        buckets = {b for o in observations for b in (o.bucket, success_bucket(o.agent))}
        stale: set[str] = set()
        self._read_versions(reads, buckets - self._checked, stale)
        self._read_traces(reads, [o.trace_id for o in observations], pattern_ids)
        pairs = {(b, key) for o in observations for b in (o.bucket, success_bucket(o.agent))
                 for key in o.intent_bands}  # fmt: skip
        self._read_bands(reads, pairs, pattern_ids)
        await reads.run(self.conn)
        if stale:  # what was kept of them goes, and is read again
            self._forget(stale)
            self._read_bands(reads, pairs, pattern_ids)
            await reads.run(self.conn)
        # The candidates kept from earlier batches count as found, and so does a pattern
        # a trace would found: it may exist already (founded by a redelivery's first, or
        # by the same intent met again after its band rows went).
        bands = self._state.intent_bands
        pattern_ids |= {p for pair in pairs for p in bands.get(pair, ())}
        founding = {pattern_id_of(o.bucket, o.intent): o.bucket for o in observations}
        pattern_ids |= founding.keys()
        for pattern_id, bucket in founding.items():
            self._bucket_of.setdefault(pattern_id, bucket)
        # A kept pattern met through a redelivered trace, in a bucket whose version this
        # batch did not check, is read again.
        checked, bucket_of = self._checked, self._bucket_of
        self._forget_patterns(
            {p for p in pattern_ids & self._loaded_patterns if bucket_of.get(p) not in checked}
        )
        kept = pattern_ids & self._loaded_patterns
        self._read_patterns(reads, pattern_ids, observations)
        self._refresh(reads, kept - self._fresh, observations)
        self._read_baselines(reads, agents)
        ends = {o.seen_at.date() for o in observations} | ({until} if until else set())
        if ends:
            self._read_days(reads, pattern_ids, agents, min(ends), max(ends))
        await reads.run(self.conn)

    def _read_versions(self, reads: Reads, buckets: set[str], stale: set[str]) -> None:
        """Each bucket's version, read under its lock for the batch's own buckets: one
        that is not the version its kept rows are as of marks them ``stale``."""
        if not buckets:
            return
        self._checked |= buckets
        wanted = sorted(buckets)

        def apply(rows: Rows) -> None:
            now = dict.fromkeys(wanted, 0) | {r["bucket"]: r["version"] for r in rows}
            for bucket, version in now.items():
                if self._versions.get(bucket, version) != version:
                    stale.add(bucket)
                self._versions[bucket] = version

        reads.add(
            "SELECT bucket, version FROM dedupe_bucket_versions WHERE bucket = ANY($1::text[])",
            [wanted],
            apply,
        )

    def _refresh(
        self, reads: Reads, pattern_ids: set[str], observations: Sequence[Observation]
    ) -> None:
        """What others change of a pattern kept from an earlier batch: its coverage, and
        the batch's members and sightings (the latter only if the batch's traces go past
        the hour up to which they were read)."""
        if not pattern_ids:
            return
        self._fresh |= pattern_ids
        wanted = sorted(pattern_ids)
        state = self._state

        def apply_coverage(rows: Rows) -> None:
            for r in rows:
                state.coverage[r["pattern_id"]] = r["fixture_version"]

        reads.add(
            """SELECT pattern_id, fixture_version FROM pattern_coverage
               WHERE pattern_id = ANY($1::text[])""",
            [wanted],
            apply_coverage,
        )
        self._read_batch_members(reads, wanted, observations)
        latest = max((o.seen_at for o in observations), default=None)
        behind = [
            p
            for p in wanted
            if latest is not None
            and ((until := self._sightings_until.get(p)) is None or latest > until)
        ]
        for p in behind:
            state.sightings.pop(p, None)
        if behind:
            self._read_sightings(reads, behind, observations)

    def _read_traces(self, reads: Reads, trace_ids: Sequence[str], found: set[str]) -> None:
        wanted = sorted(set(trace_ids) - self._loaded_traces)
        if not wanted:
            return
        self._loaded_traces.update(wanted)

        def apply(rows: Rows) -> None:
            for r in rows:
                self._state.traces[r["trace_id"]] = TraceRow(
                    r["content_sha256"],
                    r["pattern_id"],
                    instant(r["seen_at"]),
                    r["forwarded"],
                    r["near_copy"],
                )
                found.add(r["pattern_id"])

        reads.add(
            """SELECT trace_id, content_sha256, pattern_id, seen_at, forwarded, near_copy
               FROM dedupe_traces WHERE trace_id = ANY($1::text[])""",
            [wanted],
            apply,
        )

    def _read_bands(self, reads: Reads, pairs: set[tuple[str, int]], found: set[str]) -> None:
        wanted = sorted(pairs - self._loaded_pairs)
        if not wanted:
            return
        self._loaded_pairs.update(wanted)
        bands = self._state.intent_bands
        for pair in wanted:
            bands.setdefault(pair, set())

        def apply(rows: Rows) -> None:
            for r in rows:
                bands[(r["bucket"], r["band_key"])].add(r["pattern_id"])
                found.add(r["pattern_id"])

        reads.add(
            """SELECT b.bucket, b.band_key, b.pattern_id FROM pattern_intent_bands b
               JOIN unnest($1::text[], $2::int8[]) AS w(bucket, band_key)
                 ON b.bucket = w.bucket AND b.band_key = w.band_key""",
            [[b for b, _ in wanted], [k for _, k in wanted]],
            apply,
        )

    def _read_patterns(
        self, reads: Reads, pattern_ids: set[str], observations: Sequence[Observation]
    ) -> None:
        wanted = sorted(pattern_ids - self._loaded_patterns)
        if not wanted:
            return
        self._loaded_patterns.update(wanted)
        self._fresh.update(wanted)
        state = self._state

        def apply(rows: Rows) -> None:
            for r in rows:
                state.patterns[r["pattern_id"]] = PatternRow(
                    r["fingerprint_version"],
                    r["fingerprint"],
                    r["occurrences"],
                    instant(r["first_seen"]),
                    instant(r["last_seen"]),
                )
                if r["fixture_version"] is not None:
                    state.coverage[r["pattern_id"]] = r["fixture_version"]

        reads.add(
            """SELECT p.pattern_id, p.fingerprint_version, p.fingerprint, p.occurrences,
                      p.first_seen, p.last_seen, c.fixture_version
               FROM patterns p LEFT JOIN pattern_coverage c USING (pattern_id)
               WHERE p.pattern_id = ANY($1::text[])""",
            [wanted],
            apply,
        )
        self._read_sightings(reads, wanted, observations)
        self._read_members(reads, wanted, observations)
        self._read_kept(reads, wanted)

    def _read_sightings(
        self, reads: Reads, wanted: list[str], observations: Sequence[Observation]
    ) -> None:
        """What the 24-hour and 7-day counts need of each pattern's hourly sightings (its
        hourly series, summed over agent versions). Only the hours of the week that ends
        with its last sighting count, and within the batch the last sighting can move on
        only up to the batch's latest trace (the horizon): an hour that stays inside a
        window for every last sighting up to the horizon is read as a count, and stands in
        the store as an hour that is inside that window (and outside the other) whatever
        the last sighting becomes; only the hours a window can leave during the batch are
        read one by one (an hour's row per agent version: they add up). At most a few
        rows per pattern come back, whatever its traffic."""
        if observations:
            latest = max(o.seen_at for o in observations)
            self._horizon = latest if self._horizon is None else max(self._horizon, latest)
        for pattern_id in wanted:
            self._sightings_until[pattern_id] = self._horizon

        def apply(rows: Rows) -> None:
            for r in rows:
                last = hour_of(instant(r["last_seen"]))
                hours = self._state.sightings[r["pattern_id"]]
                for hour, n in zip(r["leaving"] or (), r["leaving_n"] or (), strict=True):
                    hours[instant(hour)] += n
                if r["week_only"]:
                    hours[last - timedelta(hours=DAY_HOURS)] += r["week_only"]
                if r["in_day"]:
                    hours[last] += r["in_day"]

        reads.add(
            """WITH w AS (
                   SELECT pattern_id, last_seen, last_hour - $4::interval AS week_from,
                          last_hour - $3::interval AS day_from,
                          upto_hour - $4::interval AS week_always,
                          upto_hour - $3::interval AS day_always
                   FROM (SELECT pattern_id, last_seen,
                                date_trunc('hour', last_seen, 'UTC') AS last_hour,
                                date_trunc('hour', GREATEST(last_seen, $2::timestamptz),
                                           'UTC') AS upto_hour
                         FROM patterns WHERE pattern_id = ANY($1::text[])) p)
               SELECT w.pattern_id, w.last_seen,
                      array_agg(s.start) FILTER (WHERE s.start < w.week_always
                          OR (s.start >= w.day_from AND s.start < w.day_always)) AS leaving,
                      array_agg(s.occurrences) FILTER (WHERE s.start < w.week_always
                          OR (s.start >= w.day_from AND s.start < w.day_always)) AS leaving_n,
                      coalesce(sum(s.occurrences) FILTER (
                          WHERE s.start >= w.week_always AND s.start < w.day_from), 0)::int
                          AS week_only,
                      coalesce(sum(s.occurrences) FILTER (
                          WHERE s.start >= w.day_always), 0)::int AS in_day
               FROM w JOIN pattern_series s
                 ON s.pattern_id = w.pattern_id AND s.grain = 'hour'
                AND s.start >= w.week_from
               GROUP BY w.pattern_id, w.last_seen""",
            [
                wanted,
                self._horizon,
                timedelta(hours=DAY_HOURS - 1),
                timedelta(hours=WEEK_HOURS - 1),
            ],
            apply,
        )

    def _read_members(
        self, reads: Reads, wanted: list[str], observations: Sequence[Observation]
    ) -> None:
        """How many distinct members each pattern has, its agent versions, and which of
        the batch's own members it has already."""
        state = self._state

        def apply_counts(rows: Rows) -> None:
            for r in rows:
                state.member_counts[(r["pattern_id"], r["dimension"])] = r["members"]

        reads.add(
            """SELECT pattern_id, dimension, members FROM pattern_member_counts
               WHERE pattern_id = ANY($1::text[])""",
            [wanted],
            apply_counts,
        )
        self._read_batch_members(reads, wanted, observations, with_versions=True)

    def _read_batch_members(
        self,
        reads: Reads,
        wanted: list[str],
        observations: Sequence[Observation],
        with_versions: bool = False,
    ) -> None:
        """Which of the batch's own members the patterns have already (and, when they are
        loaded, every agent version they have met)."""
        state = self._state

        def apply(rows: Rows) -> None:
            for r in rows:
                state.members.add((r["pattern_id"], r["dimension"], r["value"]))
                if r["dimension"] == "agent_version":
                    state.versions[r["pattern_id"]].add(r["value"])

        batch_members = sorted({m for o in observations for m in o.members})
        reads.add(
            """SELECT m.pattern_id, m.dimension, m.value FROM pattern_members m
               WHERE m.pattern_id = ANY($1::text[])
                 AND (($4::bool AND m.dimension = 'agent_version')
                      OR (m.dimension, m.value) IN (
                          SELECT * FROM unnest($2::text[], $3::text[])))""",
            [wanted, [d for d, _ in batch_members], [v for _, v in batch_members], with_versions],
            apply,
        )

    def _read_kept(self, reads: Reads, wanted: list[str]) -> None:
        """The intents, exemplars and paths each pattern keeps, in position order."""
        state = self._state

        def apply(rows: Rows) -> None:
            for r in rows:
                kind, pattern_id = r["kind"], r["pattern_id"]
                self._next[(kind, pattern_id)] = r["position"] + 1
                if kind == INTENT:
                    state.intents.setdefault(pattern_id, []).append(tuple(r["signature"]))
                    self._bucket_of[pattern_id] = r["bucket"]
                elif kind == EXEMPLAR:
                    state.exemplars.setdefault(pattern_id, []).append(
                        (r["trace_id"], tuple(r["signature"]))
                    )
                else:
                    state.paths.setdefault(pattern_id, []).append(tuple(r["tools"]))

        reads.add(
            """SELECT 0 AS kind, pattern_id, position, NULL AS trace_id, signature,
                      NULL::text[] AS tools, bucket
               FROM pattern_intents WHERE pattern_id = ANY($1::text[])
               UNION ALL
               SELECT 1, pattern_id, position, trace_id, signature, NULL, NULL
               FROM pattern_exemplars WHERE pattern_id = ANY($1::text[])
               UNION ALL
               SELECT 2, pattern_id, position, NULL, NULL, tools, NULL
               FROM pattern_paths WHERE pattern_id = ANY($1::text[])
               ORDER BY kind, pattern_id, position""",
            [wanted],
            apply,
        )

    def _read_baselines(self, reads: Reads, agents: set[str]) -> None:
        wanted = sorted(agents - self._loaded_agents)
        if not wanted:
            return
        self._loaded_agents.update(wanted)

        def apply(rows: Rows) -> None:
            for r in rows:
                self._state.measures[(r["agent"], r["measure"])] = MeasureSums(
                    r["traces"], r["total"], r["squares"]
                )

        reads.add(
            """SELECT agent, measure, traces, total, squares FROM agent_baselines
               WHERE agent = ANY($1::text[])""",
            [wanted],
            apply,
        )

    def _read_days(
        self, reads: Reads, pattern_ids: set[str], agents: set[str], first: date, last: date
    ) -> None:
        """Daily series over every trend window ending between ``first`` and ``last``.
        A key already loaded over part of that span keeps the days it has (the batch may
        have added to them); only the days around them are read."""
        since = first - timedelta(days=TREND_DAYS)
        patterns = self._missing_days("pattern", pattern_ids, since, last)
        agents_missing = self._missing_days("agent", agents, since, last)
        state = self._state
        # Each read's span is its own: the rows come once both reads are answered.
        if patterns:
            pattern_span = self._widened("pattern", patterns, since, last)

            def apply_patterns(rows: Rows) -> None:
                for r in rows:
                    key = (r["pattern_id"], date.fromisoformat(r["day"]))
                    if self._new_day("pattern", *key):
                        state.daily[key] = [r["occurrences"], r["rescues"]]
                self._cover("pattern", patterns, *pattern_span)

            reads.add(PATTERN_DAILY, [patterns, *pattern_span], apply_patterns)
        if agents_missing:
            agent_span = self._widened("agent", agents_missing, since, last)

            def apply_agents(rows: Rows) -> None:
                for r in rows:
                    key = (r["agent"], date.fromisoformat(r["day"]))
                    if self._new_day("agent", *key):
                        state.agent_daily[key] = r["traces"]
                self._cover("agent", agents_missing, *agent_span)

            reads.add(AGENT_DAILY, [agents_missing, *agent_span], apply_agents)

    def _missing_days(self, kind: str, keys: Iterable[str], since: date, last: date) -> list[str]:
        spans = self._day_spans[kind]
        return sorted(
            k for k in keys if (span := spans.get(k)) is None or since < span[0] or last > span[1]
        )

    def _widened(self, kind: str, keys: list[str], since: date, last: date) -> tuple[date, date]:
        """One span that holds [since, last] and every key's loaded span, so each key's
        days stay contiguous once read."""
        lo, hi = since, last
        for k in keys:
            span = self._day_spans[kind].get(k)
            if span is not None:
                lo, hi = min(lo, span[0]), max(hi, span[1])
        return lo, hi

    def _new_day(self, kind: str, key: str, day: date) -> bool:
        span = self._day_spans[kind].get(key)
        return span is None or not span[0] <= day <= span[1]

    def _cover(self, kind: str, keys: list[str], lo: date, hi: date) -> None:
        for k in keys:
            self._day_spans[kind][k] = (lo, hi)

    # --- the calls -----------------------------------------------------------------

    async def record(self, obs: Observation) -> Recorded:
        if obs.trace_id not in self._loaded_traces:  # not prefetched with its batch
            await self.load([obs])
        recorded = self._state.record_now(obs)
        until = self._sightings_until.get(recorded.pattern_id, obs.seen_at)
        if recorded.first_delivery and (until is None or obs.seen_at > until):
            # Cannot happen when a batch is prefetched whole; a guard for new callers.
            raise RuntimeError(
                f"pattern {recorded.pattern_id}'s sightings were read up to {until}, "
                "not for a trace seen later: prefetch every trace of the batch first"
            )
        return recorded

    async def pattern(self, pattern_id: str) -> PatternInfo:
        if pattern_id not in self._loaded_patterns:
            await self.load(pattern_ids=[pattern_id])
        if pattern_id not in self._state.patterns:
            raise KeyError(pattern_id)
        return self._state.pattern_now(pattern_id)

    async def days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]:
        reads = Reads()
        self._read_days(reads, {pattern_id}, {agent}, until, until)
        await reads.run(self.conn)
        return self._state.days_now(pattern_id, agent, until)

    async def baseline(self, agent: str) -> AgentBaseline:
        reads = Reads()
        self._read_baselines(reads, {agent})
        await reads.run(self.conn)
        return self._state.baseline_now(agent)

    async def reference(self, obs: Observation) -> tuple[str | None, list[Path]]:
        if obs.trace_id not in self._loaded_traces:  # its success bucket's rows with it
            await self.load([obs])
        return self._state.reference_now(obs)

    async def mark_forwarded(self, trace_ids: Collection[str]) -> None:
        await self.conn.execute(
            "UPDATE dedupe_traces SET forwarded = true WHERE trace_id = ANY($1::text[])",
            list(trace_ids),
        )

    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None:
        await self.conn.execute(
            """INSERT INTO pattern_coverage AS c (pattern_id, fixture_version, updated_at)
               VALUES ($1, $2, $3) ON CONFLICT (pattern_id) DO UPDATE
               SET fixture_version = GREATEST(c.fixture_version, EXCLUDED.fixture_version),
                   updated_at = EXCLUDED.updated_at""",
            pattern_id,
            fixture_version,
            at,
        )

    async def clear_coverage(self, pattern_id: str) -> None:
        await self.conn.execute("DELETE FROM pattern_coverage WHERE pattern_id = $1", pattern_id)

    # --- writing -------------------------------------------------------------------

    async def flush(self) -> None:
        """Writes what the batch changed: one statement per table."""
        changes, self._journal[:] = list(self._journal), []
        self._versions |= await JournalWriter(self.conn, self._state, self._next).write(changes)
