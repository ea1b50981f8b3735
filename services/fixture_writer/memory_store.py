"""The fixture store's rules in memory: the twin tests and tools run, and the working state
of a PostgreSQL batch.

``InMemoryFixtureStore`` holds every row it was given and decides as the stage decides:
whether a promotion is superseded by a later decision of its trace, whether a body is
already stored (same digest, else the version the same trace sourced under the same
policy), which version a new body becomes, what a restore and a withdrawal change. The
PostgreSQL session (``pg_session``) loads the rows a batch can read into one of these, lets
it decide promotion after promotion, and writes what its ``journal`` says changed: the
rules are written once, here. The parity tests in tests/e2e/test_store_twins.py hold the
two stores to the same answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.fixture_writer.logic import (
    FixtureDraft,
    HandRetirement,
    VersionSource,
    after_withdrawal,
    decision_time,
)
from shared.events import TraceScored

# The gate log's policy column for a change a person made, not a policy.
HAND_POLICY = "review"

# A decision stored without its stamp (before stamps were kept): never later than any.
UNSTAMPED = datetime.min.replace(tzinfo=UTC)


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


# --- the journal: what a promotion changed, as a PostgreSQL batch writes it -------------


@dataclass(frozen=True)
class Decided:
    """A decision that replaced the one stored for its trace and policy (or was the first)."""

    event: TraceScored
    at: datetime


@dataclass(frozen=True)
class Blocked:
    fixture_id: str
    trace_id: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class VersionAdded:
    draft: FixtureDraft
    event: TraceScored
    version: int
    at: datetime

    @property
    def action(self) -> str:
        return "added" if self.version == 1 else "versioned"


@dataclass(frozen=True)
class Restored:
    """A stored body promoted again while its fixture was retired: active again."""

    draft: FixtureDraft
    event: TraceScored
    version: int
    at: datetime

    action = "restored"


Change = Decided | Blocked | VersionAdded | Restored


@dataclass
class _StoredVersion:
    version: int
    body_sha256: str
    body: dict[str, Any]  # empty when loaded by a PostgreSQL batch
    source_trace_id: str
    policy_version: str


@dataclass
class _StoredFixture:
    pattern_id: str
    versions: list[_StoredVersion] = field(default_factory=list)
    current: int = 0
    status: str = "active"
    # The version holding each digest, and the lowest one each (trace, policy) sourced.
    _by_digest: dict[str, int] = field(default_factory=dict, repr=False)
    _by_source: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    # After a fall-back the current version is not the highest one stored.
    highest: int = field(default=0, repr=False)

    def add(self, stored: _StoredVersion) -> None:
        self.versions.append(stored)
        self.highest = max(self.highest, stored.version)
        self._by_digest.setdefault(stored.body_sha256, stored.version)
        source = (stored.source_trace_id, stored.policy_version)
        self._by_source[source] = min(self._by_source.get(source, stored.version), stored.version)

    def same(self, body_sha256: str, trace_id: str, policy_version: str) -> int | None:
        """The version that already holds this promotion: the one with the same body, else
        the lowest the same trace sourced under the same policy (a trace decided again
        after a redelivery, the pattern having grown in between, may carry another body:
        one trace sources at most one version of a fixture per policy)."""
        found = self._by_digest.get(body_sha256)
        return found if found is not None else self._by_source.get((trace_id, policy_version))


@dataclass
class InMemoryFixtureStore:
    # When a list, every change is appended to it (a PostgreSQL batch writes from it).
    journal: list[Change] | None = None
    fixtures: dict[str, _StoredFixture] = field(default_factory=dict)
    blocked: dict[tuple[str, str], str] = field(default_factory=dict)
    # (trace, policy) -> (decision, when it was made): the latest one.
    decisions: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)
    gate_log: list[tuple[str, str, int, str, datetime]] = field(default_factory=list)
    # The policies each trace was decided under, and the gate-log lines as a set.
    _policies: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _logged: set[tuple[str, str, int, str, datetime]] = field(default_factory=set, repr=False)

    # --- rows loaded by a PostgreSQL batch -------------------------------------------

    def load_decision(
        self, trace_id: str, policy_version: str, decision: str, stamped_at: datetime | None
    ) -> None:
        self.decisions[(trace_id, policy_version)] = (decision, stamped_at or UNSTAMPED)
        self._policies.setdefault(trace_id, set()).add(policy_version)

    def load_fixture(
        self, fixture_id: str, pattern_id: str, current: int, status: str, highest: int
    ) -> None:
        """A stored fixture, its versions loaded apart (only those a write can match)."""
        self.fixtures[fixture_id] = _StoredFixture(pattern_id, [], current, status, highest=highest)

    def load_version(
        self,
        fixture_id: str,
        version: int,
        body_sha256: str,
        source_trace_id: str,
        policy_version: str,
    ) -> None:
        """A stored version without its body: no rule reads a stored body."""
        stored = _StoredVersion(version, body_sha256, {}, source_trace_id, policy_version)
        self.fixtures[fixture_id].add(stored)

    # --- promotions ------------------------------------------------------------------

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[InMemoryFixtureStore]:
        yield self

    async def prefetch(
        self, promotions: Sequence[tuple[TraceScored, Sequence[FixtureDraft]]]
    ) -> None:
        """Nothing to fetch: every row is at hand."""

    async def write(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written:
        return self.write_now(draft, event, at)

    def write_now(self, draft: FixtureDraft, event: TraceScored, at: datetime) -> Written:
        if self._superseded(event):
            return Written(draft.fixture_id, 0, created=False, superseded=True)
        fixture = self.fixtures.get(draft.fixture_id)
        if fixture is None:
            fixture = self.fixtures[draft.fixture_id] = _StoredFixture(draft.pattern_id)
        same = fixture.same(draft.body_sha256, event.trace_id, event.policy_version)
        if same is not None:
            restored = fixture.status == "retired"
            if restored:
                fixture.status, fixture.current = "active", same
                self._change(Restored(draft, event, same, at))
            return Written(draft.fixture_id, same, created=False, restored=restored)
        version = fixture.highest + 1
        fixture.add(
            _StoredVersion(
                version, draft.body_sha256, draft.body, event.trace_id, event.policy_version
            )
        )
        fixture.current, fixture.status = version, "active"
        self._change(VersionAdded(draft, event, version, at))
        return Written(draft.fixture_id, version, created=True)

    async def block(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None:
        self.block_now(fixture_id, trace_id, reason, at)

    def block_now(self, fixture_id: str, trace_id: str, reason: str, at: datetime) -> None:
        if (fixture_id, trace_id) not in self.blocked:
            self.blocked[(fixture_id, trace_id)] = reason
            if self.journal is not None:
                self.journal.append(Blocked(fixture_id, trace_id, reason, at))

    async def record_decision(self, event: TraceScored, at: datetime) -> None:
        self.record_decision_now(event, at)

    def record_decision_now(self, event: TraceScored, at: datetime) -> None:
        # The latest decision per trace and policy: a replay under a policy already used
        # re-decides, and a redelivered older decision does not overwrite a newer one.
        key, when = (event.trace_id, event.policy_version), decision_time(event)
        if key not in self.decisions or self.decisions[key][1] < when:
            self.decisions[key] = (event.decision.value, when)
            self._policies.setdefault(event.trace_id, set()).add(event.policy_version)
            if self.journal is not None:
                self.journal.append(Decided(event, at))

    def _superseded(self, event: TraceScored) -> bool:
        """Whether a later decision withdrew this trace's promotion (a stale or redelivered
        promotion must not bring back what a replay took out)."""
        when = decision_time(event)
        for policy in self._policies.get(event.trace_id, ()):
            decision, decided = self.decisions[(event.trace_id, policy)]
            if decision != "promote" and decided > when:
                return True
        return False

    def _change(self, change: VersionAdded | Restored) -> None:
        self._log(change.action, change.draft.fixture_id, change.version, change.event)
        if self.journal is not None:
            self.journal.append(change)

    # --- withdrawals, retirements, coverage (PostgreSQL runs these on its own) --------

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
                VersionSource(v.version, v.source_trace_id, self._promoted(v, event.policy_version))
                for v in fixture.versions
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
        self._append_line(line)
        return fixture.pattern_id

    @asynccontextmanager
    async def active_fixtures(self, pattern_id: str) -> AsyncIterator[list[tuple[str, int]]]:
        yield [
            (fid, f.current)
            for fid, f in sorted(self.fixtures.items())
            if f.pattern_id == pattern_id and f.status == "active"
        ]

    @asynccontextmanager
    async def active_fixtures_of(
        self, pattern_ids: Iterable[str]
    ) -> AsyncIterator[dict[str, list[tuple[str, int]]]]:
        """Several patterns' active fixtures, each read as ``active_fixtures`` reads it and
        all held until the block ends (the PostgreSQL store holds their locks)."""
        async with AsyncExitStack() as held:
            yield {
                p: await held.enter_async_context(self.active_fixtures(p))
                for p in sorted(set(pattern_ids))
            }

    def _promoted(self, version: _StoredVersion, policy_version: str) -> bool:
        decided = self.decisions.get((version.source_trace_id, policy_version))
        return decided is not None and decided[0] == "promote"

    def _log(self, action: str, fixture_id: str, version: int, event: TraceScored) -> None:
        self._append_line((action, fixture_id, version, event.policy_version, decision_time(event)))

    def _append_line(self, line: tuple[str, str, int, str, datetime]) -> None:
        if line not in self._logged:
            self._logged.add(line)
            self.gate_log.append(line)
