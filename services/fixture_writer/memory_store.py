"""The fixture store's in-memory twin: the same answers as the PostgreSQL store (the
parity tests in tests/e2e/test_store_twins.py hold them to it), for tests and tools."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.fixture_writer.logic import (
    FixtureDraft,
    HandRetirement,
    VersionSource,
    after_withdrawal,
    decision_time,
)
from services.fixture_writer.store import (
    HAND_POLICY,
    FixtureWrites,
    Withdrawal,
    Written,
)
from shared.events import TraceScored


@dataclass
class _StoredVersion:
    body_sha256: str
    body: dict[str, Any]
    source_trace_id: str
    policy_version: str


@dataclass
class _StoredFixture:
    pattern_id: str
    versions: list[_StoredVersion] = field(default_factory=list)
    current: int = 0
    status: str = "active"


@dataclass
class InMemoryFixtureStore:
    fixtures: dict[str, _StoredFixture] = field(default_factory=dict)
    blocked: dict[tuple[str, str], str] = field(default_factory=dict)
    # (trace, policy) -> (decision, when it was made): the latest one.
    decisions: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)
    gate_log: list[tuple[str, str, int, str, datetime]] = field(default_factory=list)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[FixtureWrites]:
        yield self

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written:
        if self._superseded(event):
            return Written(draft.fixture_id, 0, created=False, superseded=True)
        fixture = self.fixtures.setdefault(draft.fixture_id, _StoredFixture(draft.pattern_id))
        same = [n for n, v in enumerate(fixture.versions, 1) if v.body_sha256 == draft.body_sha256]
        # One trace sources at most one version of a fixture per policy (see the PG store).
        same += [
            n
            for n, v in enumerate(fixture.versions, 1)
            if (v.source_trace_id, v.policy_version) == (event.trace_id, event.policy_version)
        ]
        if same:
            number = same[0]
            restored = fixture.status == "retired"
            if restored:
                fixture.status, fixture.current = "active", number
                self._log("restored", draft.fixture_id, number, event)
            return Written(draft.fixture_id, number, created=False, restored=restored)
        fixture.versions.append(
            _StoredVersion(draft.body_sha256, draft.body, event.trace_id, event.policy_version)
        )
        fixture.current, fixture.status = len(fixture.versions), "active"
        action = "added" if fixture.current == 1 else "versioned"
        self._log(action, draft.fixture_id, fixture.current, event)
        return Written(draft.fixture_id, fixture.current, created=True)

    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None:
        self.blocked.setdefault((fixture_id, trace_id), reason)

    async def record_decision(self, event: TraceScored, at: datetime) -> None:
        key, when = (event.trace_id, event.policy_version), decision_time(event)
        if key not in self.decisions or self.decisions[key][1] < when:
            self.decisions[key] = (event.decision.value, when)

    async def withdraw(self, event: TraceScored, at: datetime) -> Withdrawal:
        await self.record_decision(event, at)
        changed: list[tuple[str, str, int]] = []
        sourced = False
        for fixture_id in sorted(self.fixtures):
            fixture = self.fixtures[fixture_id]
            if not any(
                v.source_trace_id == event.trace_id and v.policy_version != event.policy_version
                for v in fixture.versions
            ):
                continue
            sourced = True
            if fixture.status != "active":
                continue
            sources = [
                VersionSource(number, v.source_trace_id, self._promoted(v, event.policy_version))
                for number, v in enumerate(fixture.versions, start=1)
            ]
            after = after_withdrawal(fixture.current, sources, event.trace_id)
            if after == fixture.current:
                continue
            if after is None:
                fixture.status = "retired"
                change = (fixture_id, "retired", fixture.current)
            else:
                fixture.current = after
                change = (fixture_id, "reverted", after)
            changed.append(change)
            self._log(change[1], fixture_id, change[2], event)
        return Withdrawal(event.pattern.pattern_id, tuple(changed), sourced=sourced)

    async def retire_by_hand(self, retirement: HandRetirement, at: datetime) -> str | None:
        fixture = self.fixtures.get(retirement.fixture_id)
        if fixture is None or fixture.status != "active":
            return None
        fixture.status = "retired"
        line = ("retired", retirement.fixture_id, fixture.current, HAND_POLICY, retirement.decided)
        if line not in self.gate_log:
            self.gate_log.append(line)
        return fixture.pattern_id

    @asynccontextmanager
    async def active_fixtures(self, pattern_id: str) -> AsyncIterator[list[tuple[str, int]]]:
        yield [
            (fid, f.current)
            for fid, f in sorted(self.fixtures.items())
            if f.pattern_id == pattern_id and f.status == "active"
        ]

    def _promoted(self, version: _StoredVersion, policy_version: str) -> bool:
        decided = self.decisions.get((version.source_trace_id, policy_version))
        return decided is not None and decided[0] == "promote"

    def _superseded(self, event: TraceScored) -> bool:
        when = decision_time(event)
        return any(
            trace == event.trace_id and decision != "promote" and decided > when
            for (trace, _), (decision, decided) in self.decisions.items()
        )

    def _log(self, action: str, fixture_id: str, version: int, event: TraceScored) -> None:
        line = (action, fixture_id, version, event.policy_version, decision_time(event))
        if line not in self.gate_log:
            self.gate_log.append(line)
