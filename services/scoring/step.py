"""The scoring step, shared by the stage and `promote replay`: one batch of traces in,
their decisions out, budgets spent in the order the traces came.

The fold is pure: the store's facts (what other traces spent) plus what this batch has
promoted so far give each trace its budget, so two traces of one pattern in one batch are
decided exactly as they would be one after the other."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date

from services.scoring import logic
from services.scoring.policy import Policy
from services.scoring.store import BudgetStore, Promotion
from services.scoring.verdicts import PatternVerdict, VerdictStore, follow_verdict
from shared.events import Decision, StageStamp, TraceRedacted, TraceScored


def scored_batch(
    events: Sequence[TraceRedacted],
    policy: Policy,
    facts: logic.BudgetFacts,
    verdicts: Mapping[str, PatternVerdict],
    stamp: StageStamp,
) -> list[TraceScored]:
    for_pattern: Counter[str] = Counter(facts.for_pattern)
    on_day: Counter[date] = Counter(facts.on_day)
    spent: dict[str, tuple[str, date]] = {}  # this batch's promotions, by trace
    decided = []
    for event in events:
        pattern_id, day = event.pattern.pattern_id, logic.budget_day(event)
        # A trace met twice in one batch (a redelivery) does not count against itself.
        own = spent.get(event.trace_id)
        own_pattern = 1 if own is not None and own[0] == pattern_id else 0
        own_day = 1 if own is not None and own[1] == day else 0
        budget = logic.BudgetState(
            promoted_for_pattern=for_pattern[pattern_id] - own_pattern,
            promoted_today=on_day[day] - own_day if policy.budgets.counts_days else 0,
        )
        out = follow_verdict(
            logic.scored_event(event, policy, budget, stamp), verdicts.get(pattern_id)
        )
        if out.decision == Decision.PROMOTE and own is None:
            spent[event.trace_id] = (pattern_id, day)
            for_pattern[pattern_id] += 1
            on_day[day] += 1
        decided.append(out)
    return decided


async def decide(
    events: Sequence[TraceRedacted],
    policy: Policy,
    store: BudgetStore,
    verdicts: VerdictStore | None,
    stamp: StageStamp,
) -> list[TraceScored]:
    """The store's facts for the batch, then the fold."""
    pattern_ids = sorted({e.pattern.pattern_id for e in events})
    facts = await store.facts(
        [e.trace_id for e in events],
        pattern_ids,
        {logic.budget_day(e) for e in events} if policy.budgets.counts_days else (),
        policy.version,
    )
    known = await verdicts.verdicts(pattern_ids) if verdicts is not None else {}
    return scored_batch(events, policy, facts, known, stamp)


def promotions(decided: Sequence[TraceScored], policy: Policy) -> list[Promotion]:
    """The budget slots the batch's promotions spend under ``policy``."""
    return [
        Promotion(e.trace_id, e.pattern.pattern_id, policy.version, logic.budget_day(e))
        for e in decided
        if e.decision == Decision.PROMOTE
    ]
