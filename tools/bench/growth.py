"""Growth: the cost per trace of dedupe's and scoring's store calls with 10k, 100k and 1M
patterns in the store.

Patterns are synthesised directly in PostgreSQL (INSERT ... SELECT FROM generate_series)
into every table of the pattern store, in a schema of their own (``bench_growth``, created
by the project's migrations), so the pipeline's tables are never touched. Per synthetic
pattern: 3 traces, 6 distinct members (a day, 2 sessions, 2 users, a version), and with
dedupe v2 one remembered intent (128 hash values and its 64 LSH band keys) and one
exemplar sketch; every 5th pattern is covered by a fixture and every 10th has one
promotion, over 30 days of history ending on the corpus' days. Synthetic patterns live in
10,000 buckets of their own, so real traces are compared with their own bucket only, as
in production; what grows is the tables and their indexes.

Then the store calls a stage makes run against the real database for realistic traces, in
batches of 50 as the batched stages make them, and are timed per trace (a batch's time over
its traces): dedupe's ``batch(buckets)`` session (``record``, ``days``, ``pattern``, and
``reference``/``baseline`` for a trace it forwards) then ``mark_forwarded`` of the batch;
scoring's ``facts`` for the batch (its budget query).

Every batch also runs against a second store of the smallest size
(``bench_growth_reference``), milliseconds apart, the two taking turns going first. The
flatness figure compares each size's cost over the reference's, so a host that slows
between sizes does not read as a store that grew dearer.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from typing import Any

import asyncpg

from services.dedupe import logic as dedupe_logic
from services.dedupe.store import PostgresPatternStore
from services.scoring import logic as scoring_logic
from services.scoring.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from services.scoring.store import PostgresBudgetStore
from shared.db import migrate
from tools.bench import events, stats
from tools.bench.context import Context, TaskHandle
from tools.corpus.generate import BASE_TIME, DAYS

SCHEMA = "bench_growth"
# A store of the smallest size, measured in turn with the growing one: the host's speed
# drifts over the minutes it takes to synthesise a million patterns, and only figures
# taken milliseconds apart compare sizes rather than moments.
REFERENCE_SCHEMA = "bench_growth_reference"
SYNTHETIC_PATTERN = "pbench-"
SYNTHETIC_TRACE = "tbench-"
BUCKETS = 10_000
CHUNK = 50_000  # patterns per INSERT statement
WORKERS = max(1, min(4, len(os.sched_getaffinity(0))))  # connections filling in parallel


def _day0() -> str:
    return (BASE_TIME + timedelta(days=DAYS) - timedelta(days=30)).isoformat()


def synthesis_sql(tables: set[str], policy_version: str, v2: bool) -> list[str]:
    """Statements filling patterns $1..$2 (inclusive) into every pattern-store table. Each
    pattern's id, bucket and time are computed once (subquery ``p``), then fanned out."""
    version = dedupe_logic.FINGERPRINT_VERSION
    p = (
        f"(SELECT g, '{SYNTHETIC_PATTERN}' || lpad(g::text, 8, '0') AS pid,"
        f" 'bbench-' || lpad((g % {BUCKETS})::text, 6, '0') AS bucket,"
        f" '{_day0()}'::timestamptz + (g % 30) * interval '1 day' AS at"
        " FROM generate_series($1::int8, $2::int8) g) p"
    )
    out = [
        f"""INSERT INTO patterns (pattern_id, fingerprint_version, fingerprint, occurrences,
                                 first_seen, last_seen)
            SELECT pid, {version}, 'v{version}' || chr(10) || 'agent=bench-' || (g % 7)
                   || chr(10) || 'synthetic=' || g, 3, at - interval '2 days', at
            FROM {p}""",
        f"""INSERT INTO dedupe_traces (trace_id, content_sha256, pattern_id, seen_at, forwarded)
            SELECT '{SYNTHETIC_TRACE}' || g || '-' || k,
                   md5(g::text || '/' || k) || md5(k::text || '/' || g), pid,
                   at - (k - 1) * interval '1 day', k = 1
            FROM {p}, generate_series(1, 3) k""",
        f"""INSERT INTO pattern_members (pattern_id, dimension, value)
            SELECT pid, d.dim, CASE d.dim WHEN 'day' THEN (at::date)::text
                                          WHEN 'agent_version' THEN '1.' || (g % 5) || '.0'
                                          ELSE substr(md5(d.dim || g || '/' || d.n), 1, 24) END
            FROM {p}, (VALUES ('session', 1), ('session', 2), ('user', 1), ('user', 2),
                              ('day', 1), ('agent_version', 1)) d(dim, n)""",
        f"""INSERT INTO pattern_coverage (pattern_id, fixture_version, updated_at)
            SELECT pid, 1, at FROM {p} WHERE g % 5 = 0""",
    ]
    if "pattern_member_counts" in tables:
        out.append(
            f"""INSERT INTO pattern_member_counts (pattern_id, dimension, members)
                SELECT pid, d.dim, d.members FROM {p},
                       (VALUES ('session', 2), ('user', 2), ('day', 1), ('agent_version', 1))
                       d(dim, members)"""
        )
    if "scoring_promotions" in tables:
        out.append(
            f"""INSERT INTO scoring_promotions (trace_id, policy_version, pattern_id, day)
                SELECT '{SYNTHETIC_TRACE}' || g || '-1', '{policy_version}', pid, at::date
                FROM {p} WHERE g % 10 = 0"""
        )
    if v2:
        # Signatures are never read for synthetic buckets (no real trace falls in one), so
        # one array of 128 hash values per table stands for all: the size is what counts.
        sketch = (
            "(SELECT array_agg(hashint8extended(i, {seed}) & 4294967295 ORDER BY i)"
            " FROM generate_series(1, 128) i)"
        )
        out += [
            f"""INSERT INTO pattern_intents (pattern_id, position, bucket, signature)
                SELECT pid, 0, bucket, s.sig FROM {p}, (SELECT {sketch.format(seed=7)} AS sig) s""",
            f"""INSERT INTO pattern_intent_bands (bucket, band_key, pattern_id)
                SELECT bucket, hashint8extended(g * 67 + b, 11), pid
                FROM {p}, generate_series(1, 64) b""",
            f"""INSERT INTO pattern_exemplars (pattern_id, position, trace_id, signature)
                SELECT pid, 0, '{SYNTHETIC_TRACE}' || g || '-1', s.sig
                FROM {p}, (SELECT {sketch.format(seed=13)} AS sig) s""",
        ]
    return out


async def _pool(dsn: str, schema: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=WORKERS + 1, server_settings={"search_path": schema}
    )
    assert pool is not None
    return pool


async def _schema(conn: Any) -> str:
    return str(await conn.fetchval("SELECT current_schema()"))


async def _tables(conn: Any) -> set[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1", await _schema(conn)
    )
    return {r["tablename"] for r in rows}


FILLED = (
    "patterns",
    "dedupe_traces",
    "pattern_members",
    "pattern_member_counts",
    "pattern_coverage",
    "scoring_promotions",
    "pattern_intents",
    "pattern_intent_bands",
    "pattern_exemplars",
)


async def _drop_indexes(conn: Any, tables: set[str]) -> list[str]:
    """Drops the keys and indexes of the tables about to be bulk-filled (no foreign key
    refers to any of them); returns the statements that re-create them. Building an index
    once is much faster than inserting tens of millions of random keys into it."""
    filled = sorted(t for t in FILLED if t in tables)
    schema = await _schema(conn)
    constraints = await conn.fetch(
        """SELECT c.conrelid::regclass::text AS tbl, c.conname,
                  pg_get_constraintdef(c.oid) AS def, c.conindid
           FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
           WHERE c.connamespace = $1::regnamespace AND c.contype IN ('p', 'u')
             AND t.relname = ANY($2::text[])""",
        schema,
        filled,
    )
    backing = {r["conindid"] for r in constraints}
    indexes = await conn.fetch(
        """SELECT i.indexrelid, c.relname AS indexname, pg_get_indexdef(i.indexrelid) AS def
           FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
           JOIN pg_class c ON c.oid = i.indexrelid
           WHERE t.relnamespace = $1::regnamespace AND t.relname = ANY($2::text[])""",
        schema,
        filled,
    )
    restore = []
    for r in constraints:
        await conn.execute(f'ALTER TABLE {r["tbl"]} DROP CONSTRAINT "{r["conname"]}"')
        restore.append(f'ALTER TABLE {r["tbl"]} ADD CONSTRAINT "{r["conname"]}" {r["def"]}')
    for r in indexes:
        if r["indexrelid"] in backing:
            continue
        await conn.execute(f'DROP INDEX "{schema}"."{r["indexname"]}"')
        restore.append(r["def"])
    return restore


async def _synthesise(
    pool: asyncpg.Pool, have: int, want: int, task: TaskHandle, policy_version: str
) -> None:
    """Fills patterns have+1..want, in chunks, on one connection per core (indexes dropped
    meanwhile and rebuilt at the end)."""
    async with pool.acquire() as conn:
        tables = await _tables(conn)
        restore = await _drop_indexes(conn, tables)
    statements = synthesis_sql(tables, policy_version, v2="pattern_intents" in tables)
    chunks = [(lo, min(want, lo + CHUNK - 1)) for lo in range(have + 1, want + 1, CHUNK)]
    done = 0

    async def worker() -> None:
        nonlocal done
        async with pool.acquire() as conn:
            await conn.execute("SET synchronous_commit = off")
            while chunks:
                lo, hi = chunks.pop(0)
                async with conn.transaction():
                    for sql in statements:
                        await conn.execute(sql, lo, hi)
                done += hi - lo + 1
                task.update(completed=done, total=want - have)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    task.update(description=f"growth: indexing {want:,} patterns")
    async with pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute(f"SET max_parallel_maintenance_workers = {WORKERS}")
        for sql in restore:
            await conn.execute(sql)
        await conn.execute("ANALYZE")


async def _remove_measured(pool: asyncpg.Pool) -> None:
    """Back to the synthetic patterns only: what earlier measurements recorded goes."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = $1 AND column_name IN ('pattern_id', 'trace_id')""",
            await _schema(conn),
        )
        columns: dict[str, set[str]] = {}
        for r in rows:
            columns.setdefault(r["table_name"], set()).add(r["column_name"])
        for table, cols in columns.items():
            if "pattern_id" in cols:
                await conn.execute(
                    f'DELETE FROM "{table}" WHERE pattern_id NOT LIKE $1', SYNTHETIC_PATTERN + "%"
                )
            else:
                await conn.execute(
                    f'DELETE FROM "{table}" WHERE trace_id NOT LIKE $1', SYNTHETIC_TRACE + "%"
                )


MEASURED_BATCH = 50  # traces per batch, as a stage's poll would hand them over
TRACES_PER_CORPUS_SCALE = 150  # at least, in the generated corpus (163 at seed 7)


async def _dedupe_batch(patterns: PostgresPatternStore, batch: list[Any]) -> None:
    """Dedupe's store calls for one batch, as services/dedupe/app.py makes them: one
    session (one transaction, the buckets' locks taken once) recording each trace and
    reading what its forwarded event carries, then the batch marked forwarded."""
    async with patterns.batch(o.bucket for o in batch) as session:
        await session.prefetch(batch)
        for obs in batch:
            recorded = await session.record(obs)
            today = obs.seen_at.date()
            days = await session.days(recorded.pattern_id, obs.agent, today)
            pattern = dedupe_logic.with_trend(
                await session.pattern(recorded.pattern_id), days, today
            )
            forward = dedupe_logic.should_forward(
                recorded, pattern.covered_by_fixture, dedupe_logic.is_rising(pattern)
            )
            if forward:
                await session.reference(obs)
                await session.baseline(obs.agent)
    await patterns.mark_forwarded([o.trace_id for o in batch])


async def _scoring_batch(
    budgets: PostgresBudgetStore, batch: list[Any], policy: Policy, count_days: bool
) -> None:
    """Scoring's budget query for one batch (services/scoring/step.py ``decide``)."""
    await budgets.facts(
        [e.trace_id for e in batch],
        sorted({e.pattern.pattern_id for e in batch}),
        {scoring_logic.budget_day(e) for e in batch} if count_days else (),
        policy.version,
    )


async def _measure(
    stores: list[asyncpg.Pool],
    observations: list[Any],
    redacted: list[Any],
    policy: Policy,
    task: TaskHandle,
) -> list[dict[str, Any]]:
    """The same traces' store calls against each store, batch by batch, the stores taking
    turns going first: one figure per store, each batch timed against every store within
    milliseconds of the others."""
    for pool in stores:
        await _remove_measured(pool)
    calls = [(PostgresPatternStore(pool), PostgresBudgetStore(pool)) for pool in stores]
    # Per store and trace: a batch's time over its traces.
    dedupe_us: list[list[float]] = [[] for _ in stores]
    scoring_us: list[list[float]] = [[] for _ in stores]
    # The query a policy with a daily cap pays (it also counts the day's promotions).
    capped_us: list[list[float]] = [[] for _ in stores]
    for i, lo in enumerate(range(0, len(observations), MEASURED_BATCH)):
        obs_batch = observations[lo : lo + MEASURED_BATCH]
        events = redacted[lo : lo + MEASURED_BATCH]
        n = len(obs_batch)
        turn = i % len(stores)
        for k in [*range(turn, len(stores)), *range(turn)]:
            patterns, budgets = calls[k]
            t0 = time.perf_counter()
            await _dedupe_batch(patterns, obs_batch)
            dedupe_us[k] += [(time.perf_counter() - t0) * 1e6 / n] * n
            # The two budget queries take turns going first, so neither always finds the
            # pages the other just read.
            capped_first = i % 2 == 1
            for count_today in (True, False) if capped_first else (False, True):
                started = time.perf_counter()
                await _scoring_batch(budgets, events, policy, count_today)
                spent = [(time.perf_counter() - started) * 1e6 / n] * n
                if count_today == policy.budgets.counts_days:
                    scoring_us[k] += spent
                if count_today:
                    capped_us[k] += spent
        task.update(completed=lo + n, total=len(observations))
    return [
        {
            "dedupe_us_per_trace": sum(dedupe_us[k]) / len(dedupe_us[k]),
            "dedupe_p95_us": stats.percentile(dedupe_us[k], 95),
            "scoring_us_per_trace": sum(scoring_us[k]) / len(scoring_us[k]),
            "scoring_p95_us": stats.percentile(scoring_us[k], 95),
            "scoring_daily_cap_us_per_trace": sum(capped_us[k]) / len(capped_us[k]),
        }
        for k in range(len(stores))
    ]


async def _sizes_on_disk(pool: asyncpg.Pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT c.relname, pg_total_relation_size(c.oid) AS bytes
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = $1 AND c.relkind = 'r'""",
            await _schema(conn),
        )
    return {r["relname"]: r["bytes"] for r in rows}


async def _recreate(dsn: str, drop_only: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for schema in (SCHEMA, REFERENCE_SCHEMA):
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            if not drop_only:
                await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()


def _size_result(
    size: int, grown: list[dict[str, Any]], small: list[dict[str, Any]], traces: int
) -> dict[str, Any]:
    """One size's figures: the grown store's, and each repetition's cost over the reference
    store's, measured batch by batch in turn on the same traces."""
    out: dict[str, Any] = {"patterns": size, "traces_timed": traces}
    for key in ("dedupe_us_per_trace", "scoring_us_per_trace"):
        out[key] = stats.measurement([r[key] for r in grown], "µs/trace")
        out[f"reference_{key}"] = stats.measurement([q[key] for q in small], "µs/trace")
        stage = key.split("_", 1)[0]
        out[f"{stage}_to_reference"] = stats.measurement(
            [r[key] / q[key] for r, q in zip(grown, small, strict=True)], "ratio"
        )
    out["dedupe_p95_us"] = stats.median_of(grown, "dedupe_p95_us")
    out["scoring_p95_us"] = stats.median_of(grown, "scoring_p95_us")
    out["scoring_daily_cap_us_per_trace"] = stats.median_of(grown, "scoring_daily_cap_us_per_trace")
    return out


def growth(ctx: Context) -> dict[str, Any]:
    policy = load_policy(DEFAULT_POLICY_PATH)
    policy_version = policy.version
    # Inputs per repetition: distinct trace ids each time, so every record is a first
    # delivery. Built in-process (observe() and the redacted events are pure and untimed).
    # One untimed pass per size comes first: the first batches on the pool's connections
    # prepare their statements and fill PostgreSQL's plan and catalogue caches, a cost the
    # first size measured would otherwise pay alone (it made 10,000 patterns look 30-50 %
    # dearer than 1,000,000 in some runs, and not in others).
    inputs: list[tuple[list[Any], list[Any]]] = []
    scale = -(-ctx.plan.growth_traces // TRACES_PER_CORPUS_SCALE)
    with ctx.reporter.task("growth: building inputs") as task:
        for rep in range((ctx.plan.reps + 1) * len(ctx.plan.growth_sizes)):
            traces = [i.trace for i in events.corpus(ctx.plan.seed + 300 + rep, scale)]
            traces = traces[: ctx.plan.growth_traces]
            normalized = events.normalized_events(traces)
            observations = [dedupe_logic.observe(e.trace, e.features) for e in normalized]
            redacted = events.redacted_events(events.deduped_events(normalized))
            inputs.append((observations, redacted))
        task.done(f"{len(inputs)} sets of {ctx.plan.growth_traces} traces")

    async def run() -> dict[str, Any]:
        await _recreate(ctx.dsn, drop_only=False)
        pool = await _pool(ctx.dsn, SCHEMA)
        reference = await _pool(ctx.dsn, REFERENCE_SCHEMA)
        results: dict[str, Any] = {}
        try:
            await migrate(pool)
            await migrate(reference)
            smallest = ctx.plan.growth_sizes[0]
            with ctx.reporter.task(
                f"growth: synthesising the {smallest:,}-pattern reference"
            ) as task:
                await _synthesise(reference, 0, smallest, task, policy_version)
                task.done(f"{smallest:,} patterns in the reference store")
            have = 0
            used = 0
            for size in ctx.plan.growth_sizes:
                with ctx.reporter.task(f"growth: synthesising {size:,} patterns") as task:
                    started = time.monotonic()
                    await _synthesise(pool, have, size, task, policy_version)
                    have = size
                    task.done(
                        f"{size:,} patterns in the store "
                        f"({time.monotonic() - started:.0f}s to synthesise)"
                    )
                with ctx.reporter.task(f"growth: warming up at {size:,} patterns") as task:
                    observations, redacted = inputs[used]
                    used += 1
                    await _measure([pool, reference], observations, redacted, policy, task)
                    task.done("untimed")
                grown: list[dict[str, Any]] = []
                small: list[dict[str, Any]] = []
                for rep in range(ctx.plan.reps):
                    label = f"growth: store calls at {size:,} patterns, run {rep + 1}"
                    with ctx.reporter.task(label) as task:
                        observations, redacted = inputs[used]
                        used += 1
                        r, q = await _measure(
                            [pool, reference], observations, redacted, policy, task
                        )
                        grown.append(r)
                        small.append(q)
                        task.done(
                            f"dedupe {r['dedupe_us_per_trace']:,.0f} µs/trace "
                            f"({q['dedupe_us_per_trace']:,.0f} at {smallest:,}), "
                            f"scoring {r['scoring_us_per_trace']:,.0f} µs/trace"
                        )
                results[str(size)] = _size_result(size, grown, small, ctx.plan.growth_traces)
                results[str(size)]["table_bytes"] = await _sizes_on_disk(pool)
        finally:
            await pool.close()
            await reference.close()
            await _recreate(ctx.dsn, drop_only=True)
        return results

    sizes = asyncio.run(run())
    v2 = dedupe_logic.FINGERPRINT_VERSION >= 2
    per_pattern = "3 traces, 6 members, "
    if v2:
        per_pattern += "1 remembered intent (128 hash values, 64 LSH band keys), 1 exemplar, "
    per_pattern += "fixture coverage for 1 in 5, a promotion for 1 in 10"
    return {
        "sizes": sizes,
        "schema": SCHEMA,
        "reference_schema": REFERENCE_SCHEMA,
        "fingerprint_version": dedupe_logic.FINGERPRINT_VERSION,
        "synthetic_per_pattern": per_pattern,
        "buckets": BUCKETS,
    }
