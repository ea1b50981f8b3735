"""Fixture store: the asyncpg adapter and the in-memory twin behind one Protocol.

A batch of promotions is one transaction under the advisory locks of its traces and
fixtures (``pg_session``: the rows it can read loaded once, the twin's rules deciding, one
statement per table at the end). Per promotion: a body already stored for the fixture
(same digest) changes nothing, or restores the fixture if a replay had retired it; a new
body becomes the next version, with its evidence and a release-gate log line; a promotion
a later decision withdrew writes nothing. A withdrawal (a replay's hold or reject) falls
the trace's fixtures back or retires them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
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
from services.fixture_writer.memory_store import (
    HAND_POLICY,
    Decided,
    InMemoryFixtureStore,
    Withdrawal,
    Written,
)
from services.fixture_writer.pg_session import (
    GateLine,
    Session,
    insert_gate_lines,
    lock,
    trace_key,
    upsert_decisions,
)
from shared.db import Connection
from shared.events import TraceScored

__all__ = [
    "HAND_POLICY",
    "FixtureSession",
    "FixtureStore",
    "FixtureWrites",
    "InMemoryFixtureStore",
    "PostgresFixtureStore",
    "Withdrawal",
    "Written",
]


class FixtureWrites(Protocol):
    """A promotion's writes; inside ``FixtureStore.batch`` they share one transaction."""

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written: ...
    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None: ...
    async def record_decision(self, event: TraceScored, at: datetime) -> None: ...


class FixtureSession(FixtureWrites, Protocol):
    """The writes inside ``FixtureStore.batch``: one transaction for the whole batch."""

    async def prefetch(
        self, promotions: Sequence[tuple[TraceScored, Sequence[FixtureDraft]]]
    ) -> None: ...


class FixtureStore(FixtureWrites, Protocol):
    def batch(self) -> AbstractAsyncContextManager[FixtureSession]: ...
    async def withdraw(self, event: TraceScored, at: datetime) -> Withdrawal: ...
    async def retire_by_hand(self, retirement: HandRetirement, at: datetime) -> str | None: ...
    def active_fixtures(
        self, pattern_id: str
    ) -> AbstractAsyncContextManager[list[tuple[str, int]]]: ...
    def active_fixtures_of(
        self, pattern_ids: Iterable[str]
    ) -> AbstractAsyncContextManager[dict[str, list[tuple[str, int]]]]: ...


class PostgresFixtureStore:
    """Every call runs in a transaction of its own; ``batch`` opens one transaction for a
    whole batch of promotions.

    Locks. Every transaction takes its advisory locks in one global order, trace locks
    before fixture locks and each kind by code point: a batch all its traces' then all its
    fixtures' (one statement, ``Session.prefetch``), a write alone its trace's then its
    fixture's, a withdrawal its trace's then its fixtures' (sorted with COLLATE "C"), a
    retirement by hand one fixture's. Transactions that all lock in one order cannot wait
    on each other in a cycle, so a batch cannot deadlock with a withdrawal, a retirement or
    another batch. (A call in a batch that was not prefetched locks its trace after the
    fixtures the batch holds: the stage prefetches every promotion; a caller that does
    not risks a deadlock, which PostgreSQL detects and the stage retries as transient.)
    Coverage reads take only ``coverage:`` locks, sorted, in transactions of their own.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[FixtureSession]:
        """One transaction for a batch of promotions: its writes commit together, and the
        coverage they change is read and published after the commit."""
        async with self._pool.acquire() as conn, conn.transaction():
            session = Session(conn)
            yield session
            await session.flush()

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written:
        async with self.batch() as session:
            written = await session.write(draft, event, at)
        return written

    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None:
        async with self.batch() as session:
            await session.block(fixture_id, trace_id, reason, at)

    async def record_decision(self, event: TraceScored, at: datetime) -> None:
        async with self.batch() as session:
            await session.record_decision(event, at)

    async def withdraw(self, event: TraceScored, at: datetime) -> Withdrawal:
        changed: list[tuple[str, str, int]] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await lock(conn, trace_key(event.trace_id))
            await upsert_decisions(conn, [Decided(event, at)])
            # Fixtures in code-point order (COLLATE "C"), the order a batch locks them in.
            sourced = await conn.fetch(
                """SELECT DISTINCT fixture_id COLLATE "C" AS fixture_id FROM fixture_versions
                   WHERE source_trace_id = $1 AND policy_version <> $2
                   ORDER BY 1""",
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
            await lock(conn, retirement.fixture_id)
            row = await conn.fetchrow(
                """UPDATE fixtures SET status = 'retired', updated_at = $2
                   WHERE fixture_id = $1 AND status = 'active'
                   RETURNING pattern_id, kind, current_version""",
                retirement.fixture_id,
                at,
            )
            if row is None:
                return None
            line = GateLine(
                "retired",
                retirement.fixture_id,
                row["current_version"],
                row["kind"],
                row["pattern_id"],
                (),
                retirement.log_reason,
                HAND_POLICY,
                retirement.decided,
            )
            await insert_gate_lines(conn, [(at, line)])
            return str(row["pattern_id"])

    @asynccontextmanager
    async def active_fixtures(self, pattern_id: str) -> AsyncIterator[list[tuple[str, int]]]:
        async with self.active_fixtures_of([pattern_id]) as active:
            yield active[pattern_id]

    @asynccontextmanager
    async def active_fixtures_of(
        self, pattern_ids: Iterable[str]
    ) -> AsyncIterator[dict[str, list[tuple[str, int]]]]:
        """The patterns' active fixtures, under per-pattern locks (taken in sorted order)
        held until the block ends: publishing coverage inside it puts coverage records on
        fixtures.index in the order the states were read, whichever handler or instance
        publishes them."""
        wanted = sorted(set(pattern_ids))
        async with self._pool.acquire() as conn, conn.transaction():
            await lock(conn, *(f"coverage:{p}" for p in wanted))
            rows = await conn.fetch(
                """SELECT pattern_id, fixture_id, current_version FROM fixtures
                   WHERE pattern_id = ANY($1::text[]) AND status = 'active'
                   ORDER BY pattern_id, fixture_id""",
                wanted,
            )
            active: dict[str, list[tuple[str, int]]] = {p: [] for p in wanted}
            for r in rows:
                active[r["pattern_id"]].append((r["fixture_id"], r["current_version"]))
            yield active


async def _withdraw_one(
    conn: Connection, fixture_id: str, event: TraceScored, at: datetime
) -> tuple[str, str, int] | None:
    """Under the fixture's lock (the one writes take), after the trace's."""
    await lock(conn, fixture_id)
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
    await insert_gate_lines(conn, [(at, line)])
    return fixture_id, action, version
