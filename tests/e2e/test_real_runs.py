"""The committed slice of real agent runs (tools/corpus/real/data) through the real stack: grouping
and promotion floors against the runs' ground truth.

The slice's traces have trace ids and agent names of their own (``retail-support-agent``,
``wiki-research-agent``), so the figures read only their rows and messages out of the store
and topics the other end-to-end tests share.

The floors are the constants below; the evaluation on the full corpora (``make eval``,
EVALUATION.md) reports the same figures with the target floors.
"""

from __future__ import annotations

from typing import Any

import pytest

from promoter.supervisor import Endpoints
from tools.corpus.real.evaluation import item_from_document
from tools.corpus.real.metrics import Item, evaluate
from tools.corpus.real.slice import DATA_DIR, read_slice
from tools.corpus.real.stack import StackFacts, run_through

pytestmark = pytest.mark.e2e

# Floors, per corpus of the slice (tau2 and wiki alike), a few points under what the slice
# measured (tau2, the harder: failed-run precision 0.69 and recall 0.73, all-run precision
# 0.64, 0.8 of recurring failing tasks with one promoted pattern, fixtures 0.28 of
# promote-every-failure; wiki 1.0 throughout). Grouping on the live stack depends a little on
# how ingest's partitions interleave, so the margin is wider than a point or two.
MIN_FAILED_RUNS_PRECISION = 0.6  # pairwise, over failed runs: merged pairs sharing a lesson
MIN_FAILED_RUNS_RECALL = 0.6  # pairwise, over failed runs: same-lesson pairs merged
MIN_ALL_RUNS_PRECISION = 0.5  # pairwise, over all runs
MIN_ONE_PROMOTED_PATTERN_SHARE = 0.6  # recurring failing tasks with exactly one promoted pattern
MAX_SUCCESSES_PROMOTED = 0
# Fixtures / fixtures of promoting every failed run. The slice is made of recurring failures
# (per corpus 18 failed runs of 8 lessons), so its best case is 8/18 = 0.44; sent all at
# once, several runs of a lesson are scored before its coverage reaches dedupe (measured
# 0.56 here, 0.28 on a fresh stack), where the full corpora's floor is 0.5.
MAX_FIXTURES_VS_EVERY_FAILURE = 0.75
MAX_DEAD_LETTERED = 0  # runs the pipeline dead-lettered (a converted run must be readable)

WAIT_TIMEOUT_S = 240.0
CORPORA = ("tau2", "wiki")


@pytest.fixture(scope="module")
def sent(pipeline: Endpoints) -> tuple[list[Item], StackFacts]:
    committed = read_slice(DATA_DIR)
    items = [item_from_document(document, label) for document, label in committed]
    facts = run_through(
        pipeline,
        [document for document, _ in committed],
        [i.trace_id for i in items],
        timeout_s=WAIT_TIMEOUT_S,
    )
    assert facts.idle, "every consumer group caught up"
    return items, facts


@pytest.fixture(scope="module")
def figures(sent: tuple[list[Item], StackFacts]) -> dict[str, dict[str, Any]]:
    items, facts = sent
    corpus_of = {label["trace_id"]: label["corpus"] for _, label in read_slice(DATA_DIR)}
    return {
        corpus: evaluate([i for i in items if corpus_of[i.trace_id] == corpus], facts)
        for corpus in CORPORA
    }


def _pipeline(figures: dict[str, dict[str, Any]], corpus: str) -> dict[str, Any]:
    result: dict[str, Any] = figures[corpus]["methods"]["pipeline"]
    return result


def test_only_the_slice_is_read_and_every_run_reached_dedupe(
    sent: tuple[list[Item], StackFacts],
) -> None:
    items, facts = sent
    ours = {i.trace_id for i in items}
    assert set(facts.grouped) | set(facts.dead) == ours, "every run grouped or dead-lettered"
    assert set(facts.decided) <= ours and {f.source_trace_id for f in facts.fixtures} <= ours


@pytest.mark.parametrize("corpus", CORPORA)
def test_every_slice_run_is_accounted_for(figures: dict[str, dict[str, Any]], corpus: str) -> None:
    report = figures[corpus]
    dead = sum(report["dead_letters"]["attributed"].values())
    assert dead <= MAX_DEAD_LETTERED, report["dead_letters"]
    assert report["no_decision"]["total"] < report["runs"], report["no_decision"]
    assert "missing (never reached dedupe)" not in report["no_decision"]["reasons"]


@pytest.mark.parametrize("corpus", CORPORA)
def test_failed_runs_are_grouped_by_lesson(figures: dict[str, dict[str, Any]], corpus: str) -> None:
    failed = _pipeline(figures, corpus)["grouping_failed"]
    assert failed["precision"] is not None, "some failed runs were grouped together"
    assert failed["precision"] >= MIN_FAILED_RUNS_PRECISION, failed
    assert failed["recall"] >= MIN_FAILED_RUNS_RECALL, failed


@pytest.mark.parametrize("corpus", CORPORA)
def test_all_runs_are_grouped_without_merging_lessons(
    figures: dict[str, dict[str, Any]], corpus: str
) -> None:
    grouping = _pipeline(figures, corpus)["grouping_all"]
    assert grouping["precision"] is not None
    assert grouping["precision"] >= MIN_ALL_RUNS_PRECISION, grouping


@pytest.mark.parametrize("corpus", CORPORA)
def test_promotion_is_selective_and_never_of_a_success(
    figures: dict[str, dict[str, Any]], corpus: str
) -> None:
    pipeline = _pipeline(figures, corpus)
    assert pipeline["successes_promoted"] <= MAX_SUCCESSES_PROMOTED, pipeline
    assert pipeline["fixtures_vs_every_failure"] <= MAX_FIXTURES_VS_EVERY_FAILURE, pipeline
    share = pipeline["one_promoted_pattern"]["share"]
    assert share is not None and share >= MIN_ONE_PROMOTED_PATTERN_SHARE, pipeline[
        "one_promoted_pattern"
    ]
    if pipeline["promotions"]:
        assert pipeline["fixtures"] > 0, "promoted traces became fixtures"
