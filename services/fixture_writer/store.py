"""Fixture store: asyncpg adapter and in-memory twin behind one Protocol.

A write is one transaction under the trace's and the fixture's advisory locks: a body
already stored for the fixture (same digest) changes nothing, or restores the fixture if a
replay had retired it; a new body becomes the next version, with its evidence and a
release-gate log line; a promotion a later decision withdrew writes nothing. A withdrawal
(a replay's hold or reject) falls the trace's fixtures back or retires them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg

from services.fixture_writer.logic import (
    FixtureDraft,
    HandRetirement,
    VersionSource,
    after_withdrawal,
    decision_time,
    withdrawal_reason,
)
from shared.db import Connection, jsonb, pg_text
from shared.events import TraceScored


@dataclass(frozen=True)
class Written:
    fixture_id: str
    version: int
    created: bool  # False when the same body was already stored (a redelivery)
    restored: bool = False  # the body was stored, but its fixture retired: active again
    # The trace's promotion was withdrawn by a later decision: nothing was written.
    superseded: bool = False


@dataclass(frozen=True)
class Withdrawal:
    """What withdrawing one trace's promotion changed."""

    pattern_id: str
    changed: tuple[tuple[str, str, int], ...]  # (fixture id, "reverted"/"retired", version)
    # Whether the trace sourced any fixture: then the pattern's coverage is published, even
    # on a redelivery (the first delivery may have crashed before it published).
    sourced: bool


class FixtureWrites(Protocol):
    """A promotion's writes; inside ``FixtureStore.batch`` they share one transaction."""

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written: ...
    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None: ...
    async def record_decision(self, event: TraceScored, at: datetime) -> None: ...


class FixtureStore(FixtureWrites, Protocol):
    def batch(self) -> AbstractAsyncContextManager[FixtureWrites]: ...
    async def withdraw(self, event: TraceScored, at: datetime) -> Withdrawal: ...
    async def retire_by_hand(self, retirement: HandRetirement, at: datetime) -> str | None: ...
    def active_fixtures(
        self, pattern_id: str
    ) -> AbstractAsyncContextManager[list[tuple[str, int]]]: ...


# The gate log's policy column for a change a person made, not a policy.
HAND_POLICY = "review"


def _scores(event: TraceScored) -> str:
    return jsonb({k: v.model_dump(mode="json") for k, v in event.scores.items()})


# Lock order, everywhere: trace, then fixture. A write and a withdrawal of one trace are
# serialised by the trace lock, so either the withdrawal sees the written version or the
# write sees the withdrawing decision.
async def _lock(conn: Connection, *keys: str) -> None:
    # One round trip, the locks taken in the order given (WITH ORDINALITY keeps it).
    await conn.execute(
        """SELECT pg_advisory_xact_lock(hashtext(k)) FROM (
               SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n
           ) AS ordered""",
        list(keys),
    )


def _trace_key(trace_id: str) -> str:
    return f"trace:{trace_id}"


class _FixtureWrites:
    """The promotion writes on one connection, inside the batch's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written:
        conn = self._conn
        await _lock(conn, _trace_key(event.trace_id), draft.fixture_id)
        if await _superseded(conn, event):
            return Written(draft.fixture_id, 0, created=False, superseded=True)
        same = await conn.fetchval(
            "SELECT version FROM fixture_versions WHERE fixture_id = $1 AND body_sha256 = $2",
            draft.fixture_id,
            draft.body_sha256,
        )
        if same is None:
            # A trace decided again after a redelivery (a stage killed between its
            # publish and its commit) may carry another body, the pattern having grown
            # in between: one trace sources at most one version of a fixture per policy.
            same = await conn.fetchval(
                """SELECT min(version) FROM fixture_versions
                   WHERE fixture_id = $1 AND source_trace_id = $2 AND policy_version = $3""",
                draft.fixture_id,
                event.trace_id,
                event.policy_version,
            )
        if same is not None:
            restored = await conn.fetchval(
                """UPDATE fixtures SET status = 'active', current_version = $2,
                                       updated_at = $3
                   WHERE fixture_id = $1 AND status = 'retired' RETURNING 1""",
                draft.fixture_id,
                same,
                at,
            )
            if restored:
                await _log(conn, at, _draft_line("restored", draft, same, event))
            return Written(draft.fixture_id, same, created=False, restored=bool(restored))
        # After a fall-back the current version is not the highest one stored.
        stored = await conn.fetchval(
            "SELECT max(version) FROM fixture_versions WHERE fixture_id = $1",
            draft.fixture_id,
        )
        version = (stored or 0) + 1
        await conn.execute(
            """INSERT INTO fixtures (fixture_id, pattern_id, kind, current_version,
                                     created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $5)
               ON CONFLICT (fixture_id) DO UPDATE
               SET current_version = EXCLUDED.current_version, status = 'active',
                   updated_at = EXCLUDED.updated_at""",
            draft.fixture_id,
            draft.pattern_id,
            draft.kind.value,
            version,
            at,
        )
        await conn.execute(
            """INSERT INTO fixture_versions (fixture_id, version, body, body_sha256,
                                             policy_version, source_trace_id, created_at)
               VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)""",
            draft.fixture_id,
            version,
            jsonb(draft.body),
            draft.body_sha256,
            event.policy_version,
            event.trace_id,
            at,
        )
        await conn.execute(
            """INSERT INTO fixture_evidence (fixture_id, version, source_trace_ids,
                   first_seen, last_seen, occurrences, scores, policy_version, reason)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)""",
            draft.fixture_id,
            version,
            [event.trace_id],
            event.pattern.first_seen,
            event.pattern.last_seen,
            event.pattern.occurrences,
            _scores(event),
            event.policy_version,
            pg_text(event.reason),
        )
        action = "added" if version == 1 else "versioned"
        await _log(conn, at, _draft_line(action, draft, version, event))
        return Written(draft.fixture_id, version, created=True)

    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None:
        await self._conn.execute(
            """INSERT INTO blocked_fixtures (fixture_id, source_trace_id, reason, at)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            fixture_id,
            trace_id,
            reason,
            at,
        )

    async def record_decision(self, event: TraceScored, at: datetime) -> None:
        await _record_decision(self._conn, event, at)


class PostgresFixtureStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[FixtureWrites]:
        """One transaction for a batch of promotions: its writes commit together, and the
        coverage they change is read and published after the commit."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield _FixtureWrites(conn)

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written:
        async with self.batch() as session:
            return await session.write(draft, event, at)

    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None:
        async with self.batch() as session:
            await session.block(fixture_id, trace_id, reason, at)

    async def withdraw(self, event: TraceScored, at: datetime) -> Withdrawal:
        changed: list[tuple[str, str, int]] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock(conn, _trace_key(event.trace_id))
            await _record_decision(conn, event, at)
            sourced = await conn.fetch(
                """SELECT DISTINCT fixture_id FROM fixture_versions
                   WHERE source_trace_id = $1 AND policy_version <> $2 ORDER BY fixture_id""",
                event.trace_id,
                event.policy_version,
            )
            for row in sourced:
                change = await _withdraw_one(conn, row["fixture_id"], event, at)
                if change is not None:
                    changed.append(change)
        return Withdrawal(event.pattern.pattern_id, tuple(changed), sourced=bool(sourced))

    async def retire_by_hand(self, retirement: HandRetirement, at: datetime) -> str | None:
        """The fixture's pattern when this retired it; None when it was not active (already
        retired, or unknown), so a redelivered verdict changes nothing."""
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock(conn, retirement.fixture_id)
            row = await conn.fetchrow(
                """UPDATE fixtures SET status = 'retired', updated_at = $2
                   WHERE fixture_id = $1 AND status = 'active'
                   RETURNING pattern_id, kind, current_version""",
                retirement.fixture_id,
                at,
            )
            if row is None:
                return None
            await _log(
                conn,
                at,
                GateLine(
                    "retired",
                    retirement.fixture_id,
                    row["current_version"],
                    row["kind"],
                    row["pattern_id"],
                    (),
                    retirement.log_reason,
                    HAND_POLICY,
                    retirement.decided,
                ),
            )
            return str(row["pattern_id"])

    async def record_decision(self, event: TraceScored, at: datetime) -> None:
        async with self.batch() as session:
            await session.record_decision(event, at)

    @asynccontextmanager
    async def active_fixtures(self, pattern_id: str) -> AsyncIterator[list[tuple[str, int]]]:
        """The pattern's active fixtures, under a per-pattern lock held until the block
        ends: publishing coverage inside it puts coverage records on fixtures.index in the
        order the states were read, whichever handler or instance publishes them."""
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock(conn, f"coverage:{pattern_id}")
            rows = await conn.fetch(
                """SELECT fixture_id, current_version FROM fixtures
                   WHERE pattern_id = $1 AND status = 'active' ORDER BY fixture_id""",
                pattern_id,
            )
            yield [(r["fixture_id"], r["current_version"]) for r in rows]


async def _record_decision(conn: Connection, event: TraceScored, at: datetime) -> None:
    # The latest decision per trace and policy: a replay under a policy already used
    # re-decides, and a redelivered older decision does not overwrite a newer one.
    await conn.execute(
        """INSERT INTO decisions AS d (trace_id, policy_version, pattern_id, decision, total,
                                       scores, reason, decided_at, stamped_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)
           ON CONFLICT (trace_id, policy_version) DO UPDATE
           SET decision = EXCLUDED.decision, total = EXCLUDED.total,
               scores = EXCLUDED.scores, reason = EXCLUDED.reason,
               decided_at = EXCLUDED.decided_at, stamped_at = EXCLUDED.stamped_at
           WHERE d.stamped_at IS NULL OR d.stamped_at < EXCLUDED.stamped_at""",
        event.trace_id,
        event.policy_version,
        event.pattern.pattern_id,
        event.decision.value,
        event.total,
        _scores(event),
        pg_text(event.reason),
        at,
        decision_time(event),
    )


async def _superseded(conn: Connection, event: TraceScored) -> bool:
    """Whether a later decision withdrew this trace's promotion (a stale or redelivered
    promotion must not bring back what a replay took out)."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM decisions WHERE trace_id = $1
                                AND decision <> 'promote' AND stamped_at > $2)""",
            event.trace_id,
            decision_time(event),
        )
    )


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


async def _log(conn: Connection, at: datetime, line: GateLine) -> None:
    await conn.execute(
        """INSERT INTO gate_log (at, action, fixture_id, version, kind, pattern_id,
                                 criteria, reason, policy_version, decision_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING""",
        at,
        line.action,
        line.fixture_id,
        line.version,
        line.kind,
        line.pattern_id,
        list(line.criteria),
        line.reason,
        line.policy_version,
        line.decided,
    )


def _draft_line(action: str, draft: FixtureDraft, version: int, event: TraceScored) -> GateLine:
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


async def _withdraw_one(
    conn: Connection, fixture_id: str, event: TraceScored, at: datetime
) -> tuple[str, str, int] | None:
    """Under the fixture's lock (the one writes take), after the trace's."""
    await _lock(conn, fixture_id)
    fixture = await conn.fetchrow(
        "SELECT pattern_id, kind, current_version, status FROM fixtures WHERE fixture_id = $1",
        fixture_id,
    )
    if fixture is None or fixture["status"] != "active":
        return None
    versions = await conn.fetch(
        """SELECT v.version, v.source_trace_id,
                  EXISTS (SELECT 1 FROM decisions d
                          WHERE d.trace_id = v.source_trace_id AND d.policy_version = $2
                            AND d.decision = 'promote') AS promoted
           FROM fixture_versions v WHERE v.fixture_id = $1""",
        fixture_id,
        event.policy_version,
    )
    current = fixture["current_version"]
    after = after_withdrawal(
        current,
        [VersionSource(r["version"], r["source_trace_id"], r["promoted"]) for r in versions],
        event.trace_id,
    )
    if after == current:
        return None
    if after is None:
        action, version = "retired", current
        await conn.execute(
            "UPDATE fixtures SET status = 'retired', updated_at = $2 WHERE fixture_id = $1",
            fixture_id,
            at,
        )
    else:
        action, version = "reverted", after
        await conn.execute(
            "UPDATE fixtures SET current_version = $2, updated_at = $3 WHERE fixture_id = $1",
            fixture_id,
            after,
            at,
        )
    criteria = await conn.fetchval(
        "SELECT criteria FROM gate_log WHERE fixture_id = $1 AND version = $2 LIMIT 1",
        fixture_id,
        version,
    )
    line = GateLine(
        action,
        fixture_id,
        version,
        fixture["kind"],
        fixture["pattern_id"],
        tuple(criteria or ()),
        withdrawal_reason(event),
        event.policy_version,
        decision_time(event),
    )
    await _log(conn, at, line)
    return fixture_id, action, version
