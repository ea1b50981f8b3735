"""Replay's diff: what a re-scoring under a new policy changes, from literal decisions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from services.fixture_writer.logic import build_fixtures
from services.scoring.logic import BudgetState, budget_day, scored_event
from services.scoring.policy import STRICT_POLICY_PATH, load_policy
from services.scoring.replay_logic import (
    DecisionSummary,
    diff,
    latest_by_trace,
    summary_of_event,
    summary_of_record,
    to_json,
    to_markdown,
)
from shared.events import Decision, RedactionReport, StageStamp, TraceRedacted
from shared.features import derive_features
from tests.support.builders import T0, pattern_info, refund_trace, scored

pytestmark = pytest.mark.logic

A, B = "2026.11-a", "2026.11-strict"


def s(
    trace_id: str,
    decision: Decision,
    version: str = A,
    total: float = 0.7,
    pattern: str = "p1-x",
    reason: str = "because",
) -> DecisionSummary:
    return DecisionSummary(trace_id, pattern, decision, total, version, reason)


PROMOTE, HOLD, REJECT = Decision.PROMOTE, Decision.HOLD, Decision.REJECT


def test_each_transition_lands_in_its_category() -> None:
    before = {
        "t-up": s("t-up", HOLD),
        "t-down": s("t-down", PROMOTE),
        "t-rej": s("t-rej", PROMOTE),
        "t-same": s("t-same", PROMOTE),
        "t-still": s("t-still", REJECT),
        "t-side": s("t-side", HOLD),
    }
    after = {
        "t-up": s("t-up", PROMOTE, B),
        "t-down": s("t-down", HOLD, B),
        "t-rej": s("t-rej", REJECT, B),
        "t-same": s("t-same", PROMOTE, B),
        "t-still": s("t-still", REJECT, B),
        "t-side": s("t-side", REJECT, B),
    }
    d = diff(before, after, B)
    assert [c.trace_id for c in d.promoted] == ["t-up"]
    assert [c.trace_id for c in d.demoted] == ["t-down", "t-rej"]
    assert [c.trace_id for c in d.changed] == ["t-side"]
    assert [c.trace_id for c in d.unchanged] == ["t-same", "t-still"]
    assert d.counts == {"promoted": 1, "demoted": 2, "changed": 1, "unchanged": 2}
    assert d.policy_version == B


def test_a_trace_without_an_earlier_decision_is_promoted_or_changed() -> None:
    after = {"new-p": s("new-p", PROMOTE, B), "new-h": s("new-h", HOLD, B)}
    d = diff({}, after, B)
    assert [(c.trace_id, c.before) for c in d.promoted] == [("new-p", None)]
    assert [(c.trace_id, c.before) for c in d.changed] == [("new-h", None)]


def test_traces_that_were_not_replayed_are_not_part_of_the_diff() -> None:
    before = {"old": s("old", PROMOTE), "t": s("t", PROMOTE)}
    d = diff(before, {"t": s("t", PROMOTE, B)}, B)
    assert d.counts == {"promoted": 0, "demoted": 0, "changed": 0, "unchanged": 1}


def test_changes_carry_both_reasons_and_are_ordered_by_pattern_then_trace() -> None:
    before = {
        "b": s("b", PROMOTE, pattern="p2", reason="was good"),
        "a": s("a", PROMOTE, pattern="p2", reason="was fine"),
        "c": s("c", PROMOTE, pattern="p1", reason="was ok"),
    }
    after = {
        t: s(t, REJECT, B, pattern=v.pattern_id, reason=f"now {t} is a duplicate")
        for t, v in before.items()
    }
    d = diff(before, after, B)
    assert [(c.pattern_id, c.trace_id) for c in d.demoted] == [
        ("p1", "c"),
        ("p2", "a"),
        ("p2", "b"),
    ]
    first = d.demoted[0]
    assert first.before is not None and first.before.reason == "was ok"
    assert first.after.reason == "now c is a duplicate"


def test_latest_record_per_trace_wins() -> None:
    rows = [s("t", PROMOTE, A), s("u", HOLD, A), s("t", REJECT, B)]
    latest = latest_by_trace(rows)
    assert latest["t"].decision == REJECT and latest["t"].policy_version == B
    assert latest["u"].decision == HOLD


def test_summary_from_a_topic_record_matches_the_one_from_the_event() -> None:
    event = scored(refund_trace(), policy_version=A, pattern_id="p1-abc")
    record = json.loads(event.model_dump_json())
    assert summary_of_record(record) == summary_of_event(event)
    assert summary_of_event(event) == DecisionSummary(
        event.trace_id, "p1-abc", event.decision, event.total, A, event.reason
    )


def test_json_export_is_plain_json_with_every_category() -> None:
    d = diff({"t": s("t", PROMOTE)}, {"t": s("t", HOLD, B, total=0.61)}, B)
    doc = json.loads(json.dumps(to_json(d)))
    assert doc["policy_version"] == B
    assert doc["counts"] == {"promoted": 0, "demoted": 1, "changed": 0, "unchanged": 0}
    assert doc["demoted"] == [
        {
            "trace_id": "t",
            "pattern_id": "p1-x",
            "before": {
                "trace_id": "t",
                "pattern_id": "p1-x",
                "decision": "promote",
                "total": 0.7,
                "policy_version": A,
                "reason": "because",
            },
            "after": {
                "trace_id": "t",
                "pattern_id": "p1-x",
                "decision": "hold",
                "total": 0.61,
                "policy_version": B,
                "reason": "because",
            },
        }
    ]
    assert doc["promoted"] == doc["changed"] == doc["unchanged"] == []


def test_markdown_export_keeps_tables_intact_when_reasons_contain_pipes() -> None:
    d = diff({"t": s("t", PROMOTE)}, {"t": s("t", REJECT, B, total=0.3, reason="a | b\nc")}, B)
    md = to_markdown(d)
    assert md.startswith(f"# Replay under policy {B}\n")
    assert "## Demoted (1)" in md
    assert "## Newly promoted (0)\n\nNone." in md
    row = next(line for line in md.splitlines() if line.startswith("| `t`"))
    assert "a \\| b c" in row
    assert "promote 0.70 (2026.11-a)" in row and "reject 0.30 (2026.11-strict)" in row


def test_rescoring_the_same_event_publishes_the_same_fixture_bodies() -> None:
    """What makes a repeated real replay idempotent in the store: only the stage stamp's
    time differs between two scorings, and fixture bodies do not contain it."""
    trace = refund_trace()
    event = TraceRedacted(
        trace_id=trace.trace_id,
        trace=trace,
        features=derive_features(trace),
        pattern=pattern_info(occurrences=8),
        redaction=RedactionReport(),
    )
    policy = load_policy(STRICT_POLICY_PATH)
    budget = BudgetState(promoted_for_pattern=0, promoted_today=0)
    first = scored_event(event, policy, budget, StageStamp(stage="replay", version="0", at=T0))
    again = scored_event(
        event, policy, budget, StageStamp(stage="replay", version="0", at=T0 + timedelta(hours=1))
    )
    assert first.decision == Decision.PROMOTE and first.policy_version == policy.version
    assert first.stages[-1].stage == "replay"
    assert first.model_dump(exclude={"stages"}) == again.model_dump(exclude={"stages"})
    assert [d.body_sha256 for d in build_fixtures(first)] == [
        d.body_sha256 for d in build_fixtures(again)
    ]
    assert budget_day(event) == T0.date()
