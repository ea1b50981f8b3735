"""The evaluation script's metric: precision and recall of "should be promoted"."""

from __future__ import annotations

import pytest

from tools.scripts.eval_promotion import Outcome, Rates, lesson_lists, promotion_metrics

pytestmark = pytest.mark.logic


def o(lesson: str, should: bool, promoted: bool, family: str = "f") -> Outcome:
    return Outcome(lesson_id=lesson, family=family, should_promote=should, promoted=promoted)


CORPUS = [
    # A lesson protected by one of its three traces: 1 TP and 2 FN per trace, 1 TP per lesson.
    o("refund", True, True),
    o("refund", True, False),
    o("refund", True, False),
    # A lesson never promoted: FN at both levels.
    o("handoff", True, False),
    o("handoff", True, False),
    # Noise promoted once: FP at both levels.
    o("noise-1", False, True),
    # A transient outage correctly left alone: TN at both levels.
    o("outage", False, False),
    o("outage", False, False),
    # An exact duplicate of a refund trace, labelled not-to-promote and not promoted: a TN
    # per trace, while its lesson stays a should-promote lesson.
    o("refund", False, False, family="exact_duplicates"),
]


def test_per_trace_counts_every_corpus_item() -> None:
    assert promotion_metrics(CORPUS).per_trace == Rates(
        true_positives=1,
        false_positives=1,
        false_negatives=4,
        true_negatives=3,
        precision=0.5,
        recall=0.2,
    )


def test_per_lesson_one_promoted_trace_protects_the_lesson() -> None:
    assert promotion_metrics(CORPUS).per_lesson == Rates(
        true_positives=1,
        false_positives=1,
        false_negatives=1,
        true_negatives=1,
        precision=0.5,
        recall=0.5,
    )


def test_undefined_rates_are_none_not_zero() -> None:
    nothing_promoted = promotion_metrics([o("a", True, False), o("b", False, False)])
    assert nothing_promoted.per_trace.precision is None
    assert nothing_promoted.per_trace.recall == 0.0
    nothing_expected = promotion_metrics([o("a", False, False)])
    assert nothing_expected.per_lesson.recall is None
    assert promotion_metrics([]).per_trace == Rates(0, 0, 0, 0, None, None)


def test_rates_are_rounded_for_the_report() -> None:
    rates = promotion_metrics([o("a", True, True), o("b", True, False), o("c", True, False)])
    assert rates.per_lesson.recall == 0.3333


def test_lesson_lists_name_the_wrongly_protected_and_the_missed() -> None:
    assert lesson_lists(CORPUS) == {"promoted_but_should_not": ["noise-1"], "missed": ["handoff"]}
