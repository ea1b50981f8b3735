"""The fixture store on PostgreSQL, one batch of promotions at a time, inside the batch's
transaction (``PostgresFixtureStore.batch`` opens it).

A session takes the locks of every trace and fixture the batch touches and loads the rows
it can read into an in-memory store (``prefetch``: one locking statement, then the traces'
decisions, the fixtures with their highest versions, and the versions its writes can match,
three queries for the whole batch), lets it
decide promotion after promotion by the rules written once in ``memory_store`` (a later
promotion sees an earlier one's version and decision, as sequential writes did), and at
the end writes what its journal says changed (``flush``: one statement per table).
Holding the locks from load to commit is what makes the loaded rows the truth for the
batch: a fixture's rows are written only under its lock, a trace's decisions only under
the trace's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime

from services.fixture_writer.logic import FixtureDraft, decision_time
from services.fixture_writer.memory_store import (
    Blocked,
    Change,
    Decided,
    InMemoryFixtureStore,
    Restored,
    VersionAdded,
    Written,
)
from shared.db import Connection, jsonb, pg_text
from shared.events import TraceScored


# Lock order, everywhere: trace, then fixture. A write and a withdrawal of one trace are
# serialised by the trace lock, so either the withdrawal sees the written version or the
# write sees the withdrawing decision.
async def lock(conn: Connection, *keys: str) -> None:
    # One round trip, the locks taken in the order given (WITH ORDINALITY keeps it).
    await conn.execute(
        """SELECT pg_advisory_xact_lock(hashtext(k)) FROM (
               SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n
           ) AS ordered""",
        list(keys),
    )


def trace_key(trace_id: str) -> str:
    return f"trace:{trace_id}"


def scores_json(event: TraceScored) -> str:
    return jsonb({k: v.model_dump(mode="json") for k, v in event.scores.items()})


@dataclass(frozen=True)
class GateLine:
    action: str
    fixture_id: str
    version: int
    kind: str
    pattern_id: str
    criteria: tuple[str, ...]
    reason: str
    policy_version: str
    # When the decision behind the line was made: with the rest, what makes a line unique,
    # so a redelivery logs nothing twice and a later cycle of the same change still logs.
    decided: datetime


def draft_line(action: str, draft: FixtureDraft, version: int, event: TraceScored) -> GateLine:
    return GateLine(
        action,
        draft.fixture_id,
        version,
        draft.kind.value,
        draft.pattern_id,
        draft.criteria,
        event.reason,
        event.policy_version,
        decision_time(event),
    )


async def insert_gate_lines(conn: Connection, lines: Sequence[tuple[datetime, GateLine]]) -> None:
    """The lines (when, line) in the order given; one already logged is not logged again.
    Criteria go as jsonb: PostgreSQL arrays cannot hold rows of different lengths."""
    await conn.execute(
        """INSERT INTO gate_log (at, action, fixture_id, version, kind, pattern_id,
                                 criteria, reason, policy_version, decision_at)
           SELECT u.at, u.action, u.fixture_id, u.version, u.kind, u.pattern_id,
                  ARRAY(SELECT jsonb_array_elements_text(u.criteria)), u.reason,
                  u.policy_version, u.decided
           FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::int[], $5::text[],
                       $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::timestamptz[])
                WITH ORDINALITY AS u(at, action, fixture_id, version, kind, pattern_id,
                                     criteria, reason, policy_version, decided, n)
           ORDER BY u.n
           ON CONFLICT DO NOTHING""",
        [at for at, _ in lines],
        [line.action for _, line in lines],
        [line.fixture_id for _, line in lines],
        [line.version for _, line in lines],
        [line.kind for _, line in lines],
        [line.pattern_id for _, line in lines],
        [jsonb(list(line.criteria)) for _, line in lines],
        [line.reason for _, line in lines],
        [line.policy_version for _, line in lines],
        [line.decided for _, line in lines],
    )


async def upsert_decisions(
    conn: Connection, decided: Sequence[Decided], scores: Callable[[TraceScored], str] = scores_json
) -> None:
    """At most one decision per (trace, policy): one statement cannot update a row twice.
    The latest per trace and policy is kept: a replay under a policy already used
    re-decides, and a redelivered older decision does not overwrite a newer one."""
    events = [d.event for d in decided]
    await conn.execute(
        """INSERT INTO decisions AS d (trace_id, policy_version, pattern_id, decision, total,
                                       scores, reason, decided_at, stamped_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
                                $6::jsonb[], $7::text[], $8::timestamptz[], $9::timestamptz[])
           ON CONFLICT (trace_id, policy_version) DO UPDATE
           SET decision = EXCLUDED.decision, total = EXCLUDED.total,
               scores = EXCLUDED.scores, reason = EXCLUDED.reason,
               decided_at = EXCLUDED.decided_at, stamped_at = EXCLUDED.stamped_at
           WHERE d.stamped_at IS NULL OR d.stamped_at < EXCLUDED.stamped_at""",
        [e.trace_id for e in events],
        [e.policy_version for e in events],
        [e.pattern.pattern_id for e in events],
        [e.decision.value for e in events],
        [e.total for e in events],
        [scores(e) for e in events],
        [pg_text(e.reason) for e in events],
        [d.at for d in decided],
        [decision_time(e) for e in events],
    )


class Session:
    """The promotion writes on one connection, inside the batch's transaction, decided on
    loaded rows and written at the end."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._journal: list[Change] = []
        self._state = InMemoryFixtureStore(journal=self._journal)
        self._traces: set[str] = set()  # locked, their decisions loaded
        self._fixtures: set[str] = set()  # locked, their rows loaded
        # The versions a write can match: by digest, or by (trace, policy) sourced. Every
        # held fixture's versions matching any of these are loaded.
        self._digests: set[str] = set()
        self._sources: set[tuple[str, str]] = set()
        self._versions: set[tuple[str, int]] = set()  # (fixture, version) loaded

    # --- reading -------------------------------------------------------------------

    async def prefetch(
        self, promotions: Sequence[tuple[TraceScored, Sequence[FixtureDraft]]]
    ) -> None:
        """Locks and loads what the batch's promotions can read: all their traces' locks
        (sorted), then all their fixtures' (sorted), in one statement: the store's one lock
        order (see ``PostgresFixtureStore``), so it cannot deadlock."""
        await self._take(
            {event.trace_id for event, _ in promotions},
            {draft.fixture_id for _, drafts in promotions for draft in drafts},
            {draft.body_sha256 for _, drafts in promotions for draft in drafts},
            {(event.trace_id, event.policy_version) for event, _ in promotions},
        )

    async def _take(
        self,
        trace_ids: set[str],
        fixture_ids: set[str],
        digests: Set[str] = frozenset(),
        sources: Set[tuple[str, str]] = frozenset(),
    ) -> None:
        """Takes the locks not held yet, traces' before fixtures' (each sorted), and loads
        their rows. A call the batch did not prefetch comes here with its own trace,
        fixture, digest and source: the order a write alone has always locked in."""
        traces = sorted(trace_ids - self._traces)
        fixtures = sorted(fixture_ids - self._fixtures)
        new_digests, new_sources = digests - self._digests, sources - self._sources
        if traces or fixtures:
            await lock(self._conn, *(trace_key(t) for t in traces), *fixtures)
            self._traces.update(traces)
            self._fixtures.update(fixtures)
        if traces:
            for r in await self._conn.fetch(
                """SELECT trace_id, policy_version, decision, stamped_at FROM decisions
                   WHERE trace_id = ANY($1::text[])""",
                traces,
            ):
                self._state.load_decision(
                    r["trace_id"], r["policy_version"], r["decision"], r["stamped_at"]
                )
        if fixtures:
            await self._load_fixtures(fixtures)
        self._digests.update(new_digests)
        self._sources.update(new_sources)
        # The new fixtures' versions matching anything wanted so far, and the fixtures
        # already held: their versions matching what is newly wanted.
        if fixtures:
            await self._load_versions(fixtures, self._digests, self._sources)
        if new_digests or new_sources:
            held = sorted(self._fixtures.difference(fixtures))
            if held:
                await self._load_versions(held, new_digests, new_sources)

    async def _load_fixtures(self, fixtures: list[str]) -> None:
        for r in await self._conn.fetch(
            """SELECT f.fixture_id, f.pattern_id, f.current_version, f.status,
                      (SELECT max(v.version) FROM fixture_versions v
                       WHERE v.fixture_id = f.fixture_id) AS highest
               FROM fixtures f WHERE f.fixture_id = ANY($1::text[])""",
            fixtures,
        ):
            self._state.load_fixture(
                r["fixture_id"],
                r["pattern_id"],
                r["current_version"],
                r["status"],
                r["highest"] or 0,
            )

    async def _load_versions(
        self, fixtures: list[str], digests: Set[str], sources: Set[tuple[str, str]]
    ) -> None:
        """Only the versions a write can match (the same digest, or the same trace under
        the same policy), not all: a fixture promoted again and again keeps every version,
        and loading them all made each batch cost more as its history grew. No rule reads
        the others: the highest version comes with the fixture's row."""
        if not digests and not sources:
            return
        for r in await self._conn.fetch(
            """SELECT fixture_id, version, body_sha256, source_trace_id, policy_version
               FROM fixture_versions
               WHERE fixture_id = ANY($1::text[])
                 AND (body_sha256 = ANY($2::text[]) OR source_trace_id = ANY($3::text[]))
               ORDER BY fixture_id, version""",
            fixtures,
            sorted(digests),
            sorted({trace for trace, _ in sources}),
        ):
            key = (r["fixture_id"], r["version"])
            wanted = (
                r["body_sha256"] in digests
                or (r["source_trace_id"], r["policy_version"]) in sources
            )
            if wanted and key not in self._versions:
                self._versions.add(key)
                self._state.load_version(
                    r["fixture_id"],
                    r["version"],
                    r["body_sha256"],
                    r["source_trace_id"],
                    r["policy_version"],
                )

    # --- the calls -----------------------------------------------------------------

    async def record_decision(self, event: TraceScored, at: datetime) -> None:
        await self._take({event.trace_id}, set())
        self._state.record_decision_now(event, at)

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written:
        await self._take(
            {event.trace_id},
            {draft.fixture_id},
            {draft.body_sha256},
            {(event.trace_id, event.policy_version)},
        )
        return self._state.write_now(draft, event, at)

    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None:
        self._state.block_now(fixture_id, trace_id, reason, at)

    # --- writing -------------------------------------------------------------------

    async def flush(self) -> None:
        """Writes what the batch changed: one statement per table, parents first."""
        changes, self._journal[:] = list(self._journal), []
        # The in-memory store journals a decision only when it replaces the one it holds,
        # so the last one journaled for a (trace, policy) is the latest of the batch.
        decided: dict[tuple[str, str], Decided] = {}
        blocked: list[Blocked] = []
        fixture_changes: dict[str, list[VersionAdded | Restored]] = {}
        for change in changes:
            if isinstance(change, Decided):
                decided[(change.event.trace_id, change.event.policy_version)] = change
            elif isinstance(change, Blocked):
                blocked.append(change)
            else:
                fixture_changes.setdefault(change.draft.fixture_id, []).append(change)
        conn = self._conn
        memo: dict[int, str] = {}  # an event's scores, once for its decision and evidence

        def scores(event: TraceScored) -> str:
            if id(event) not in memo:
                memo[id(event)] = scores_json(event)
            return memo[id(event)]

        if decided:
            await upsert_decisions(conn, list(decided.values()), scores)
        if blocked:
            await conn.execute(
                """INSERT INTO blocked_fixtures (fixture_id, source_trace_id, reason, at)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                   ON CONFLICT DO NOTHING""",
                [b.fixture_id for b in blocked],
                [b.trace_id for b in blocked],
                [b.reason for b in blocked],
                [b.at for b in blocked],
            )
        if not fixture_changes:
            return
        await self._write_fixtures(fixture_changes)
        added = [c for c in changes if isinstance(c, VersionAdded)]
        if added:
            await self._insert_versions(added, scores)
        await insert_gate_lines(
            conn,
            [
                (c.at, draft_line(c.action, c.draft, c.version, c.event))
                for c in changes
                if isinstance(c, VersionAdded | Restored)
            ],
        )

    async def _write_fixtures(self, changed: dict[str, list[VersionAdded | Restored]]) -> None:
        """Each changed fixture as the batch left it: a new one inserted, a versioned or
        restored one with its current version and status (its pattern, kind and creation
        kept)."""
        ids = sorted(changed)
        rows = [self._state.fixtures[f] for f in ids]
        await self._conn.execute(
            """INSERT INTO fixtures AS f (fixture_id, pattern_id, kind, current_version,
                                          status, created_at, updated_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[],
                                    $5::text[], $6::timestamptz[], $7::timestamptz[])
               ON CONFLICT (fixture_id) DO UPDATE
               SET current_version = EXCLUDED.current_version, status = EXCLUDED.status,
                   updated_at = EXCLUDED.updated_at""",
            ids,
            [r.pattern_id for r in rows],
            [changed[f][0].draft.kind.value for f in ids],
            [r.current for r in rows],
            [r.status for r in rows],
            [changed[f][0].at for f in ids],
            [changed[f][-1].at for f in ids],
        )

    async def _insert_versions(
        self, added: list[VersionAdded], scores: Callable[[TraceScored], str]
    ) -> None:
        conn = self._conn
        await conn.execute(
            """INSERT INTO fixture_versions (fixture_id, version, body, body_sha256,
                                             policy_version, source_trace_id, created_at)
               SELECT * FROM unnest($1::text[], $2::int[], $3::jsonb[], $4::text[],
                                    $5::text[], $6::text[], $7::timestamptz[])""",
            [a.draft.fixture_id for a in added],
            [a.version for a in added],
            [jsonb(a.draft.body) for a in added],
            [a.draft.body_sha256 for a in added],
            [a.event.policy_version for a in added],
            [a.event.trace_id for a in added],
            [a.at for a in added],
        )
        await conn.execute(
            """INSERT INTO fixture_evidence (fixture_id, version, source_trace_ids,
                   first_seen, last_seen, occurrences, scores, policy_version, reason)
               SELECT u.f, u.v, ARRAY[u.t], u.fs, u.ls, u.n, u.s, u.p, u.r
               FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[],
                           $5::timestamptz[], $6::int8[], $7::jsonb[], $8::text[], $9::text[])
                    AS u(f, v, t, fs, ls, n, s, p, r)""",
            [a.draft.fixture_id for a in added],
            [a.version for a in added],
            [a.event.trace_id for a in added],
            [a.event.pattern.first_seen for a in added],
            [a.event.pattern.last_seen for a in added],
            [a.event.pattern.occurrences for a in added],
            [scores(a.event) for a in added],
            [a.event.policy_version for a in added],
            [pg_text(a.event.reason) for a in added],
        )
