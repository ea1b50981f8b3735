"""Scoring a batch: budgets are spent in the order the traces came, as one at a time."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.scoring import logic, step
from services.scoring.policy import DEFAULT_POLICY_PATH, load_policy
from services.scoring.verdicts import PatternVerdict
from shared.events import Decision, StageStamp, TraceRedacted, TraceScored, Verdict
from tests.support.builders import T0, refund_trace, scored

pytestmark = pytest.mark.logic

POLICY = load_policy(DEFAULT_POLICY_PATH)
STAMP = StageStamp(stage="scoring", version="test", at=T0)


def redacted(trace_id: str, pattern_id: str) -> TraceRedacted:
    event = scored(refund_trace(trace_id), pattern_id=pattern_id)
    return TraceRedacted(**{name: getattr(event, name) for name in TraceRedacted.model_fields})


def promoting_everything(seen: list[tuple[str, logic.BudgetState]]) -> Any:
    def scored_event(
        event: TraceRedacted, policy: Any, budget: logic.BudgetState, stamp: StageStamp
    ) -> TraceScored:
        seen.append((event.trace_id, budget))
        return scored(event.trace, pattern_id=event.pattern.pattern_id, decision=Decision.PROMOTE)

    return scored_event


def test_each_trace_of_a_batch_sees_the_promotions_of_the_traces_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, logic.BudgetState]] = []
    monkeypatch.setattr(logic, "scored_event", promoting_everything(seen))
    events = [redacted("a" * 32, "p1"), redacted("b" * 32, "p1"), redacted("c" * 32, "p2")]
    facts = logic.BudgetFacts(for_pattern={"p1": 3}, on_day={})

    decided = step.scored_batch(events, POLICY, facts, {}, STAMP)

    assert [b.promoted_for_pattern for _, b in seen] == [3, 4, 0]
    assert [p.trace_id for p in step.promotions(decided, POLICY)] == [e.trace_id for e in events]


def test_a_trace_met_twice_in_a_batch_is_not_counted_against_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, logic.BudgetState]] = []
    monkeypatch.setattr(logic, "scored_event", promoting_everything(seen))
    again = redacted("a" * 32, "p1")
    facts = logic.BudgetFacts(for_pattern={}, on_day={})

    step.scored_batch([again, redacted("b" * 32, "p1"), again], POLICY, facts, {}, STAMP)

    assert [b.promoted_for_pattern for _, b in seen] == [0, 1, 1]


def test_a_pattern_rejected_in_review_spends_no_budget_in_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, logic.BudgetState]] = []
    monkeypatch.setattr(logic, "scored_event", promoting_everything(seen))
    rejected = PatternVerdict("p1", Verdict.REJECT, "v1", "ana", "noise", T0)
    facts = logic.BudgetFacts(for_pattern={}, on_day={})

    decided = step.scored_batch(
        [redacted("a" * 32, "p1"), redacted("b" * 32, "p1")], POLICY, facts, {"p1": rejected}, STAMP
    )

    assert [e.decision for e in decided] == [Decision.REJECT, Decision.REJECT]
    assert [b.promoted_for_pattern for _, b in seen] == [0, 0]
    assert step.promotions(decided, POLICY) == []


def test_budget_days_are_the_days_the_traces_started() -> None:
    event = redacted("a" * 32, "p1")
    (promotion,) = step.promotions(
        [scored(event.trace, pattern_id="p1", decision=Decision.PROMOTE)], POLICY
    )
    assert promotion.day == logic.budget_day(event)
    assert isinstance(promotion.day, date) and promotion.policy_version == POLICY.version
