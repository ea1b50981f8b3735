"""Operations (issue 16): every stage's /metrics during a run, and /readyz across a database
outage, against the real broker and database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from promoter.lag import wait_for_idle
from promoter.supervisor import RECEIVER, STAGES, Endpoints, Stack
from shared import ops, topics
from tests.e2e.test_pipeline import produce
from tools.corpus.generate import generate

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
INPUTS = {
    "ingest": topics.RAW,
    "dedupe": topics.NORMALIZED,
    "redaction": topics.DEDUPED,
    "scoring": topics.REDACTED,
    "fixture_writer": topics.PROMOTED,
}


def until(what: str, condition: Callable[[], object], timeout_s: float = 120.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s}s: {what}")


def stage_urls(state_dir: Path) -> dict[str, str]:
    """The ops URL of each running stage (one instance each in this session)."""
    found = ops.endpoints(state_dir)
    return {name.rsplit("-", 1)[0]: url for name, url in found.items()}


def ready(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200


def scrape(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def lags(samples: Samples, topic: str) -> dict[str, float]:
    return {
        dict(ls)["partition"]: v
        for (n, ls), v in samples.items()
        if n == "promoter_consumer_lag" and dict(ls)["topic"] == topic
    }


def test_every_stage_serves_metrics_that_move_with_a_run(
    pipeline: Endpoints, state_dir: Path
) -> None:
    wanted = {*STAGES, RECEIVER}
    urls = until(
        "every stage serves its ops endpoints",
        lambda: wanted <= set(stage_urls(state_dir)) and stage_urls(state_dir),
    )
    assert isinstance(urls, dict)
    for name in wanted:
        assert httpx.get(f"{urls[name]}/healthz", timeout=10).status_code == 200
        until(f"{name} ready", ready(urls[name]))
    before = {name: scrape(urls[name]) for name in wanted}

    # A run: fresh traces, one undecodable record for ingest, one poison event for dedupe,
    # and one receiver request without a key.
    traces = [labelled.trace for labelled in generate(seed=97)[:20]]
    records = [(t.trace_id.encode(), t.model_dump_json().encode()) for t in traces]
    bootstrap = pipeline.kafka_bootstrap_servers
    asyncio.run(produce(bootstrap, topics.RAW, [*records, (b"ops-poison", b"\x00 not a trace")]))
    asyncio.run(produce(bootstrap, topics.NORMALIZED, [(b"ops-poison", b"\x01 not an event")]))
    assert pipeline.ingest_http is not None
    refused = httpx.post(pipeline.ingest_http, content=b"{}", timeout=10)
    assert refused.status_code == 401

    # The lag gauges read zero once the run drained (above zero: the next test).
    assert wait_for_idle(bootstrap, 300), "the pipeline drained"
    after = {name: scrape(urls[name]) for name in wanted}

    for stage in STAGES:
        partitions = lags(after[stage], INPUTS[stage])
        assert partitions, f"{stage} reports lag for its assigned partitions"
        assert set(partitions.values()) == {0}, f"{stage} drained: {partitions}"

    def delta(name: str, metric: str, **labels: str) -> float:
        return total(after[name], metric, **labels) - total(before[name], metric, **labels)

    # Consumed and produced, from FastStream's middleware.
    assert delta("ingest", "faststream_received_messages_total", handler=topics.RAW) >= 21
    published = delta(
        "ingest",
        "promoter_published_records_total",
        topic=topics.NORMALIZED,
        outcome="acknowledged",
    )
    assert published >= 1, "the stage counts what its producer acknowledged"
    # Dead letters by stage and error class.
    assert delta("ingest", "promoter_dead_letters_total", stage="ingest") == 1
    assert delta("dedupe", "promoter_dead_letters_total", stage="dedupe") == 1
    assert delta("dedupe", "promoter_dead_letters_total", error_class="ValidationError") == 1
    # Decisions: one per trace scoring consumed, each with its outcome and criterion.
    consumed = delta("scoring", "faststream_received_messages_total", handler=topics.REDACTED)
    decided = delta("scoring", "promoter_decisions_total")
    assert decided >= 1
    assert decided == consumed - delta("scoring", "promoter_dead_letters_total")
    decision_labels = {
        dict(ls)["decision"]
        for (n, ls), _ in after["scoring"].items()
        if n == "promoter_decisions_total"
    }
    assert decision_labels <= {"promote", "hold", "reject"}
    # The receiver counts its answers by status; no label carries content.
    assert delta(RECEIVER, "promoter_receiver_requests_total", status="401") == 1
    assert delta("redaction", "faststream_received_messages_total") >= 1
    assert delta("ingest", "promoter_batch_size_count", batch="flush") >= 1


def test_the_lag_gauge_counts_what_a_stage_holds_while_its_database_is_away(
    pipeline: Endpoints, stack: Stack, state_dir: Path
) -> None:
    if not pipeline.postgres_managed:
        pytest.skip("the database is not ours to stop")
    url = until("dedupe serves ops", lambda: stage_urls(state_dir).get("dedupe"))
    assert isinstance(url, str)
    until("dedupe ready", ready(url))
    bootstrap = pipeline.kafka_bootstrap_servers
    assert wait_for_idle(bootstrap, 300), "nothing in work before"
    traces = [labelled.trace for labelled in generate(seed=98)[:5]]
    stack.postgres.stop()
    try:
        # Dedupe cannot record them, so it retries the batch in place: those records are
        # fetched, in work, and not yet done, however fast the stage is otherwise.
        asyncio.run(
            produce(
                bootstrap,
                topics.RAW,
                [(t.trace_id.encode(), t.model_dump_json().encode()) for t in traces],
            )
        )
        held = until(
            "dedupe's lag shows the held records",
            lambda: sum(lags(scrape(url), topics.NORMALIZED).values()),
            timeout_s=120,
        )
        assert isinstance(held, float) and held >= 1
    finally:
        stack.postgres.start()
    assert wait_for_idle(bootstrap, 300), "drained once the database is back"
    assert set(lags(scrape(url), topics.NORMALIZED).values()) == {0}


def test_readyz_turns_unready_while_the_database_is_down(
    pipeline: Endpoints, stack: Stack, state_dir: Path
) -> None:
    if not pipeline.postgres_managed:
        pytest.skip("the database is not ours to stop")
    url = until("scoring serves ops", lambda: stage_urls(state_dir).get("scoring"))
    until("scoring ready", lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200)
    stack.postgres.stop()
    try:
        answer = until(
            "scoring unready",
            lambda: (r := httpx.get(f"{url}/readyz", timeout=10)).status_code == 503 and r,
            timeout_s=60,
        )
        assert isinstance(answer, httpx.Response)
        assert "database" in answer.text
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200, "alive all along"
    finally:
        stack.postgres.start()
    until("scoring ready again", lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200)
