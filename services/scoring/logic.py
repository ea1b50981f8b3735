"""Scoring's functional core: the decision over the seven P.R.O.M.O.T.E. criteria
(``criteria``, ``cost``).

Pure: the same event, policy and budget always give the same verdict, which is what
makes replay under a new policy meaningful and lets N instances agree with one.

Every criterion returns a score in 0..1 and its evidence: the signals it saw, their
values, the thresholds it compared them with, and a short ``summary`` the decision's
reason quotes. Evidence values are JSON-native (lists, not tuples) so that an event
read back from a topic compares equal to the one that was written.

The decision, in order:
1. redaction did not pass (when the policy requires it) → reject;
2. any gated criterion below its ``reject_below`` line → reject;
3. weighted total Σ w·s / Σ w below the hold threshold → reject;
4. the pattern's budget already spent → reject as a duplicate (also for would-be holds:
   a reviewer's time is not spent on a pattern that has its fixtures);
5. total below the promote threshold → hold;
6. a gated criterion in its hold band (between ``reject_below`` and ``hold_below``) →
   hold: worth promoting, but a person should confirm it can be explained or taught;
7. the run succeeded, with none of the boundary-stress signals the policy names → hold;
8. the daily budget spent → hold, so that tomorrow's budget can still take it;
9. otherwise promote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from services.scoring.cost import operationally_costly
from services.scoring.criteria import (
    LABELS,
    enduring,
    missed_offline,
    observable,
    patterned,
    risk_bearing,
    teachable,
)
from services.scoring.numbers import plural, rounded
from services.scoring.policy import Gate, Policy
from shared.events import (
    CRITERIA,
    CriterionScore,
    Decision,
    StageStamp,
    TraceRedacted,
    TraceScored,
    advance,
)
from shared.features import started_at


@dataclass(frozen=True)
class BudgetState:
    promoted_for_pattern: int
    promoted_today: int


@dataclass(frozen=True)
class BudgetFacts:
    """Promotions other traces have spent, for a batch's patterns and days."""

    for_pattern: Mapping[str, int]
    on_day: Mapping[date, int]


@dataclass(frozen=True)
class Verdict:
    scores: dict[str, CriterionScore]
    total: float
    decision: Decision
    reason: str


# --- the decision ------------------------------------------------------------------


def criteria_scores(event: TraceRedacted, policy: Policy) -> dict[str, CriterionScore]:
    f, t, p = event.features, event.trace, event.pattern
    return {
        "patterned": patterned(p, policy),
        "risk_bearing": risk_bearing(f, t),
        "operationally_costly": operationally_costly(
            f, t.agent_name, policy, event.baseline, p.trend, event.trajectory
        ),
        "missed_offline": missed_offline(p, f),
        "observable": observable(t, f, event.complete),
        "teachable": teachable(t, f, policy, event.baseline, event.trajectory),
        "enduring": enduring(t, f, p, policy),
    }


def weighted_total(scores: dict[str, CriterionScore], policy: Policy) -> float:
    weights = policy.weights.as_dict()
    total_weight = sum(weights[name] for name in CRITERIA)
    return rounded(sum(weights[name] * scores[name].score for name in CRITERIA) / total_weight)


def _mention(name: str, cs: CriterionScore) -> str:
    return f"{LABELS[name]} {cs.score:.2f} — {cs.evidence.get('summary', '')}"


def _carrying(scores: dict[str, CriterionScore], policy: Policy, limit: int = 3) -> list[str]:
    weights = policy.weights.as_dict()
    ranked = sorted(CRITERIA, key=lambda n: (-weights[n] * scores[n].score, CRITERIA.index(n)))
    strong = [n for n in ranked if weights[n] > 0 and scores[n].score >= 0.5][:limit]
    return strong or ranked[:1]


def _weakest(scores: dict[str, CriterionScore], policy: Policy, limit: int = 2) -> list[str]:
    weights = policy.weights.as_dict()
    ranked = sorted(
        CRITERIA, key=lambda n: (-weights[n] * (1.0 - scores[n].score), CRITERIA.index(n))
    )
    return [n for n in ranked if weights[n] > 0 and scores[n].score < 0.5][:limit]


def _listing(names: list[str], scores: dict[str, CriterionScore]) -> str:
    return "; ".join(_mention(n, scores[n]) for n in names)


def _gate_miss(name: str, cs: CriterionScore, line: float) -> str:
    return f"{LABELS[name]} {cs.score:.2f} < {line:.2f} ({cs.evidence.get('summary', '')})"


def decide(
    scores: dict[str, CriterionScore],
    total: float,
    policy: Policy,
    budget: BudgetState,
    redaction_passed: bool,
    pattern_id: str,
    outcome: str = "unknown",
) -> tuple[Decision, str]:
    v, th = policy.version, policy.thresholds
    gates: dict[str, Gate] = policy.gates.by_criterion()
    carried = _listing(_carrying(scores, policy), scores)
    weakest = _listing(_weakest(scores, policy), scores)
    against = f" Against it: {weakest}." if weakest else ""

    if policy.gates.redaction_must_pass and not redaction_passed:
        return Decision.REJECT, (
            f"Rejected under policy {v}: redaction did not pass, so no part of this trace may"
            f" become a fixture (total {total:.2f} not considered)."
        )
    rejected = [n for n, g in gates.items() if scores[n].score < g.reject_below]
    if rejected:
        misses = "; ".join(_gate_miss(n, scores[n], gates[n].reject_below) for n in rejected)
        return Decision.REJECT, (
            f"Rejected under policy {v}: failed the hard gate{'s' if len(rejected) > 1 else ''}"
            f" {misses}. Total {total:.2f} for reference; it had for it: {carried}."
        )
    if total < th.hold:
        return Decision.REJECT, (
            f"Rejected ({total:.2f} < hold {th.hold:.2f} under policy {v}): not worth suite"
            f" space.{against} Best: {carried}."
        )
    k = policy.budgets.per_pattern
    if budget.promoted_for_pattern >= k:
        return Decision.REJECT, (
            f"Rejected as a duplicate ({total:.2f} under policy {v}): pattern {pattern_id}"
            f" already has {plural(budget.promoted_for_pattern, 'promoted trace')}, its budget"
            f" of {k} is spent. It had for it: {carried}."
        )
    if total < th.promote:
        return Decision.HOLD, (
            f"Held for review ({total:.2f}, between hold {th.hold:.2f} and promote"
            f" {th.promote:.2f} under policy {v}): for it — {carried}.{against}"
        )
    held = [n for n, g in gates.items() if scores[n].score < g.review_line]
    if held:
        misses = "; ".join(_gate_miss(n, scores[n], gates[n].review_line) for n in held)
        return Decision.HOLD, (
            f"Held for review ({total:.2f} ≥ {th.promote:.2f} under policy {v}, but close to a"
            f" gate: {misses}): a person should confirm it can be used. For it — {carried}."
        )
    boundary = set(scores["risk_bearing"].evidence.get("signals", {})) & set(
        policy.gates.success_promotable_with
    )
    if policy.gates.success_at_most_hold and outcome == "success" and not boundary:
        return Decision.HOLD, (
            f"Held for review ({total:.2f} ≥ {th.promote:.2f} under policy {v}, but the run"
            f" succeeded without boundary stress: whether a success is worth suite space is a"
            f" person's call). For it — {carried}."
        )
    daily = policy.budgets.daily
    if daily is not None and budget.promoted_today >= daily:
        return Decision.HOLD, (
            f"Held for review ({total:.2f} ≥ {th.promote:.2f} under policy {v}, but the daily"
            f" budget of {daily} promotions is spent): {carried}."
        )
    return Decision.PROMOTE, (
        f"Promoted ({total:.2f} ≥ {th.promote:.2f} under policy {v}): {carried}."
        + (f" Weakest: {weakest}." if weakest else "")
    )


def score(event: TraceRedacted, policy: Policy, budget: BudgetState) -> Verdict:
    scores = criteria_scores(event, policy)
    total = weighted_total(scores, policy)
    decision, reason = decide(
        scores,
        total,
        policy,
        budget,
        event.redaction.passed,
        event.pattern.pattern_id,
        outcome=event.features.outcome,
    )
    return Verdict(scores=scores, total=total, decision=decision, reason=reason)


def budget_day(event: TraceRedacted) -> date:
    """The day a trace spends the daily budget of: when it started, not when it was scored,
    so a replay charges the same days the live run did."""
    return started_at(event.trace).date()


def scored_event(
    event: TraceRedacted, policy: Policy, budget: BudgetState, stamp: StageStamp
) -> TraceScored:
    """The event the scoring stage and a replay both publish. Everything but the stamp is a
    function of (event, policy, budget), so a re-scored trace yields the same fixture body."""
    verdict = score(event, policy, budget)
    return advance(
        event,
        TraceScored,
        stamp,
        scores=verdict.scores,
        total=verdict.total,
        decision=verdict.decision,
        reason=verdict.reason,
        policy_version=policy.version,
    )
