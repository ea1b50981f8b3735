"""N scoring instances make the same decisions as one.

Three scoring processes share the scoring consumer group (one per partition of
traces.redacted). The corpus is put on traces.redacted directly, as dedupe and redaction
would have produced it, under pattern and trace ids of this run only, so that no other
test's promotions count against these patterns' budgets and every recurring pattern
reaches its budget here. The reference is one consumer: the pure scoring step over the same
events in the same order, with an in-memory budget."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from promoter.lag import wait_for_idle
from promoter.supervisor import Endpoints, Stack
from services.dedupe.store import InMemoryPatternStore
from services.scoring import logic
from services.scoring.policy import DEFAULT_POLICY_PATH, load_policy
from services.scoring.store import InMemoryBudgetStore
from shared import topics
from shared.events import Decision, TraceRedacted
from shared.kafka import read_topic
from tests.support.groups import wait_for_group
from tools.corpus.generate import generate
from tools.scripts.eval_promotion import upstream

pytestmark = pytest.mark.e2e

SEED = 37  # no other test uses this corpus
EXTRA_INSTANCES = (1, 2)


async def events_of_this_run(nonce: str) -> list[TraceRedacted]:
    patterns = InMemoryPatternStore()
    events = []
    for item in generate(seed=SEED):
        trace = item.trace.model_copy(update={"trace_id": item.trace.trace_id[:24] + nonce})
        event = await upstream(trace, patterns)
        if isinstance(event, str):
            continue  # an exact duplicate, dropped by dedupe
        pattern = event.pattern.model_copy(
            update={"pattern_id": f"{event.pattern.pattern_id}-{nonce}"}
        )
        events.append(event.model_copy(update={"pattern": pattern}))
    return events


async def one_instance(events: list[TraceRedacted]) -> dict[str, tuple[Decision, str]]:
    policy = load_policy(DEFAULT_POLICY_PATH)
    store = InMemoryBudgetStore()
    decided = {}
    for event in events:
        day = logic.budget_day(event)
        pattern_id = event.pattern.pattern_id
        budget = await store.budget(
            event.trace_id, pattern_id, policy.version, day, count_today=policy.budgets.counts_days
        )
        out = logic.scored_event(event, policy, budget, event.stages[-1])
        if out.decision == Decision.PROMOTE:
            await store.record_promotion(event.trace_id, pattern_id, policy.version, day)
        decided[event.trace_id] = (out.decision, out.reason)
    return decided


async def publish(bootstrap: str, events: list[TraceRedacted]) -> set[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        partitions = set()
        for event in events:
            meta = await producer.send_and_wait(
                topics.REDACTED,
                event.model_dump_json().encode(),
                key=event.pattern.pattern_id.encode(),
            )
            partitions.add(meta.partition)
        return partitions
    finally:
        await producer.stop()


def test_three_scoring_instances_decide_exactly_what_one_does(
    stack: Stack, pipeline: Endpoints
) -> None:
    bootstrap = pipeline.kafka_bootstrap_servers
    group = topics.consumer_group("scoring")
    nonce = secrets.token_hex(4)
    events = asyncio.run(events_of_this_run(nonce))
    expected = asyncio.run(one_instance(events))
    assert {d for d, _ in expected.values()} >= {Decision.PROMOTE, Decision.REJECT}
    budget_spent = [r for _, r in expected.values() if "budget" in r]
    assert budget_spent, "some patterns reach their budget: the case where instances could differ"

    try:
        for instance in EXTRA_INSTANCES:
            stack.start_stage("scoring", pipeline, instance=instance)
        wait_for_group(bootstrap, group, members=1 + len(EXTRA_INSTANCES))
        partitions = asyncio.run(publish(bootstrap, events))
        assert len(partitions) > 1, "the events are spread over several instances' partitions"
        assert wait_for_idle(bootstrap, timeout_s=300)
    finally:
        for instance in EXTRA_INSTANCES:
            stack.stop_stage(f"scoring.{instance}")
        wait_for_group(bootstrap, group, members=1)

    latest: dict[str, dict[str, Any]] = {}
    for value in asyncio.run(read_topic(bootstrap, topics.SCORED)):
        doc = json.loads(value)
        if doc["trace_id"] in expected:
            latest[doc["trace_id"]] = doc
    decided = {t: (Decision(d["decision"]), d["reason"]) for t, d in latest.items()}
    assert decided == expected
