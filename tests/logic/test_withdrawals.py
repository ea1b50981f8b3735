"""Withdrawn promotions: a replay that holds or rejects what an earlier policy promoted
takes the fixtures that trace sourced out of the suite, on literal inputs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.dedupe.logic import covers
from services.fixture_writer.logic import (
    VersionSource,
    active_coverage,
    after_withdrawal,
    build_fixtures,
    replayed,
    withdraws_promotion,
)
from services.fixture_writer.store import InMemoryFixtureStore
from shared import topics
from shared.events import Decision, TraceScored
from tests.support.builders import refund_trace, scored

pytestmark = pytest.mark.logic

AT = datetime(2026, 3, 2, tzinfo=UTC)


def test_only_a_replays_hold_or_reject_can_withdraw_a_promotion() -> None:
    assert replayed(topics.REPLAY_STAGE)
    assert not replayed("scoring")
    assert not replayed(None)
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


async def _promote(store: InMemoryFixtureStore, event: TraceScored) -> None:
    await store.record_decision(event, AT)
    for draft in build_fixtures(event):
        await store.write(draft, event, AT)


def test_the_in_memory_store_retires_then_restores_a_fixture() -> None:
    async def scenario() -> None:
        store = InMemoryFixtureStore()
        promoted = scored(refund_trace("a" * 32), policy_version="lenient")
        await _promote(store, promoted)
        ids = sorted(store.fixtures)

        rejected = scored(refund_trace("a" * 32), policy_version="strict", decision=Decision.REJECT)
        await store.record_decision(rejected, AT)
        withdrawal = await store.withdraw(rejected, AT)
        assert [(f, a) for f, a, _ in withdrawal.changed] == [(f, "retired") for f in ids]
        assert withdrawal.active == ()

        again = await store.withdraw(rejected, AT)
        assert again.changed == (), "a redelivered withdrawal changes nothing"

        # Back to the first policy (say, a replay under it): the same bodies come back.
        await _promote(store, scored(refund_trace("a" * 32), policy_version="lenient"))
        assert {f: store.fixtures[f].status for f in ids} == dict.fromkeys(ids, "active")
        assert [a for a, _, _ in store.gate_log].count("restored") == len(ids)

    asyncio.run(scenario())


def test_the_in_memory_store_reverts_to_a_version_the_new_policy_still_promotes() -> None:
    async def scenario() -> None:
        store = InMemoryFixtureStore()
        first = scored(refund_trace("a" * 32, amount=120), policy_version="lenient")
        second = scored(refund_trace("b" * 32, amount=999), policy_version="lenient")
        await _promote(store, first)
        await _promote(store, second)
        kept = scored(refund_trace("a" * 32, amount=120), policy_version="strict")
        await store.record_decision(kept, AT)

        dropped = scored(
            refund_trace("b" * 32, amount=999), policy_version="strict", decision=Decision.HOLD
        )
        withdrawal = await store.withdraw(dropped, AT)
        reverted = {f for f, action, version in withdrawal.changed if action == "reverted"}
        assert reverted, "fixtures whose body differs between the two traces fall back"
        assert all(store.fixtures[f].current == 1 for f in reverted)
        assert {f for f, _ in withdrawal.active} == set(store.fixtures)

    asyncio.run(scenario())
