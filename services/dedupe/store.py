"""Pattern store: asyncpg adapter and its in-memory twin, behind one Protocol.

Every write is idempotent (INSERT ... ON CONFLICT), and a trace's assignment to a pattern
happens under a transaction-scoped advisory lock on its bucket: several dedupe instances
touching one bucket during a rebalance cannot lose or double an update, nor found two
patterns where one would have been founded. The decisions themselves (which pattern,
exemplar or near copy) are the pure functions of ``logic``; the stores only fetch what
those functions compare with and record what they decided.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, datetime
from typing import Protocol

import asyncpg

from services.dedupe.logic import DEFAULT_EXEMPLARS, Observation, Recorded
from services.dedupe.memory_store import InMemoryPatternStore
from services.dedupe.pg_session import DEFAULT_KEPT_PATTERNS, Session
from services.dedupe.trajectory import Path
from shared.db import Connection
from shared.events import AgentBaseline, PatternInfo
from shared.trends import DayCount

__all__ = ["InMemoryPatternStore", "PatternSession", "PatternStore", "PostgresPatternStore"]


class PatternCalls(Protocol):
    """The store's calls, each in a transaction of its own or, inside a batch, sharing the
    batch's."""

    async def record(self, obs: Observation) -> Recorded: ...
    async def pattern(self, pattern_id: str) -> PatternInfo: ...
    async def mark_forwarded(self, trace_ids: Collection[str]) -> None: ...
    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None: ...
    async def clear_coverage(self, pattern_id: str) -> None: ...
    async def baseline(self, agent: str) -> AgentBaseline: ...
    async def days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]: ...
    async def reference(self, obs: Observation) -> tuple[str | None, list[Path]]: ...


class PatternSession(PatternCalls, Protocol):
    """The calls inside ``PatternStore.batch``: one transaction for the whole batch."""

    async def prefetch(self, observations: Sequence[Observation]) -> None: ...


class PatternStore(PatternCalls, Protocol):
    def batch(self, buckets: Iterable[str]) -> AbstractAsyncContextManager[PatternSession]: ...
    def forget(self) -> None: ...


class PostgresPatternStore:
    """Every call runs in a transaction of its own; ``batch`` opens one transaction for a
    whole batch of traces, with the advisory locks of all its buckets taken once, in a
    fixed order (two instances locking overlapping buckets cannot deadlock).

    The batches share one session, which keeps what it loaded of the buckets' patterns
    from one batch to the next (see ``pg_session``), up to ``kept_patterns`` patterns;
    0 keeps nothing. A batch that fails, and a rebalance (``forget``), start it afresh."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        max_exemplars: int = DEFAULT_EXEMPLARS,
        kept_patterns: int = DEFAULT_KEPT_PATTERNS,
    ) -> None:
        self._pool = pool
        self._max_exemplars = max_exemplars
        self._kept_patterns = kept_patterns
        self._kept: Session | None = None
        # How many times ``forget`` was called: a batch hands its session back only if
        # it was not called while the batch ran.
        self._forgotten = 0

    def forget(self) -> None:
        """Drops what the batches kept: the partitions that brought their buckets here
        may have gone to another instance."""
        self._kept = None
        self._forgotten += 1

    def _session_for(self, conn: Connection) -> Session:
        kept = self._kept
        self._kept = None  # a batch running beside this one starts its own session
        if kept is None or kept.patterns_kept > self._kept_patterns:
            kept = Session(None, self._max_exemplars)
        return kept.begin(conn)

    @asynccontextmanager
    async def batch(self, buckets: Iterable[str]) -> AsyncIterator[PatternSession]:
        forgotten = self._forgotten
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialises assignment within one bucket across instances: the second of two
            # concurrent traces sees the pattern the first one founded.
            await conn.execute(
                """SELECT pg_advisory_xact_lock(k) FROM (
                       SELECT DISTINCT hashtextextended(b, 0) AS k FROM unnest($1::text[]) b
                       ORDER BY k) AS sorted""",
                sorted(set(buckets)),
            )
            session = self._session_for(conn)
            yield session
            await session.flush()
            session.end()
        # Handed back only once committed: after a rollback, or a commit whose outcome is
        # unknown, what the session holds may not be what the database holds.
        if self._kept_patterns > 0 and self._forgotten == forgotten:
            self._kept = session

    @asynccontextmanager
    async def _alone(self) -> AsyncIterator[Session]:
        async with self._pool.acquire() as conn, conn.transaction():
            session = Session(conn, self._max_exemplars)
            yield session
            await session.flush()

    async def record(self, obs: Observation) -> Recorded:
        async with self.batch([obs.bucket]) as session:
            recorded = await session.record(obs)
        return recorded

    async def pattern(self, pattern_id: str) -> PatternInfo:
        async with self._alone() as session:
            return await session.pattern(pattern_id)

    async def mark_forwarded(self, trace_ids: Collection[str]) -> None:
        # One statement, so no transaction of its own: one round trip instead of three,
        # after every batch.
        async with self._pool.acquire() as conn:
            await Session(conn, self._max_exemplars).mark_forwarded(trace_ids)

    async def set_coverage(self, pattern_id: str, fixture_version: int, at: datetime) -> None:
        async with self._alone() as session:
            await session.set_coverage(pattern_id, fixture_version, at)

    async def clear_coverage(self, pattern_id: str) -> None:
        async with self._alone() as session:
            await session.clear_coverage(pattern_id)

    async def baseline(self, agent: str) -> AgentBaseline:
        async with self._alone() as session:
            return await session.baseline(agent)

    async def days(self, pattern_id: str, agent: str, until: date) -> list[DayCount]:
        async with self._alone() as session:
            return await session.days(pattern_id, agent, until)

    async def reference(self, obs: Observation) -> tuple[str | None, list[Path]]:
        async with self._alone() as session:
            return await session.reference(obs)
