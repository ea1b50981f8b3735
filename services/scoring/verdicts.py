"""Scoring follows people's verdicts: once a reviewer rejects a pattern, its later traces
are rejected with the reviewer's reason instead of being held again for the same call.

The latest verdict per pattern is kept (by the time it was given), so replaying
traces.reviewed, or a redelivery, leaves the same state; a later verdict replaces it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import asyncpg

from shared.events import CaseReviewed, Decision, TraceScored, Verdict


@dataclass(frozen=True)
class PatternVerdict:
    pattern_id: str
    verdict: Verdict
    verdict_id: str
    reviewer: str
    reason: str
    at: datetime


def pattern_verdict(event: CaseReviewed) -> PatternVerdict:
    return PatternVerdict(
        event.pattern_id, event.verdict, event.verdict_id, event.reviewer, event.reason, event.at
    )


def follow_verdict(out: TraceScored, verdict: PatternVerdict | None) -> TraceScored:
    """The decision once the pattern's verdict is applied: a rejected pattern's traces are
    rejected, saying by whom and why, and what the policy alone would have decided."""
    if verdict is None or verdict.verdict != Verdict.REJECT or out.decision == Decision.REJECT:
        return out
    reason = (
        f"pattern rejected in review by {verdict.reviewer} ({verdict.reason}); "
        f"the policy alone would have decided {out.decision.value}: {out.reason}"
    )
    return out.model_copy(update={"decision": Decision.REJECT, "reason": reason})


class VerdictStore(Protocol):
    async def verdict(self, pattern_id: str) -> PatternVerdict | None: ...
    async def verdicts(self, pattern_ids: Collection[str]) -> dict[str, PatternVerdict]: ...
    async def record(self, verdict: PatternVerdict) -> None: ...


class PostgresVerdictStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def verdict(self, pattern_id: str) -> PatternVerdict | None:
        return (await self.verdicts([pattern_id])).get(pattern_id)

    async def verdicts(self, pattern_ids: Collection[str]) -> dict[str, PatternVerdict]:
        rows = await self._pool.fetch(
            "SELECT * FROM scoring_pattern_verdicts WHERE pattern_id = ANY($1::text[])",
            list(pattern_ids),
        )
        return {
            r["pattern_id"]: PatternVerdict(
                r["pattern_id"],
                Verdict(r["verdict"]),
                r["verdict_id"],
                r["reviewer"],
                r["reason"],
                r["at"],
            )
            for r in rows
        }

    async def record(self, verdict: PatternVerdict) -> None:
        await self._pool.execute(
            """INSERT INTO scoring_pattern_verdicts AS v
                   (pattern_id, verdict, verdict_id, reviewer, reason, at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (pattern_id) DO UPDATE
               SET verdict = EXCLUDED.verdict, verdict_id = EXCLUDED.verdict_id,
                   reviewer = EXCLUDED.reviewer, reason = EXCLUDED.reason, at = EXCLUDED.at
               WHERE v.at < EXCLUDED.at""",
            verdict.pattern_id,
            verdict.verdict.value,
            verdict.verdict_id,
            verdict.reviewer,
            verdict.reason,
            verdict.at,
        )


@dataclass
class MemoryVerdictStore:
    latest: dict[str, PatternVerdict] = field(default_factory=dict)

    async def verdict(self, pattern_id: str) -> PatternVerdict | None:
        return self.latest.get(pattern_id)

    async def verdicts(self, pattern_ids: Collection[str]) -> dict[str, PatternVerdict]:
        return {p: self.latest[p] for p in pattern_ids if p in self.latest}

    async def record(self, verdict: PatternVerdict) -> None:
        known = self.latest.get(verdict.pattern_id)
        if known is None or known.at < verdict.at:
            self.latest[verdict.pattern_id] = verdict
