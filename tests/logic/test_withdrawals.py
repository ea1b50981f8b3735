"""Withdrawn promotions: a replay that holds or rejects what an earlier policy promoted
takes the fixtures that trace sourced out of the suite, on literal inputs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.dedupe.logic import covers
from services.fixture_writer.logic import (
    VersionSource,
    active_coverage,
    after_withdrawal,
    build_fixtures,
    withdraws_promotion,
)
from services.fixture_writer.memory_store import InMemoryFixtureStore
from services.fixture_writer.store import Written
from shared import topics
from shared.events import Decision, TraceScored
from tests.support.builders import refund_trace, scored

pytestmark = pytest.mark.logic

AT = datetime(2026, 3, 2, tzinfo=UTC)


def test_only_a_replays_hold_or_reject_can_withdraw_a_promotion() -> None:
    assert topics.replayed({topics.DECIDED_BY_HEADER: topics.REPLAY_STAGE})
    assert not topics.replayed({topics.DECIDED_BY_HEADER: "scoring"})
    assert not topics.replayed({})
    trace = refund_trace()
    assert withdraws_promotion(scored(trace, decision=Decision.REJECT))
    assert withdraws_promotion(scored(trace, decision=Decision.HOLD))
    assert not withdraws_promotion(scored(trace, decision=Decision.PROMOTE))


@pytest.mark.parametrize(
    ("current", "versions", "expected"),
    [
        # The withdrawn trace sourced the only version: retire.
        (1, [VersionSource(1, "t1", False)], None),
        # Another version's source is promoted by the new policy: fall back to it.
        (2, [VersionSource(1, "t0", True), VersionSource(2, "t1", False)], 1),
        # ... to the latest such version.
        (
            3,
            [
                VersionSource(1, "t0", True),
                VersionSource(2, "t2", True),
                VersionSource(3, "t1", False),
            ],
            2,
        ),
        # Other sources the new policy has not promoted (yet) do not keep the fixture.
        (2, [VersionSource(1, "t0", False), VersionSource(2, "t1", False)], None),
        # The current version came from another trace: the fixture keeps it.
        (2, [VersionSource(1, "t1", False), VersionSource(2, "t0", False)], 2),
    ],
)
def test_a_fixture_falls_back_to_a_version_the_new_policy_promotes_or_retires(
    current: int, versions: list[VersionSource], expected: int | None
) -> None:
    assert after_withdrawal(current, versions, "t1") == expected


def test_coverage_after_retirement_lists_what_is_still_active_or_uncovers_the_pattern() -> None:
    some = active_coverage("p1", [("p1:regression_case", 2)], "strict", AT)
    assert some.fixture_ids == ("p1:regression_case",)
    assert some.kinds == ("regression_case",)
    assert some.version == 2
    assert covers(some)
    none = active_coverage("p1", [], "strict", AT)
    assert none.fixture_ids == () and none.version == 0
    assert not covers(none)


async def _promote(store: InMemoryFixtureStore, event: TraceScored) -> list[Written]:
    await store.record_decision(event, AT)
    return [await store.write(draft, event, AT) for draft in build_fixtures(event)]


async def _active(store: InMemoryFixtureStore, pattern_id: str) -> list[tuple[str, int]]:
    async with store.active_fixtures(pattern_id) as active:
        return active


def at(hour: int) -> datetime:
    return AT + timedelta(hours=hour)


def test_the_in_memory_store_retires_then_restores_a_fixture() -> None:
    async def scenario() -> None:
        store = InMemoryFixtureStore()
        trace = refund_trace("a" * 32)
        promoted = scored(trace, policy_version="lenient", at=at(1))
        await _promote(store, promoted)
        ids = sorted(store.fixtures)

        rejected = scored(trace, policy_version="strict", decision=Decision.REJECT, at=at(2))
        withdrawal = await store.withdraw(rejected, AT)
        assert [(f, a) for f, a, _ in withdrawal.changed] == [(f, "retired") for f in ids]
        assert withdrawal.sourced
        assert await _active(store, promoted.pattern.pattern_id) == []

        again = await store.withdraw(rejected, AT)
        assert again.changed == () and again.sourced, "a redelivery changes nothing"

        stale = await _promote(store, promoted)
        assert all(w.superseded for w in stale), "the old promotion, redelivered, is stale"
        assert {f.status for f in store.fixtures.values()} == {"retired"}

        # A replay under the first policy promotes the trace again: the bodies come back.
        await _promote(store, scored(trace, policy_version="lenient", at=at(3)))
        assert {f: store.fixtures[f].status for f in ids} == dict.fromkeys(ids, "active")
        assert [line[0] for line in store.gate_log].count("restored") == len(ids)

    asyncio.run(scenario())


def test_the_in_memory_store_reverts_to_a_version_the_new_policy_still_promotes() -> None:
    async def scenario() -> None:
        store = InMemoryFixtureStore()
        first, second = refund_trace("a" * 32, amount=120), refund_trace("b" * 32, amount=999)
        await _promote(store, scored(first, policy_version="lenient", at=at(1)))
        await _promote(store, scored(second, policy_version="lenient", at=at(2)))
        await store.record_decision(scored(first, policy_version="strict", at=at(3)), AT)

        dropped = scored(second, policy_version="strict", decision=Decision.HOLD, at=at(4))
        withdrawal = await store.withdraw(dropped, AT)
        reverted = {f for f, action, _ in withdrawal.changed if action == "reverted"}
        assert reverted, "fixtures whose body differs between the two traces fall back"
        assert all(store.fixtures[f].current == 1 for f in reverted)
        assert {f for f, _ in await _active(store, "p1-abc")} == set(store.fixtures)

        # The next new body after a fall-back is a version of its own, after the highest.
        third = refund_trace("c" * 32, amount=4321)
        written = await _promote(store, scored(third, policy_version="strict", at=at(5)))
        fresh = {w.fixture_id: w.version for w in written if w.created}
        assert fresh and all(fresh[f] == 3 for f in reverted if f in fresh)

    asyncio.run(scenario())


def test_a_trace_decided_again_with_another_body_sources_no_second_version() -> None:
    """A redelivered trace can be scored again after its pattern grew, so its promotion
    carries another body: one trace sources at most one version of a fixture per policy."""

    async def scenario() -> None:
        store = InMemoryFixtureStore()
        trace = refund_trace("a" * 32)
        first = scored(trace, policy_version="p", at=at(1))
        grown = first.model_copy(update={"reason": first.reason + " (pattern grew)"})
        await _promote(store, first)
        again = await _promote(store, grown)
        assert all(not w.created for w in again), "no new version from the same trace"
        assert {len(f.versions) for f in store.fixtures.values()} == {1}
        other = scored(refund_trace("b" * 32, 999), policy_version="p", at=at(2))
        assert any(w.created for w in await _promote(store, other)), "another trace versions"

    asyncio.run(scenario())
