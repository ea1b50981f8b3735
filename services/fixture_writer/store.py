"""Fixture store: asyncpg adapter and in-memory twin behind one Protocol.

A write is one transaction under a per-fixture advisory lock: a body already stored for
the fixture (same digest) changes nothing; a new body becomes the next version, with its
evidence and a release-gate log line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from services.fixture_writer.logic import FixtureDraft
from shared.events import TraceScored


@dataclass(frozen=True)
class Written:
    fixture_id: str
    version: int
    created: bool  # False when the same body was already stored (a redelivery)


class FixtureStore(Protocol):
    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written: ...
    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None: ...
    async def record_decision(self, event: TraceScored, at: datetime) -> None: ...


def _scores(event: TraceScored) -> str:
    return json.dumps({k: v.model_dump(mode="json") for k, v in event.scores.items()})


class PostgresFixtureStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", draft.fixture_id)
            same = await conn.fetchval(
                "SELECT version FROM fixture_versions WHERE fixture_id = $1 AND body_sha256 = $2",
                draft.fixture_id,
                draft.body_sha256,
            )
            if same is not None:
                return Written(draft.fixture_id, same, created=False)
            current = await conn.fetchval(
                "SELECT current_version FROM fixtures WHERE fixture_id = $1", draft.fixture_id
            )
            version = (current or 0) + 1
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
                json.dumps(draft.body),
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
                event.reason,
            )
            await conn.execute(
                """INSERT INTO gate_log (at, action, fixture_id, version, kind, pattern_id,
                                         criteria, reason)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
                at,
                "added" if version == 1 else "versioned",
                draft.fixture_id,
                version,
                draft.kind.value,
                draft.pattern_id,
                list(draft.criteria),
                event.reason,
            )
            return Written(draft.fixture_id, version, created=True)

    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None:
        await self._pool.execute(
            """INSERT INTO blocked_fixtures (fixture_id, source_trace_id, reason, at)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            fixture_id,
            trace_id,
            reason,
            at,
        )

    async def record_decision(self, event: TraceScored, at: datetime) -> None:
        await self._pool.execute(
            """INSERT INTO decisions (trace_id, policy_version, pattern_id, decision, total,
                                      scores, reason, decided_at)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) ON CONFLICT DO NOTHING""",
            event.trace_id,
            event.policy_version,
            event.pattern.pattern_id,
            event.decision.value,
            event.total,
            _scores(event),
            event.reason,
            at,
        )


@dataclass
class InMemoryFixtureStore:
    versions: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    blocked: dict[tuple[str, str], str] = field(default_factory=dict)
    decisions: dict[tuple[str, str], str] = field(default_factory=dict)
    gate_log: list[tuple[str, str, int]] = field(default_factory=list)

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written:
        history = self.versions.setdefault(draft.fixture_id, [])
        for number, (sha, _) in enumerate(history, start=1):
            if sha == draft.body_sha256:
                return Written(draft.fixture_id, number, created=False)
        history.append((draft.body_sha256, draft.body))
        version = len(history)
        self.gate_log.append(("added" if version == 1 else "versioned", draft.fixture_id, version))
        return Written(draft.fixture_id, version, created=True)

    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None:
        self.blocked.setdefault((fixture_id, trace_id), reason)

    async def record_decision(self, event: TraceScored, at: datetime) -> None:
        self.decisions.setdefault((event.trace_id, event.policy_version), event.decision.value)
