"""Stores on the real database answer as their in-memory twins do: dedupe's pattern store
(assignment, counts, exemplars, learned baselines, daily series, reference paths) on real
runs, scoring's budgets (with and without counting the day's promotions), and the fixture
store withdrawing, reverting, retiring (by a replay or by hand) and restoring fixtures."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest

from promoter.supervisor import Endpoints
from services.dedupe.logic import Observation
from services.dedupe.store import InMemoryPatternStore, PatternStore, PostgresPatternStore
from services.fixture_writer.logic import HandRetirement, build_fixtures
from services.fixture_writer.memory_store import InMemoryFixtureStore
from services.fixture_writer.store import FixtureStore, FixtureWrites, PostgresFixtureStore
from services.scoring.logic import BudgetState
from services.scoring.store import (
    BudgetStore,
    InMemoryBudgetStore,
    PostgresBudgetStore,
    Promotion,
)
from services.scoring.verdicts import (
    MemoryVerdictStore,
    PatternVerdict,
    PostgresVerdictStore,
    VerdictStore,
)
from shared.db import connect_pool, migrate
from shared.events import Decision, Trace, TraceScored, Verdict
from tests.support.builders import refund_trace, scored
from tests.support.patterns import record_in_batches, seen_again, slice_observations

pytestmark = pytest.mark.e2e

T = TypeVar("T")

DAY = date(2026, 3, 2)
OTHER_DAY = date(2026, 3, 3)


async def promotions_then_budgets(
    store: PostgresBudgetStore | InMemoryBudgetStore, version: str
) -> list[BudgetState]:
    for trace, pattern, day in [
        ("t1", "p1", DAY),
        ("t2", "p1", DAY),
        ("t3", "p2", DAY),
        ("t4", "p1", OTHER_DAY),
        ("t1", "p1", DAY),  # a redelivery records nothing new
    ]:
        await store.record_promotion(trace, pattern, version, day)
    return [
        await store.budget("t5", "p1", version, DAY),
        await store.budget("t1", "p1", version, DAY),  # its own promotion is not counted
        await store.budget("t5", "p1", version, DAY, count_today=False),
        await store.budget("t5", "p3", version, OTHER_DAY),
        await store.budget("t5", "p1", "another-policy", DAY),
    ]


def test_the_postgres_budget_store_counts_as_the_in_memory_one_does(infra: Endpoints) -> None:
    version = f"test-{secrets.token_hex(4)}"

    async def on_postgres() -> list[BudgetState]:
        pool = await connect_pool(infra.database_url)
        try:
            return await promotions_then_budgets(PostgresBudgetStore(pool), version)
        finally:
            await pool.close()

    real = asyncio.run(on_postgres())
    twin = asyncio.run(promotions_then_budgets(InMemoryBudgetStore(), version))
    assert real == twin
    assert [(b.promoted_for_pattern, b.promoted_today) for b in real] == [
        (3, 3),
        (2, 2),
        (3, 0),
        (0, 1),
        (0, 0),
    ]


AT = datetime(2026, 3, 2, tzinfo=UTC)


Written_ = tuple[int, bool, bool, bool]  # version, created, restored, superseded
Changes = tuple[list[tuple[str, str, int]], list[tuple[str, int]]]  # changed, then active


@dataclass(frozen=True)
class Story:
    promoted: list[list[Written_]]
    withdrawn: list[Changes]
    after_fall_back: list[Written_]
    stale: list[Written_]
    emptied: Changes
    restored: list[Written_]


async def _promote(store: FixtureWrites, event: TraceScored) -> list[Written_]:
    """Records the decision and writes every fixture of it, alone or inside a batch."""
    await store.record_decision(event, AT)
    written = [await store.write(d, event, AT) for d in build_fixtures(event)]
    return [(w.version, w.created, w.restored, w.superseded) for w in written]


async def _withdraw(store: FixtureStore, event: TraceScored) -> Changes:
    got = await store.withdraw(event, AT)
    async with store.active_fixtures(event.pattern.pattern_id) as active:
        return sorted(got.changed), sorted(active)


async def withdrawals(store: FixtureStore, nonce: str) -> Story:
    """Two traces of one pattern promoted under policy A (hours 1, 2); B keeps the first
    (3) and withdraws the second (4, then redelivered); a third trace promoted under B (5)
    versions after the fall-back; the second's A promotion redelivered is stale; C withdraws
    the third and the first (6); a replay under A promotes the second again (7)."""
    first = refund_trace(f"{nonce}a".ljust(32, "0"), 120)
    second = refund_trace(f"{nonce}b".ljust(32, "0"), 999)
    third = refund_trace(f"{nonce}c".ljust(32, "0"), 4321)
    policy_b, policy_c = f"B-{nonce}", f"C-{nonce}"

    def decided(trace: Trace, policy: str, decision: Decision, hour: int) -> TraceScored:
        return scored(
            trace,
            policy_version=policy,
            pattern_id=f"p-{nonce}",
            decision=decision,
            at=AT + timedelta(hours=hour),
        )

    promoted = [
        await _promote(store, decided(first, "A", Decision.PROMOTE, 1)),
        await _promote(store, decided(second, "A", Decision.PROMOTE, 2)),
    ]
    await store.record_decision(decided(first, policy_b, Decision.PROMOTE, 3), AT)
    withdrawn = [
        await _withdraw(store, decided(second, policy_b, Decision.REJECT, 4)),
        await _withdraw(store, decided(second, policy_b, Decision.REJECT, 4)),
    ]
    after_fall_back = await _promote(store, decided(third, policy_b, Decision.PROMOTE, 5))
    stale = await _promote(store, decided(second, "A", Decision.PROMOTE, 2))
    await _withdraw(store, decided(third, policy_c, Decision.HOLD, 6))
    emptied = await _withdraw(store, decided(first, policy_c, Decision.REJECT, 6))
    restored = await _promote(store, decided(second, "A", Decision.PROMOTE, 7))
    return Story(promoted, withdrawn, after_fall_back, stale, emptied, restored)


def test_the_postgres_fixture_store_withdraws_as_the_in_memory_one_does(infra: Endpoints) -> None:
    nonce = secrets.token_hex(4)

    async def on_postgres() -> Story:
        pool = await connect_pool(infra.database_url)
        try:
            return await withdrawals(PostgresFixtureStore(pool), nonce)
        finally:
            await pool.close()

    real = asyncio.run(on_postgres())
    assert real == asyncio.run(withdrawals(InMemoryFixtureStore(), nonce))
    fell_back, again = real.withdrawn
    assert {action for _, action, _ in fell_back[0]} == {"reverted"}, "the first trace stands"
    assert again == ([], fell_back[1]), "a redelivered withdrawal changes nothing"
    assert any(created and version == 3 for version, created, _, _ in real.after_fall_back), (
        "a new body after a fall-back is the next version after the highest stored"
    )
    assert real.stale and all(superseded for *_, superseded in real.stale)
    assert real.emptied[1] == [], "nothing of the pattern is left active"
    assert real.restored and all(restored for _, _, restored, _ in real.restored)


async def record_all(store: PatternStore, observations: list[Observation]) -> list[Any]:
    facts: list[Any] = []
    for obs in [*observations, observations[0]]:  # the last one is a redelivery
        recorded = await store.record(obs)
        days = await store.days(recorded.pattern_id, obs.agent, obs.seen_at.date())
        reference = await store.reference(obs)
        facts.append((recorded, await store.pattern(recorded.pattern_id), days, reference))
    for agent in sorted({o.agent for o in observations}):
        facts.append(await store.baseline(agent))
    return facts


def test_the_postgres_pattern_store_groups_as_the_in_memory_one_does(infra: Endpoints) -> None:
    observations = slice_observations(secrets.token_hex(4))

    async def on_postgres() -> list[Any]:
        pool = await connect_pool(infra.database_url)
        try:
            await migrate(pool)
            return await record_all(PostgresPatternStore(pool), observations)
        finally:
            await pool.close()

    on_db = asyncio.run(on_postgres())
    in_memory = asyncio.run(record_all(InMemoryPatternStore(), observations))
    recorded = on_db[: len(observations)]
    assert len({fact[0].pattern_id for fact in recorded}) > 1
    assert any(fact[2] for fact in recorded)  # daily series
    assert any(fact[3][1] for fact in recorded)  # reference paths of successful runs
    assert on_db == in_memory


async def retired_by_hand(store: FixtureStore, nonce: str) -> tuple[Any, ...]:
    """A promoted fixture retired by hand, then the same retirement redelivered."""
    event = scored(refund_trace(f"{nonce}r".ljust(32, "0"), 77), pattern_id=f"p-{nonce}")
    await _promote(store, event)
    fixture_id = build_fixtures(event)[0].fixture_id
    retirement = HandRetirement(fixture_id, "ana", "the refund rule changed", AT)
    first = await store.retire_by_hand(retirement, AT)
    again = await store.retire_by_hand(retirement, AT)
    async with store.active_fixtures(f"p-{nonce}") as active:
        left = sorted(active)
    return first, again, fixture_id in {f for f, _ in left}


def test_the_postgres_fixture_store_retires_by_hand_as_the_in_memory_one_does(
    infra: Endpoints,
) -> None:
    nonce = secrets.token_hex(4)

    async def on_postgres() -> tuple[tuple[Any, ...], list[str]]:
        pool = await connect_pool(infra.database_url)
        try:
            story = await retired_by_hand(PostgresFixtureStore(pool), nonce)
            reasons = [
                r["reason"]
                for r in await pool.fetch(
                    "SELECT reason FROM gate_log WHERE action = 'retired' AND pattern_id = $1",
                    f"p-{nonce}",
                )
            ]
            return story, reasons
        finally:
            await pool.close()

    story, reasons = asyncio.run(on_postgres())
    assert story == asyncio.run(retired_by_hand(InMemoryFixtureStore(), nonce))
    assert story == (f"p-{nonce}", None, False), "retired once; the redelivery changes nothing"
    assert reasons == ["retired by hand by ana: the refund rule changed"]


def test_a_batch_recorded_in_one_transaction_groups_as_the_in_memory_twin_does(
    infra: Endpoints,
) -> None:
    observations = slice_observations(secrets.token_hex(4))

    async def on_postgres() -> tuple[list[Any], list[Any], list[Any]]:
        pool = await connect_pool(infra.database_url)
        try:
            await migrate(pool)
            facts = await record_in_batches(PostgresPatternStore(pool), observations, size=7)
            patterns = sorted({recorded.pattern_id for recorded, _ in facts})
            kept = await pool.fetch(
                """SELECT pattern_id, dimension, members FROM pattern_member_counts
                   WHERE pattern_id = ANY($1::text[]) ORDER BY 1, 2""",
                patterns,
            )
            counted = await pool.fetch(
                """SELECT pattern_id, dimension, count(*) AS members FROM pattern_members
                   WHERE pattern_id = ANY($1::text[]) GROUP BY 1, 2 ORDER BY 1, 2""",
                patterns,
            )
            return facts, [tuple(r) for r in kept], [tuple(r) for r in counted]
        finally:
            await pool.close()

    on_db, kept_counts, member_rows = asyncio.run(on_postgres())
    assert on_db == asyncio.run(record_in_batches(InMemoryPatternStore(), observations, size=7))
    assert kept_counts == member_rows and kept_counts, "the kept counts are the members' counts"
    redelivered = on_db[-1][0]
    assert not redelivered.first_delivery and redelivered.already_forwarded


def sightings_over_days(token: str) -> list[Observation]:
    """One request seen every 7 hours over nine days, sent partly out of order: batches of
    seven move the pattern's last sighting on by two days, past both count windows."""
    hours = [7 * k for k in range(31)]
    hours[10], hours[12] = hours[12], hours[10]  # a late trace within a batch
    hours[20], hours[27] = hours[27], hours[20]  # and one a batch late
    return seen_again(slice_observations(token)[0], hours)


def test_day_and_week_counts_follow_the_last_sighting_across_batches_as_in_the_twin(
    infra: Endpoints,
) -> None:
    observations = sightings_over_days(secrets.token_hex(4))

    async def on_postgres() -> list[Any]:
        pool = await connect_pool(infra.database_url)
        try:
            await migrate(pool)
            return await record_in_batches(PostgresPatternStore(pool), observations, size=7)
        finally:
            await pool.close()

    on_db = asyncio.run(on_postgres())
    assert on_db == asyncio.run(record_in_batches(InMemoryPatternStore(), observations, size=7))
    counts = [(info.count_24h, info.count_7d) for _, info in on_db]
    assert len({info.pattern_id for _, info in on_db}) == 1, "one pattern"
    assert max(c for c, _ in counts) == 4 and max(w for _, w in counts) == 24
    assert counts[-2] == (4, 24), "the last sighting's windows hold the latest traces only"


async def batch_facts(store: BudgetStore, version: str) -> list[Any]:
    await store.record_promotions(
        [
            Promotion("t1", "p1", version, DAY),
            Promotion("t2", "p1", version, DAY),
            Promotion("t3", "p2", version, OTHER_DAY),
            Promotion("t1", "p1", version, DAY),  # a redelivery records nothing new
        ]
    )
    return [
        await store.facts(["t9"], ["p1", "p2", "p3"], [DAY, OTHER_DAY], version),
        await store.facts(["t1", "t3"], ["p1", "p2"], [DAY], version),  # the batch's own
        await store.facts(["t9"], ["p1"], [], version),  # no daily cap: no day counted
        await store.facts(["t9"], ["p1"], [DAY], "another-policy"),
    ]


def test_budget_facts_for_a_batch_are_the_same_on_postgres_and_in_memory(
    infra: Endpoints,
) -> None:
    version = f"twin-batch-{secrets.token_hex(4)}"

    async def on_postgres() -> list[Any]:
        pool = await connect_pool(infra.database_url)
        try:
            await migrate(pool)
            return await batch_facts(PostgresBudgetStore(pool), version)
        finally:
            await pool.close()

    real = asyncio.run(on_postgres())
    assert real == asyncio.run(batch_facts(InMemoryBudgetStore(), version))
    assert real[0].for_pattern == {"p1": 2, "p2": 1}
    assert real[1].for_pattern == {"p1": 1} and real[1].on_day == {DAY: 1}
    assert real[2].on_day == {} and real[3].for_pattern == {}


async def verdict_story(store: VerdictStore, pattern: str) -> list[Any]:
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    first = PatternVerdict(pattern, Verdict.REJECT, "v1", "ana", "noise", at)
    later = PatternVerdict(pattern, Verdict.SNOOZE, "v2", "ben", "later", at + timedelta(hours=1))
    await store.record(later)
    await store.record(first)  # an older verdict arriving late replaces nothing
    return [await store.verdict(pattern), await store.verdicts([pattern, f"{pattern}-none"])]


def test_the_postgres_verdict_store_keeps_the_latest_verdict_as_the_twin_does(
    infra: Endpoints,
) -> None:
    pattern = f"p-{secrets.token_hex(4)}"

    async def on_postgres() -> list[Any]:
        pool = await connect_pool(infra.database_url)
        try:
            await migrate(pool)
            return await verdict_story(PostgresVerdictStore(pool), pattern)
        finally:
            await pool.close()

    real = asyncio.run(on_postgres())
    assert real == asyncio.run(verdict_story(MemoryVerdictStore(), pattern))
    assert real[0] is not None and real[0].verdict_id == "v2"
    assert list(real[1]) == [pattern]


async def promoted_in_one_batch(store: FixtureStore, nonce: str) -> list[Any]:
    """Three traces of one pattern, the last a redelivery of the first, written in one
    transaction as the fixture writer writes a batch; then what is active."""
    traces = [
        refund_trace(f"{nonce}{n}".ljust(32, "0"), amount) for n, amount in (("a", 5), ("b", 7))
    ]
    events = [
        scored(t, pattern_id=f"pb-{nonce}", at=AT + timedelta(hours=hour))
        for hour, t in enumerate([*traces, traces[0]], start=1)
    ]
    async with store.batch() as session:
        written = [w for event in events for w in await _promote(session, event)]
    async with store.active_fixtures(f"pb-{nonce}") as active:
        return [written, sorted(active)]


def fixture_story_on_postgres(infra: Endpoints, story: Callable[[FixtureStore], Awaitable[T]]) -> T:
    """The story told to the fixture store on the real database."""

    async def told() -> T:
        pool = await connect_pool(infra.database_url)
        try:
            await migrate(pool)
            return await story(PostgresFixtureStore(pool))
        finally:
            await pool.close()

    return asyncio.run(told())


def test_promotions_written_in_one_batch_store_what_the_in_memory_twin_stores(
    infra: Endpoints,
) -> None:
    nonce = secrets.token_hex(3)
    real = fixture_story_on_postgres(infra, lambda store: promoted_in_one_batch(store, nonce))
    assert real == asyncio.run(promoted_in_one_batch(InMemoryFixtureStore(), nonce))
    written, active = real
    assert any(created for _, created, _, _ in written)
    assert active and all(version >= 1 for _, version in active)


@dataclass(frozen=True)
class BatchStory:
    written: dict[str, list[Written_]]  # by step
    active: dict[str, list[tuple[str, int]]]  # the patterns' coverage, read in one go
    decisions: dict[tuple[str, str], tuple[str, datetime]]
    versions: dict[tuple[str, int], str]  # (fixture, version) -> source trace
    gate_log: set[tuple[str, str, int, str, datetime]]
    blocked: dict[tuple[str, str], str]


async def one_prefetched_batch(store: FixtureStore, nonce: str) -> dict[str, list[Written_]]:
    """Before the batch, a trace of pattern pr is promoted under A and withdrawn by B (its
    fixtures retired), and a trace of pattern ps promoted. Then one batch, prefetched as
    the stage does: two traces of pattern pb (hours 1, 2), the first redelivered later
    (hour 3); a rejection of the ps trace (hour 5) recorded before its promotion (hour 4)
    is written; a replay under A promoting the pr trace again (hour 6); a draft blocked
    twice."""
    pattern = {p: f"{p}-{nonce}" for p in ("pb", "pr", "ps")}

    def trace(tag: str, amount: int) -> Trace:
        return refund_trace(f"{nonce}{tag}".ljust(32, "0"), amount)

    def decided(
        t: Trace, p: str, hour: int, policy: str = "A", d: Decision = Decision.PROMOTE
    ) -> TraceScored:
        return scored(t, policy, pattern[p], d, AT + timedelta(hours=hour))

    first, second, retired, stale = trace("a", 5), trace("b", 7), trace("r", 9), trace("s", 11)
    await _promote(store, decided(retired, "pr", 1))
    await store.withdraw(decided(retired, "pr", 2, "B", Decision.REJECT), AT)
    await _promote(store, decided(stale, "ps", 1))
    steps = {
        "first": decided(first, "pb", 1),
        "second": decided(second, "pb", 2),
        "redelivered": decided(first, "pb", 3),
        "stale": decided(stale, "ps", 4),
        "restored": decided(retired, "pr", 6),
    }
    written: dict[str, list[Written_]] = {}
    async with store.batch() as session:
        promotions = [(event, build_fixtures(event)) for event in steps.values()]
        await session.prefetch(promotions)
        for (step, event), (_, drafts) in zip(steps.items(), promotions, strict=True):
            if step == "stale":
                await session.record_decision(decided(stale, "ps", 5, "B", Decision.REJECT), AT)
            await session.record_decision(event, AT)
            written[step] = []
            for draft in drafts:
                w = await session.write(draft, event, AT)
                written[step].append((w.version, w.created, w.restored, w.superseded))
        for reason in ("EMAIL found", "PHONE found"):
            await session.block(f"{pattern['pb']}:blocked", second.trace_id, reason, AT)
    return written


def twin_rows(store: InMemoryFixtureStore, nonce: str) -> tuple[Any, ...]:
    return (
        {k: v for k, v in store.decisions.items() if k[0].startswith(nonce)},
        {
            (fixture_id, v.version): v.source_trace_id
            for fixture_id, f in store.fixtures.items()
            for v in f.versions
        },
        set(store.gate_log),
        dict(store.blocked),
    )


async def postgres_rows(pool: Any, nonce: str) -> tuple[Any, ...]:
    decisions = await pool.fetch("SELECT * FROM decisions WHERE trace_id LIKE $1 || '%'", nonce)
    versions = await pool.fetch(
        "SELECT * FROM fixture_versions WHERE fixture_id LIKE '%-' || $1 || ':%'", nonce
    )
    lines = await pool.fetch(
        "SELECT * FROM gate_log WHERE fixture_id LIKE '%-' || $1 || ':%'", nonce
    )
    blocked = await pool.fetch(
        "SELECT * FROM blocked_fixtures WHERE fixture_id LIKE '%-' || $1 || ':%'", nonce
    )
    return (
        {(r["trace_id"], r["policy_version"]): (r["decision"], r["stamped_at"]) for r in decisions},
        {(r["fixture_id"], r["version"]): r["source_trace_id"] for r in versions},
        {
            (r["action"], r["fixture_id"], r["version"], r["policy_version"], r["decision_at"])
            for r in lines
        },
        {(r["fixture_id"], r["source_trace_id"]): r["reason"] for r in blocked},
    )


async def batch_story(store: FixtureStore, nonce: str, rows: Any) -> BatchStory:
    written = await one_prefetched_batch(store, nonce)
    patterns = [f"{p}-{nonce}" for p in ("pb", "pr", "ps", "none")]
    async with store.active_fixtures_of(patterns) as active:
        coverage = {p: sorted(fixtures) for p, fixtures in active.items()}
    return BatchStory(written, coverage, *await rows())


def test_a_prefetched_batch_versions_redelivers_supersedes_and_restores_as_the_twin_does(
    infra: Endpoints,
) -> None:
    nonce = secrets.token_hex(3)

    async def on_postgres() -> BatchStory:
        pool = await connect_pool(infra.database_url)
        try:
            await migrate(pool)
            store = PostgresFixtureStore(pool)
            return await batch_story(store, nonce, lambda: postgres_rows(pool, nonce))
        finally:
            await pool.close()

    async def in_memory() -> BatchStory:
        store = InMemoryFixtureStore()

        async def rows() -> tuple[Any, ...]:
            return twin_rows(store, nonce)

        return await batch_story(store, nonce, rows)

    real = asyncio.run(on_postgres())
    assert real == asyncio.run(in_memory())
    written = real.written
    assert all((v, created) == (1, True) for v, created, _, _ in written["first"])
    assert any((v, created) == (2, True) for v, created, _, _ in written["second"]), (
        "a new body later in the batch is the version after the one written before it"
    )
    assert all((v, c) == (1, False) for v, c, _, _ in written["redelivered"]), (
        "a redelivery in the same batch finds the version its first delivery wrote"
    )
    assert written["stale"] and all(superseded for *_, superseded in written["stale"]), (
        "a rejection recorded earlier in the batch supersedes the older promotion"
    )
    assert written["restored"] and all(restored for _, _, restored, _ in written["restored"])
    assert real.active[f"pr-{nonce}"], "the restored fixtures are active again"
    assert real.active[f"none-{nonce}"] == []
    first_trace = f"{nonce}a".ljust(32, "0")
    assert real.decisions[(first_trace, "A")] == ("promote", AT + timedelta(hours=3)), (
        "of one trace's decisions in a batch, the latest is stored"
    )
    assert list(real.blocked.values()) == ["EMAIL found"], "a block is kept as first written"
    restored_lines = {line for line in real.gate_log if line[0] == "restored"}
    assert len(restored_lines) == len(written["restored"])


async def matched_in_history(store: FixtureStore, nonce: str) -> list[Any]:
    """Four traces of one pattern promoted one by one (versions 1 to 4). Then one batch,
    prefetched as the stage does: the first redelivered (its body is version 1's), the
    second decided again with another body under the same policy (it sourced version 2),
    a fifth trace; then one batch that prefetches nothing: the fourth redelivered, which
    takes the fixtures' locks, and the third decided again with another body, which must
    still find the version it sourced."""
    traces = [refund_trace(f"{nonce}{n}".ljust(32, "0"), 100 + n) for n in range(5)]

    def decided(n: int, hour: int, amount: int | None = None) -> TraceScored:
        trace = traces[n] if amount is None else refund_trace(traces[n].trace_id, amount)
        return scored(trace, pattern_id=f"ph-{nonce}", at=AT + timedelta(hours=hour))

    history = [await _promote(store, decided(n, n + 1)) for n in range(4)]
    batch = [decided(0, 1), decided(1, 8, amount=777), decided(4, 9)]
    async with store.batch() as session:
        await session.prefetch([(event, build_fixtures(event)) for event in batch])
        written = [w for event in batch for w in await _promote(session, event)]
    async with store.batch() as session:
        unprefetched = [
            w
            for event in (decided(3, 4), decided(2, 10, amount=555))
            for w in await _promote(session, event)
        ]
    async with store.active_fixtures(f"ph-{nonce}") as active:
        return [history, written, unprefetched, sorted(active)]


def test_a_batch_finds_old_versions_by_body_and_by_source_as_the_twin_does(
    infra: Endpoints,
) -> None:
    nonce = secrets.token_hex(3)
    real = fixture_story_on_postgres(infra, lambda store: matched_in_history(store, nonce))
    assert real == asyncio.run(matched_in_history(InMemoryFixtureStore(), nonce))
    history, written, unprefetched, _ = real
    highest = max(version for step in history for version, *_ in step)
    assert highest >= 2, "the history versioned a fixture"
    found = {(version, created) for version, created, _, _ in written}
    assert (1, False) in found, "a redelivered body finds version 1"
    assert (2, False) in found, "a trace decided again finds the version it sourced"
    assert any(created and version > highest for version, created, _, _ in written), (
        "a new body is the version after the highest stored"
    )
    assert {(v, c) for v, c, _, _ in unprefetched} >= {(4, False), (3, False)}
