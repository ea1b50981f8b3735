"""Verdicts and held cases through the stage handlers on FastStream's in-memory broker: the
review stage keeps live holds only; the fixture writer writes a promotion's fixtures with
the reviewer's answer, once however often the verdict is delivered; scoring records a
rejection and rejects the pattern's next trace."""

from __future__ import annotations

import pytest
from faststream.kafka import TestKafkaBroker

from services.review import logic
from services.review.store import MemoryReviewStore
from services.scoring.verdicts import MemoryVerdictStore
from shared import topics
from shared.events import Decision, FixtureIndexed, Verdict
from tests.support.builders import T0, refund_trace, scored

pytestmark = pytest.mark.wiring


async def test_the_review_stage_keeps_live_holds_only() -> None:
    from services.review import app as review

    store = MemoryReviewStore()
    held = scored(refund_trace("a" * 32), decision=Decision.HOLD)
    replayed = scored(refund_trace("b" * 32), decision=Decision.HOLD)
    promoted = scored(refund_trace("c" * 32), decision=Decision.PROMOTE)
    async with TestKafkaBroker(review.broker) as broker:
        broker.context.set_global("store", store)
        live = {topics.DECIDED_BY_HEADER: "scoring"}
        for event in (held, promoted, held):
            await broker.publish(event.model_dump_json().encode(), topics.SCORED, headers=live)
        replay = {topics.DECIDED_BY_HEADER: topics.REPLAY_STAGE}
        await broker.publish(replayed.model_dump_json().encode(), topics.SCORED, headers=replay)
    assert list(store.stored) == ["a" * 32]


async def test_the_fixture_writer_writes_a_promotion_with_the_answer_once() -> None:
    from services.fixture_writer import app as writer
    from services.fixture_writer.memory_store import InMemoryFixtureStore

    case = logic.case_from(scored(refund_trace("a" * 32), decision=Decision.HOLD))
    verdict = logic.build_verdict(
        [case], Verdict.PROMOTE, "ana", T0, answer="Refund 40.", kinds=("regression_case",)
    )
    store = InMemoryFixtureStore()
    async with TestKafkaBroker(writer.broker) as broker:
        broker.context.set_global("store", store)
        for _ in range(2):  # a redelivery
            await broker.publish(verdict.model_dump_json().encode(), topics.REVIEWED)
    [(fixture_id, fixture)] = store.fixtures.items()
    assert fixture_id == "p1-abc:regression_case"
    [version] = fixture.versions
    assert version.body["review"] == {
        "reviewed_by": "ana",
        "verdict_id": verdict.verdict_id,
        "answer": "Refund 40.",
        "tool_calls": [],
        "must_not": [],
    }


async def test_scoring_rejects_the_next_trace_of_a_pattern_a_reviewer_rejected() -> None:
    from services.scoring import app as scoring
    from services.scoring.store import InMemoryBudgetStore

    case = logic.case_from(scored(refund_trace("a" * 32), decision=Decision.HOLD))
    rejection = logic.build_verdict([case], Verdict.REJECT, "ana", T0, reason="test account")
    verdicts = MemoryVerdictStore()
    later = scored(refund_trace("b" * 32), decision=Decision.HOLD)
    async with TestKafkaBroker(scoring.broker) as broker:
        broker.context.set_global("store", InMemoryBudgetStore())
        broker.context.set_global("verdicts", verdicts)
        await broker.publish(rejection.model_dump_json().encode(), topics.REVIEWED)
        assert verdicts.latest["p1-abc"].reviewer == "ana"
        body = later.model_dump_json(
            exclude={"scores", "total", "decision", "reason", "policy_version"}
        )
        await broker.publish(body.encode(), topics.REDACTED)
        assert scoring.scored.mock is not None
        decided = scoring.scored.mock.call_args.args[0]
    assert decided["decision"] == "reject"
    assert decided["reason"].startswith("pattern rejected in review by ana (test account)")


async def test_a_fixture_retired_by_hand_is_retired_once_and_its_pattern_uncovered() -> None:
    from services.fixture_writer import app as writer
    from services.fixture_writer.memory_store import InMemoryFixtureStore

    case = logic.case_from(scored(refund_trace("a" * 32), decision=Decision.HOLD))
    promoted = logic.build_verdict(
        [case], Verdict.PROMOTE, "ana", T0, answer="Refund 40.", kinds=("regression_case",)
    )
    retired = logic.retire_verdict(
        "p1-abc:regression_case", "p1-abc", "a" * 32, "policy changed", "bo", T0
    )
    store = InMemoryFixtureStore()
    async with TestKafkaBroker(writer.broker) as broker:
        broker.context.set_global("store", store)
        await broker.publish(promoted.model_dump_json().encode(), topics.REVIEWED)
        for _ in range(2):  # a redelivery
            await broker.publish(retired.model_dump_json().encode(), topics.REVIEWED)
        index = writer.index.mock
        assert index is not None
        coverage = [FixtureIndexed.model_validate(c.args[0]) for c in index.call_args_list]
    assert store.fixtures["p1-abc:regression_case"].status == "retired"
    assert [line[0] for line in store.gate_log].count("retired") == 1
    assert coverage[-1].fixture_ids == (), "no active fixture covers the pattern any more"


async def test_scoring_keeps_a_rejection_when_a_fixture_of_the_pattern_is_retired() -> None:
    from services.scoring import app as scoring

    case = logic.case_from(scored(refund_trace("a" * 32), decision=Decision.HOLD))
    rejected = logic.build_verdict([case], Verdict.REJECT, "ana", T0, reason="no lesson")
    retired = logic.retire_verdict("p1-abc:regression_case", "p1-abc", "a" * 32, "old", "bo", T0)
    verdicts = MemoryVerdictStore()
    async with TestKafkaBroker(scoring.broker) as broker:
        broker.context.set_global("verdicts", verdicts)
        for event in (rejected, retired):
            await broker.publish(event.model_dump_json().encode(), topics.REVIEWED)
    kept = await verdicts.verdict("p1-abc")
    assert kept is not None and kept.verdict == Verdict.REJECT
