"""End to end, on the real Kafka broker and the real PostgreSQL server, with every stage
running as its own process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from promoter.lag import wait_for_idle
from promoter.supervisor import Endpoints
from services.ingest.logic import normalize, partition_key
from shared import topics
from shared.events import StageStamp
from shared.kafka import group_lag, read_topic
from tools.corpus.files import write_demo_files
from tools.corpus.generate import generate

pytestmark = pytest.mark.e2e

PROMOTE = [sys.executable, "-m", "promoter"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROMOTE, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


async def fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def test_traces_sent_with_promote_send_reach_the_fixture_store(
    pipeline: Endpoints, cli_env: dict[str, str], tmp_path: Path
) -> None:
    files = write_demo_files(tmp_path / "corpus", seed=11)
    labels = [json.loads(line) for line in (tmp_path / "corpus" / "labels.jsonl").open()]
    sent = run_cli("send", *map(str, files), env=cli_env)
    assert sent.returncode == 0, sent.stderr
    assert "sent" in sent.stdout

    waited = run_cli("wait", "--timeout", "300", env=cli_env)
    assert waited.returncode == 0, waited.stdout + waited.stderr

    sent_ids = {label["trace_id"] for label in labels}
    seen = asyncio.run(fetch(pipeline.database_url, "SELECT trace_id FROM dedupe_traces"))
    assert sent_ids <= {r["trace_id"] for r in seen}, "every sent trace passed ingest and dedupe"

    scored = [
        json.loads(v)
        for v in asyncio.run(read_topic(pipeline.kafka_bootstrap_servers, topics.SCORED))
    ]
    mine = [d for d in scored if d["trace_id"] in sent_ids]
    chain = {s["stage"] for d in mine for s in d["stages"]}
    assert {"ingest", "dedupe", "redaction", "scoring"} <= chain
    promoted = {d["trace_id"] for d in mine if d["decision"] == "promote"}
    assert promoted, "the corpus holds failures worth promoting"

    # The store is shared with the other end-to-end tests: look at this corpus's rows.
    fixtures = asyncio.run(
        fetch(
            pipeline.database_url,
            """SELECT v.source_trace_id, f.kind
               FROM fixture_versions v JOIN fixtures f USING (fixture_id)
               WHERE v.source_trace_id = ANY($1::text[])""",
            list(sent_ids),
        )
    )
    assert fixtures, "promoted traces became fixtures in PostgreSQL"
    assert {r["source_trace_id"] for r in fixtures} <= promoted, "only promoted traces"

    listed = run_cli("fixtures", "--json", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    stored = asyncio.run(fetch(pipeline.database_url, "SELECT fixture_id FROM fixtures"))
    assert sorted(f["fixture_id"] for f in json.loads(listed.stdout)) == sorted(
        r["fixture_id"] for r in stored
    )


def test_a_poison_message_is_dead_lettered_once_and_the_stage_keeps_processing(
    pipeline: Endpoints,
) -> None:
    poison = b"\x00\x01 this is not a normalized trace"
    healthy = generate(seed=23)[0].trace
    event = normalize(
        [healthy], StageStamp(stage="test", version="0", at=healthy.spans[0].start_time)
    )[0]
    asyncio.run(
        produce(
            pipeline.kafka_bootstrap_servers,
            topics.NORMALIZED,
            [
                (b"poison", poison),
                (partition_key(event).encode(), event.model_dump_json().encode()),
            ],
        )
    )
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=120)

    letters = [
        json.loads(v) for v in asyncio.run(read_topic(pipeline.kafka_bootstrap_servers, topics.DLQ))
    ]
    mine = [d for d in letters if d["payload_sha256"] == hashlib.sha256(poison).hexdigest()]
    assert len(mine) == 1, "dead-lettered exactly once, never looping"
    assert mine[0]["stage"] == "dedupe"
    assert mine[0]["source_topic"] == topics.NORMALIZED
    assert mine[0]["error_class"] == "ValidationError"

    processed = asyncio.run(
        fetch(
            pipeline.database_url,
            "SELECT 1 FROM dedupe_traces WHERE trace_id = $1",
            healthy.trace_id,
        )
    )
    assert processed, "the message after the poison one was processed"
    lag = asyncio.run(
        group_lag(
            pipeline.kafka_bootstrap_servers, topics.consumer_group("dedupe"), [topics.NORMALIZED]
        )
    )
    assert lag == {topics.NORMALIZED: 0}, "the poison message was acknowledged"
