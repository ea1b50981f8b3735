"""The pattern store on PostgreSQL, one batch at a time, inside the batch's transaction
(``PostgresPatternStore.batch`` opens it and takes the buckets' locks).

A session loads every row the batch can read into an in-memory store (``load``: two round
trips for the whole batch, its set-based reads, written in ``pg_reads``, answered together
by ``shared.db.Reads``), lets it decide trace after trace by the rules written once in
``memory_store``, and at the end writes what its journal says changed (``flush``: one
statement, counts added as deltas). Holding the buckets' locks from load to commit is what
makes the loaded rows the truth for the batch: a bucket's patterns are written only under
its lock. Agent-wide rows (baselines, daily traffic) are also written by other buckets'
batches; they are loaded as committed at the start, added to, and written as deltas, so
nothing concurrent is lost.

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

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Literal

from services.dedupe import pg_reads
from services.dedupe.logic import (
    Observation,
    Recorded,
    pattern_id_of,
    success_bucket,
)
from services.dedupe.memory_store import (
    InMemoryPatternStore,
    NewTrace,
    Redelivered,
)
from services.dedupe.pg_journal import EXEMPLAR, INTENT, PATH, JournalWriter
from services.dedupe.trajectory import Path
from shared.db import Connection, Reads
from shared.events import AgentBaseline, PatternInfo
from shared.series import TREND_DAYS
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

        def apply(now: dict[str, int]) -> None:
            for bucket, version in now.items():
                if self._versions.get(bucket, version) != version:
                    stale.add(bucket)
                self._versions[bucket] = version

        pg_reads.read_versions(reads, sorted(buckets), apply)

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
        pg_reads.read_coverage(reads, state, wanted)
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
        pg_reads.read_traces(reads, self._state, wanted, found)

    def _read_bands(self, reads: Reads, pairs: set[tuple[str, int]], found: set[str]) -> None:
        wanted = sorted(pairs - self._loaded_pairs)
        if not wanted:
            return
        self._loaded_pairs.update(wanted)
        pg_reads.read_bands(reads, self._state, wanted, found)

    def _read_patterns(
        self, reads: Reads, pattern_ids: set[str], observations: Sequence[Observation]
    ) -> None:
        """Everything of the patterns not loaded yet."""
        wanted = sorted(pattern_ids - self._loaded_patterns)
        if not wanted:
            return
        self._loaded_patterns.update(wanted)
        self._fresh.update(wanted)
        state = self._state
        pg_reads.read_patterns(reads, state, wanted)
        self._read_sightings(reads, wanted, observations)
        pg_reads.read_member_counts(reads, state, wanted)
        self._read_batch_members(reads, wanted, observations, with_versions=True)
        pg_reads.read_kept(reads, state, wanted, self._next, self._bucket_of)

    def _read_sightings(
        self, reads: Reads, wanted: list[str], observations: Sequence[Observation]
    ) -> None:
        """The sightings' read (pg_reads.read_sightings) up to the latest trace any load
        was for: the horizon each pattern's sightings stand for is remembered."""
        if observations:
            latest = max(o.seen_at for o in observations)
            self._horizon = latest if self._horizon is None else max(self._horizon, latest)
        for pattern_id in wanted:
            self._sightings_until[pattern_id] = self._horizon
        pg_reads.read_sightings(reads, self._state, wanted, self._horizon)

    def _read_batch_members(
        self,
        reads: Reads,
        wanted: list[str],
        observations: Sequence[Observation],
        with_versions: bool = False,
    ) -> None:
        batch_members = sorted({m for o in observations for m in o.members})
        pg_reads.read_batch_members(reads, self._state, wanted, batch_members, with_versions)

    def _read_baselines(self, reads: Reads, agents: set[str]) -> None:
        wanted = sorted(agents - self._loaded_agents)
        if not wanted:
            return
        self._loaded_agents.update(wanted)
        pg_reads.read_baselines(reads, self._state, wanted)

    def _read_days(
        self, reads: Reads, pattern_ids: set[str], agents: set[str], first: date, last: date
    ) -> None:
        """Daily series over every trend window ending between ``first`` and ``last``.
        A key already loaded over part of that span keeps the days it has (the batch may
        have added to them); only the days around them are read."""
        since = first - timedelta(days=TREND_DAYS)
        # Each read's span is its own: the rows come once both reads are answered.
        kinds: tuple[tuple[Literal["pattern", "agent"], set[str]], ...] = (
            ("pattern", pattern_ids),
            ("agent", agents),
        )
        for kind, keys in kinds:
            missing = self._missing_days(kind, keys, since, last)
            if missing:
                span = self._widened(kind, missing, since, last)
                is_new = functools.partial(self._new_day, kind)
                then = functools.partial(self._cover, kind, missing, *span)
                pg_reads.read_days(reads, self._state, kind, missing, span, is_new, then)

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
