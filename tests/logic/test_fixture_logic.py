"""Which typed fixtures a promoted trace yields, on literal inputs."""

from __future__ import annotations

import pytest

from services.fixture_writer.logic import (
    FixtureKind,
    build_fixtures,
    carrying_criteria,
    fixture_strings,
    privacy_checked,
)
from tests.support.builders import refund_trace, scored

pytestmark = pytest.mark.logic


def test_a_failed_side_effecting_call_yields_regression_tool_use_and_grader_fixtures() -> None:
    kinds = {d.kind for d in build_fixtures(scored(refund_trace()))}
    assert kinds == {
        FixtureKind.REGRESSION_CASE,
        FixtureKind.TOOL_USE_ASSERTION,
        FixtureKind.GRADER_EXAMPLE,
    }


def test_the_tool_use_assertion_forbids_the_call_that_went_wrong() -> None:
    drafts = {d.kind: d for d in build_fixtures(scored(refund_trace()))}
    assertion = drafts[FixtureKind.TOOL_USE_ASSERTION].body["tool_assertions"]
    assert assertion["expected_tools"] == ["lookup_order"]
    assert [c["tool"] for c in assertion["forbidden_calls"]] == ["issue_refund"]


def test_a_redelivered_promotion_builds_byte_identical_fixtures() -> None:
    first = build_fixtures(scored(refund_trace()))
    again = build_fixtures(scored(refund_trace()))
    assert [d.body_sha256 for d in first] == [d.body_sha256 for d in again]


def test_a_new_exemplar_or_policy_changes_the_body_digest() -> None:
    base = {d.kind: d.body_sha256 for d in build_fixtures(scored(refund_trace()))}
    other_trace = {
        d.kind: d.body_sha256 for d in build_fixtures(scored(refund_trace("u" * 32, amount=75)))
    }
    other_policy = {
        d.kind: d.body_sha256 for d in build_fixtures(scored(refund_trace(), policy_version="B"))
    }
    assert base[FixtureKind.REGRESSION_CASE] != other_trace[FixtureKind.REGRESSION_CASE]
    assert base[FixtureKind.REGRESSION_CASE] != other_policy[FixtureKind.REGRESSION_CASE]


def test_fixture_ids_are_one_per_pattern_and_kind() -> None:
    ids = [d.fixture_id for d in build_fixtures(scored(refund_trace(), pattern_id="p1-x"))]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("p1-x:") for i in ids)


def test_the_criteria_that_carried_the_decision_are_those_above_the_floor() -> None:
    assert carrying_criteria(scored(refund_trace())) == ("risk_bearing", "patterned")


def test_the_privacy_check_reads_every_string_of_a_fixture_body() -> None:
    strings = fixture_strings({"a": "x", "b": [{"c": "y"}, 3], "d": None})
    assert strings == ["x", "y"]


def test_only_drafts_the_privacy_check_flags_are_blocked_with_its_reasons() -> None:
    drafts = build_fixtures(scored(refund_trace()))
    grader = next(d for d in drafts if d.kind == FixtureKind.GRADER_EXAMPLE)
    marker = grader.body["rubric_reason"]

    def checker(texts: list[str]) -> list[str]:
        return ["EMAIL_ADDRESS found by presidio"] if marker in texts else []

    clean, blocked = privacy_checked(drafts, checker)
    assert [d.kind for d, _ in blocked] == [FixtureKind.GRADER_EXAMPLE]
    assert blocked[0][1] == ["EMAIL_ADDRESS found by presidio"]
    assert len(clean) == len(drafts) - 1


def test_a_clean_promotion_passes_the_privacy_check_whole() -> None:
    drafts = build_fixtures(scored(refund_trace()))
    assert privacy_checked(drafts, lambda texts: []) == (drafts, [])


def test_the_write_time_second_pass_blocks_fixtures_holding_a_planted_secret() -> None:
    from services.redaction.second_pass import find_leaks

    key = "AKIA" + "QZ7XW4P2LM9RT5KD"  # built here: a fake key of the AWS shape
    trace = refund_trace()
    root = trace.spans[0].model_copy(update={"input": f"use key {key} to refund"})
    leaky = trace.model_copy(update={"spans": (root, *trace.spans[1:])})
    clean, blocked = privacy_checked(build_fixtures(scored(leaky)), find_leaks)
    assert clean == []
    assert blocked and all(reasons for _, reasons in blocked)
    assert all(key not in reason for _, reasons in blocked for reason in reasons)
