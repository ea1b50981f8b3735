"""Which typed fixtures a promoted trace yields, on literal inputs."""

from __future__ import annotations

import pytest

from services.fixture_writer.logic import (
    FixtureKind,
    build_fixtures,
    carrying_criteria,
    fixture_strings,
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
    other_trace = {d.kind: d.body_sha256
                   for d in build_fixtures(scored(refund_trace("u" * 32, amount=75)))}
    other_policy = {d.kind: d.body_sha256
                    for d in build_fixtures(scored(refund_trace(), policy_version="B"))}
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
