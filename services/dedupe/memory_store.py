"""The pattern store's rules in memory: the twin tests and evaluations run, and the working
state of a PostgreSQL batch.

``InMemoryPatternStore`` holds every row it was given and decides as the stage decides:
redelivery, assignment to a pattern, exemplar role, and what each trace adds to counts,
members, series, baselines, paths and intents. The PostgreSQL session (``pg_session``)
loads the rows a batch can touch into one of these, lets it decide, and writes what its
``journal`` says changed: the rules are written once, here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from services.dedupe.logic import (
    DAY_HOURS,
    DEFAULT_EXEMPLARS,
    INTENT_THRESHOLD,
    WEEK_HOURS,
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
    first_counted_hour,
    hour_of,
    pattern_fingerprint,
    series_starts,
    sightings_since,
    success_bucket,
)
from services.dedupe.trajectory import MAX_PATHS, Path
from shared.events import AgentBaseline, PatternInfo
from shared.series import days_of
from shared.trends import DayCount


@dataclass
class TraceRow:
    content_sha256: str
    pattern_id: str
    seen_at: datetime
    forwarded: bool
    near_copy: bool


@dataclass(frozen=True)
class PatternRow:
    fingerprint_version: int
    fingerprint: str
    occurrences: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class NewTrace:
    """Everything one first delivery changed, as the journal records it."""

    obs: Observation
    pattern_id: str
    role: Role
    remember_intent: bool
    path_kept: bool
    new_members: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Redelivered:
    trace_id: str


Change = NewTrace | Redelivered


@dataclass
class InMemoryPatternStore:
    """The same decisions as the PostgreSQL store, for tests and the evaluation scripts."""

    max_exemplars: int = DEFAULT_EXEMPLARS
    # Only evaluations change it: a threshold sweep runs the twin, never the live store.
    intent_threshold: float = INTENT_THRESHOLD
    # When a list, every change is appended to it (a PostgreSQL batch writes from it).
    journal: list[Change] | None = None
    traces: dict[str, TraceRow] = field(default_factory=dict)
    patterns: dict[str, PatternRow] = field(default_factory=dict)
    members: set[tuple[str, str, str]] = field(default_factory=set)
    coverage: dict[str, int] = field(default_factory=dict)
    intents: dict[str, list[Sketch]] = field(default_factory=dict)
    intent_bands: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    exemplars: dict[str, list[tuple[str, Sketch]]] = field(default_factory=dict)
    measures: dict[tuple[str, str], MeasureSums] = field(default_factory=dict)
    paths: dict[str, list[Path]] = field(default_factory=dict)
    # Distinct members per (pattern, dimension), and the agent versions by name.
    member_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    versions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # Each pattern's sightings per UTC hour: its 24-hour and 7-day counts.
    sightings: dict[str, Counter[datetime]] = field(default_factory=lambda: defaultdict(Counter))
    # Daily series: (pattern, day) -> [occurrences, rescues]; (agent, day) -> traces.
    daily: dict[tuple[str, date], list[int]] = field(default_factory=dict)
    agent_daily: dict[tuple[str, date], int] = field(default_factory=lambda: defaultdict(int))

    async def record(self, obs: Observation) -> Recorded:
        return self.record_now(obs)

    def record_now(self, obs: Observation) -> Recorded:
        existing = self.traces.get(obs.trace_id)
        if existing is not None:
            same = existing.content_sha256 == obs.content_sha256
            existing.forwarded = existing.forwarded and same
            existing.content_sha256 = obs.content_sha256
            if self.journal is not None:
                self.journal.append(Redelivered(obs.trace_id))
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
        self.traces[obs.trace_id] = TraceRow(
            obs.content_sha256,
            pattern_id,
            obs.seen_at,
            forwarded=False,
            near_copy=role == Role.NEAR_COPY,
        )
        self._count(pattern_id, obs)
        new_members = tuple(
            (d, v) for d, v in dict.fromkeys(obs.members) if (pattern_id, d, v) not in self.members
        )
        for dimension, member in new_members:
            self.members.add((pattern_id, dimension, member))
            self.member_counts[(pattern_id, dimension)] += 1
            if dimension == "agent_version":
                self.versions[pattern_id].add(member)
        self.sightings[pattern_id][hour_of(obs.seen_at)] += 1
        self._add_series(pattern_id, obs)
        kept_paths = self.paths.setdefault(pattern_id, [])
        path_kept = len(kept_paths) < MAX_PATHS
        if path_kept:
            kept_paths.append(obs.path)
        for name, value in obs.measures:
            old = self.measures.get((obs.agent, name), MeasureSums(0, 0.0, 0.0))
            self.measures[(obs.agent, name)] = MeasureSums(
                old.traces + 1, old.total + value, old.squares + value * value
            )
        if assigned.remember_intent:
            self.intents.setdefault(pattern_id, []).append(obs.intent)
            for key in obs.intent_bands:
                self.intent_bands.setdefault((obs.bucket, key), set()).add(pattern_id)
        if role == Role.EXEMPLAR:
            kept.append((obs.trace_id, obs.content))
        if self.journal is not None:
            self.journal.append(
                NewTrace(obs, pattern_id, role, assigned.remember_intent, path_kept, new_members)
            )
        return Recorded(
            pattern_id,
            first_delivery=True,
            already_forwarded=False,
            near_copy=role == Role.NEAR_COPY,
        )

    def _count(self, pattern_id: str, obs: Observation) -> None:
        old = self.patterns.get(pattern_id)
        if old is None:
            self.patterns[pattern_id] = PatternRow(
                obs.fingerprint_version,
                pattern_fingerprint(obs.fingerprint, obs.intent),
                1,
                obs.seen_at,
                obs.seen_at,
            )
        else:
            self.patterns[pattern_id] = PatternRow(
                old.fingerprint_version,
                old.fingerprint,
                old.occurrences + 1,
                min(old.first_seen, obs.seen_at),
                max(old.last_seen, obs.seen_at),
            )

    def _add_series(self, pattern_id: str, obs: Observation) -> None:
        for grain, start in series_starts(obs.seen_at):
            if grain == "day":
                daily = self.daily.setdefault((pattern_id, start.date()), [0, 0])
                daily[0] += 1
                daily[1] += obs.point.rescues
                self.agent_daily[(obs.agent, start.date())] += 1

    async def pattern(self, pattern_id: str) -> PatternInfo:
        return self.pattern_now(pattern_id)

    def pattern_now(self, pattern_id: str) -> PatternInfo:
        row = self.patterns[pattern_id]
        sightings = self.sightings[pattern_id]
        return PatternInfo(
            pattern_id=pattern_id,
            fingerprint_version=row.fingerprint_version,
            fingerprint=row.fingerprint,
            occurrences=row.occurrences,
            distinct_sessions=self.member_counts[(pattern_id, "session")],
            distinct_users=self.member_counts[(pattern_id, "user")],
            distinct_days=self.member_counts[(pattern_id, "day")],
            agent_versions=tuple(sorted(self.versions.get(pattern_id, ()))),
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            count_24h=sightings_since(sightings, first_counted_hour(row.last_seen, DAY_HOURS)),
            count_7d=sightings_since(sightings, first_counted_hour(row.last_seen, WEEK_HOURS)),
            covered_by_fixture=pattern_id in self.coverage,
        )

    @asynccontextmanager
    async def batch(self, buckets: Iterable[str]) -> AsyncIterator[InMemoryPatternStore]:
        yield self

    async def prefetch(self, observations: Sequence[Observation]) -> None:
        """Nothing to fetch: every row is at hand."""

    def forget(self) -> None:
        """Nothing is kept beside the rows themselves."""

    async def mark_forwarded(self, trace_ids: Collection[str]) -> None:
        for trace_id in trace_ids:
            self.traces[trace_id].forwarded = True

    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None:
        self.coverage[pattern_id] = max(self.coverage.get(pattern_id, 0), fixture_version)

    async def clear_coverage(self, pattern_id: str) -> None:
        self.coverage.pop(pattern_id, None)

    async def baseline(self, agent: str) -> AgentBaseline:
        return self.baseline_now(agent)

    def baseline_now(self, agent: str) -> AgentBaseline:
        return baseline_of(agent, {m: s for (a, m), s in self.measures.items() if a == agent})

    async def reference(self, obs: Observation) -> tuple[str | None, list[Path]]:
        return self.reference_now(obs)

    def reference_now(self, obs: Observation) -> tuple[str | None, list[Path]]:
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
        return self.days_now(pattern_id, agent, until)

    def days_now(self, pattern_id: str, agent: str, until: date) -> list[DayCount]:
        return days_of(pattern_id, agent, until, self.daily, self.agent_daily)
