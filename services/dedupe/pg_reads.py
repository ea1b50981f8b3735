"""The pattern store's reads on PostgreSQL: each adds one statement to a batch's ``Reads``
(answered together in one round trip) and, once its rows come, puts them into the
in-memory store as the rows they are. Which rows a batch needs, and what it keeps of them
from one batch to the next, is the session's to decide (pg_session.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

from services.dedupe.logic import DAY_HOURS, WEEK_HOURS, MeasureSums, hour_of
from services.dedupe.memory_store import InMemoryPatternStore, PatternRow, TraceRow
from services.dedupe.pg_journal import EXEMPLAR, INTENT
from shared.db import Reads, Rows, instant
from shared.series import AGENT_DAILY, PATTERN_DAILY


def read_versions(
    reads: Reads, buckets: list[str], apply: Callable[[dict[str, int]], None]
) -> None:
    """Each bucket's version (0 for a bucket never written), handed to ``apply``."""
    reads.add(
        "SELECT bucket, version FROM dedupe_bucket_versions WHERE bucket = ANY($1::text[])",
        [buckets],
        lambda rows: apply(dict.fromkeys(buckets, 0) | {r["bucket"]: r["version"] for r in rows}),
    )


def read_coverage(reads: Reads, state: InMemoryPatternStore, pattern_ids: list[str]) -> None:
    def apply(rows: Rows) -> None:
        for r in rows:
            state.coverage[r["pattern_id"]] = r["fixture_version"]

    reads.add(
        """SELECT pattern_id, fixture_version FROM pattern_coverage
           WHERE pattern_id = ANY($1::text[])""",
        [pattern_ids],
        apply,
    )


def read_traces(
    reads: Reads, state: InMemoryPatternStore, trace_ids: list[str], found: set[str]
) -> None:
    """The traces already recorded; their patterns go into ``found``."""

    def apply(rows: Rows) -> None:
        for r in rows:
            state.traces[r["trace_id"]] = TraceRow(
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
        [trace_ids],
        apply,
    )


def read_bands(
    reads: Reads, state: InMemoryPatternStore, pairs: list[tuple[str, int]], found: set[str]
) -> None:
    """The patterns under each (bucket, band key); they go into ``found`` too."""
    bands = state.intent_bands
    for pair in pairs:
        bands.setdefault(pair, set())

    def apply(rows: Rows) -> None:
        for r in rows:
            bands[(r["bucket"], r["band_key"])].add(r["pattern_id"])
            found.add(r["pattern_id"])

    reads.add(
        """SELECT b.bucket, b.band_key, b.pattern_id FROM pattern_intent_bands b
           JOIN unnest($1::text[], $2::int8[]) AS w(bucket, band_key)
             ON b.bucket = w.bucket AND b.band_key = w.band_key""",
        [[b for b, _ in pairs], [k for _, k in pairs]],
        apply,
    )


def read_patterns(reads: Reads, state: InMemoryPatternStore, pattern_ids: list[str]) -> None:
    """The patterns' own rows, with their coverage."""

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
        [pattern_ids],
        apply,
    )


def read_sightings(
    reads: Reads, state: InMemoryPatternStore, pattern_ids: list[str], horizon: datetime | None
) -> None:
    """What the 24-hour and 7-day counts need of each pattern's hourly sightings (its
    hourly series, summed over agent versions). Only the hours of the week that ends
    with its last sighting count, and within the batch the last sighting can move on
    only up to the batch's latest trace (the ``horizon``): an hour that stays inside a
    window for every last sighting up to the horizon is read as a count, and stands in
    the store as an hour that is inside that window (and outside the other) whatever
    the last sighting becomes; only the hours a window can leave during the batch are
    read one by one (an hour's row per agent version: they add up). At most a few
    rows per pattern come back, whatever its traffic."""

    def apply(rows: Rows) -> None:
        for r in rows:
            last = hour_of(instant(r["last_seen"]))
            hours = state.sightings[r["pattern_id"]]
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
            pattern_ids,
            horizon,
            timedelta(hours=DAY_HOURS - 1),
            timedelta(hours=WEEK_HOURS - 1),
        ],
        apply,
    )


def read_member_counts(reads: Reads, state: InMemoryPatternStore, pattern_ids: list[str]) -> None:
    """How many distinct members of each dimension each pattern has."""

    def apply(rows: Rows) -> None:
        for r in rows:
            state.member_counts[(r["pattern_id"], r["dimension"])] = r["members"]

    reads.add(
        """SELECT pattern_id, dimension, members FROM pattern_member_counts
           WHERE pattern_id = ANY($1::text[])""",
        [pattern_ids],
        apply,
    )


def read_batch_members(
    reads: Reads,
    state: InMemoryPatternStore,
    pattern_ids: list[str],
    batch_members: Sequence[tuple[str, str]],
    with_versions: bool = False,
) -> None:
    """Which of the batch's own members the patterns have already (and, with
    ``with_versions``, every agent version they have met)."""

    def apply(rows: Rows) -> None:
        for r in rows:
            state.members.add((r["pattern_id"], r["dimension"], r["value"]))
            if r["dimension"] == "agent_version":
                state.versions[r["pattern_id"]].add(r["value"])

    reads.add(
        """SELECT m.pattern_id, m.dimension, m.value FROM pattern_members m
           WHERE m.pattern_id = ANY($1::text[])
             AND (($4::bool AND m.dimension = 'agent_version')
                  OR (m.dimension, m.value) IN (
                      SELECT * FROM unnest($2::text[], $3::text[])))""",
        [pattern_ids, [d for d, _ in batch_members], [v for _, v in batch_members], with_versions],
        apply,
    )


def read_kept(
    reads: Reads,
    state: InMemoryPatternStore,
    pattern_ids: list[str],
    next_position: dict[tuple[int, str], int],
    bucket_of: dict[str, str],
) -> None:
    """The intents, exemplars and paths each pattern keeps, in position order; the next
    free position of each goes into ``next_position``, each pattern's bucket (its intents
    say it) into ``bucket_of``."""

    def apply(rows: Rows) -> None:
        for r in rows:
            kind, pattern_id = r["kind"], r["pattern_id"]
            next_position[(kind, pattern_id)] = r["position"] + 1
            if kind == INTENT:
                state.intents.setdefault(pattern_id, []).append(tuple(r["signature"]))
                bucket_of[pattern_id] = r["bucket"]
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
        [pattern_ids],
        apply,
    )


def read_baselines(reads: Reads, state: InMemoryPatternStore, agents: list[str]) -> None:
    def apply(rows: Rows) -> None:
        for r in rows:
            state.measures[(r["agent"], r["measure"])] = MeasureSums(
                r["traces"], r["total"], r["squares"]
            )

    reads.add(
        """SELECT agent, measure, traces, total, squares FROM agent_baselines
           WHERE agent = ANY($1::text[])""",
        [agents],
        apply,
    )


def read_days(
    reads: Reads,
    state: InMemoryPatternStore,
    kind: Literal["pattern", "agent"],
    keys: list[str],
    span: tuple[date, date],
    is_new: Callable[[str, date], bool],
    then: Callable[[], None],
) -> None:
    """The daily series of patterns (occurrences, rescues) or of agents (traces) over
    ``span``: a day ``is_new`` says is not loaded yet is added; ``then`` runs once the
    rows are in."""

    if kind == "pattern":
        sql, column = PATTERN_DAILY, "pattern_id"

        def put(key: str, day: date, r: dict[str, Any]) -> None:
            state.daily[(key, day)] = [r["occurrences"], r["rescues"]]
    else:
        sql, column = AGENT_DAILY, "agent"

        def put(key: str, day: date, r: dict[str, Any]) -> None:
            state.agent_daily[(key, day)] = r["traces"]

    def apply(rows: Rows) -> None:
        for r in rows:
            key, day = r[column], date.fromisoformat(r["day"])
            if is_new(key, day):
                put(key, day, r)
        then()

    reads.add(sql, [keys, *span], apply)
