"""Operations: each stage's Prometheus metrics, /healthz and /readyz (README "Operations").

Every stage process serves, on its own port (``PROMOTE_METRICS_PORT``; 0 picks a free one):

- ``/metrics``: FastStream's consumed/produced/latency metrics (``faststream_*``, from
  ``KafkaPrometheusMiddleware`` wired in ``shared.kafka.make_broker``) and the project's own
  (``promoter_*`` below);
- ``/healthz``: the process is alive (its event loop answers);
- ``/readyz``: the broker answers, every subscriber has its partitions assigned, and the
  database (for stages that keep state) accepts a query; 503 with the failing checks else.

No label carries payload content: labels are stage names, topics, partition numbers, error
class names, decision outcomes, criterion names, entity types and HTTP status codes.

Each server records its address in ``<state_dir>/ops/<name>-<pid>.json`` so that `promote
top` and the tests find every running stage's endpoint.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PORT_ENV = "PROMOTE_METRICS_PORT"
HOST_ENV = "PROMOTE_METRICS_HOST"
OPS_DIR = "ops"
READY_CHECK_TIMEOUT_S = 2.0

DEAD_LETTERS = Counter(
    "promoter_dead_letters",
    "Dead letters published, by stage and error class.",
    ["stage", "error_class"],
)
BATCH_SIZE = Histogram(
    "promoter_batch_size",
    "Items handled together: traces released by one ingest flush, traces in one receiver request.",
    ["stage", "batch"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
DECISIONS = Counter(
    "promoter_decisions",
    "Scoring decisions, by outcome and by the criterion that carried the most weight.",
    ["decision", "criterion"],
)
REDACTIONS = Counter(
    "promoter_redactions",
    "Values replaced by a placeholder, by entity type.",
    ["entity_type"],
)
FIXTURES = Counter(
    "promoter_fixture_changes",
    "Fixture store changes: written (new), versioned (a new body), restored, retired, "
    "reverted, blocked (by the write-time privacy check).",
    ["change"],
)
INGEST_BUFFERED = Gauge(
    "promoter_ingest_buffered_traces",
    "Traces the ingest assembly holds: waiting for their quiet period, or for their "
    "publish to be acknowledged.",
)
PUBLISHED = Counter(
    "promoter_published_records",
    "Records a stage handed to its producer, by topic and outcome (acknowledged, failed).",
    ["topic", "outcome"],
)
RECEIVER_REQUESTS = Counter(
    "promoter_receiver_requests",
    "OTLP/HTTP receiver requests, by response status.",
    ["status"],
)


def published(counts: collections.Counter[tuple[str, str]]) -> None:
    for (topic, outcome), n in counts.items():
        PUBLISHED.labels(topic, outcome).inc(n)


def dead_lettered(stage: str, error_class: str) -> None:
    DEAD_LETTERS.labels(stage, error_class).inc()


def decided(decision: str, scores: Mapping[str, Any], weights: Mapping[str, float]) -> None:
    """``scores`` maps criterion names to objects with a ``score``."""
    criterion = carrying_criterion(scores, weights)
    DECISIONS.labels(decision, criterion).inc()


def carrying_criterion(scores: Mapping[str, Any], weights: Mapping[str, float]) -> str:
    """The criterion whose weighted score contributed most to the total."""
    if not scores:
        return "none"
    return max(scores, key=lambda name: (weights.get(name, 1.0) * scores[name].score, name))


def count_redactions(counts: Mapping[str, int]) -> None:
    for entity_type, count in counts.items():
        if count > 0:
            REDACTIONS.labels(entity_type).inc(count)


def fixture_change(change: str, n: int = 1) -> None:
    if n > 0:
        FIXTURES.labels(change).inc(n)


# --- consumer lag -------------------------------------------------------------------------


# Records a stage has fetched and is still working on, per (stage, topic, partition): a
# batch is fetched whole, so the consumer's position alone would show no lag while the
# batch is being processed and its offsets are not yet committed.
IN_FLIGHT: collections.Counter[tuple[str, str, int]] = collections.Counter()


@contextmanager
def in_flight(stage: str, records: Iterable[Any]) -> Iterator[None]:
    counts = collections.Counter((stage, r.topic, r.partition) for r in records)
    IN_FLIGHT.update(counts)
    try:
        yield
    finally:
        IN_FLIGHT.subtract(counts)
        for key in counts:
            if IN_FLIGHT[key] <= 0:
                del IN_FLIGHT[key]


class LagCollector(Collector):
    """``promoter_consumer_lag{stage,topic,partition}``: records between each assigned
    partition's high watermark (from the last fetch) and the consumer's position, plus the
    fetched records still in work; read at scrape time from the stage's own consumers (no
    request to the broker)."""

    def __init__(self) -> None:
        self.sources: list[tuple[str, Callable[[], Iterable[Any]]]] = []

    def add(self, stage: str, consumers: Callable[[], Iterable[Any]]) -> None:
        self.sources.append((stage, consumers))

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "promoter_consumer_lag",
            "Records not yet processed, per assigned partition"
            " (high watermark - position + records in work).",
            labels=["stage", "topic", "partition"],
        )
        for stage, consumers in self.sources:
            for consumer in consumers():
                for (topic, partition), lag in partition_lags(consumer).items():
                    working = IN_FLIGHT.get((stage, topic, partition), 0)
                    family.add_metric([stage, topic, str(partition)], lag + working)
        yield family


def partition_lags(consumer: Any) -> dict[tuple[str, int], int]:
    """Lag per assigned partition of an aiokafka consumer, from its in-memory state."""
    lags: dict[tuple[str, int], int] = {}
    try:
        assignment = consumer._subscription.subscription.assignment
        if assignment is None:
            return lags
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            state = assignment.state_value(tp)
            if highwater is None or state is None or not state.has_valid_position:
                continue
            lags[(tp.topic, tp.partition)] = max(0, highwater - state.position)
    except (AttributeError, KeyError, TypeError):
        return lags
    return lags


LAG = LagCollector()
REGISTRY.register(LAG)


# --- the HTTP server ----------------------------------------------------------------------

Check = Callable[[], Awaitable[str | None]]  # None when fine, else why not


class OpsServer:
    """A minimal HTTP/1.1 server for /metrics, /healthz and /readyz, in the stage's loop."""

    def __init__(self, name: str, checks: list[Check]) -> None:
        self.name = name
        self.checks = checks
        self.server: asyncio.Server | None = None
        self.port = 0
        self.record: Path | None = None

    async def start(self, host: str, port: int, state_dir: Path | None) -> None:
        self.server = await asyncio.start_server(self._serve, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        if state_dir is not None:
            folder = state_dir / OPS_DIR
            folder.mkdir(parents=True, exist_ok=True)
            self.record = folder / f"{self.name}-{os.getpid()}.json"
            url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"
            self.record.write_text(json.dumps({"stage": self.name, "pid": os.getpid(), "url": url}))

    async def stop(self) -> None:
        if self.record is not None:
            self.record.unlink(missing_ok=True)
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def readiness(self) -> list[str]:
        async def run(check: Check) -> str | None:
            try:
                return await asyncio.wait_for(check(), READY_CHECK_TIMEOUT_S)
            except TimeoutError:
                return f"{getattr(check, '__name__', 'check')}: timed out"
            except Exception as error:
                return f"{getattr(check, '__name__', 'check')}: {type(error).__name__}"

        results = await asyncio.gather(*(run(c) for c in self.checks))
        return [r for r in results if r]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode("ascii", "replace").split("?")[0]
            status, content_type, body = await self.respond(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except IndexError:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def respond(self, path: str) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            failing = await self.readiness()
            if failing:
                return "503 Service Unavailable", "text/plain", ("\n".join(failing) + "\n").encode()
            return "200 OK", "text/plain", b"ready\n"
        return "404 Not Found", "text/plain", b"not found\n"


def broker_checks(broker: Any) -> list[Check]:
    """The broker answers, and every subscriber of the stage has its partitions."""

    async def kafka() -> str | None:
        return (
            None if await broker.ping(timeout=READY_CHECK_TIMEOUT_S - 0.2) else "kafka: no answer"
        )

    async def assignment() -> str | None:
        missing = [
            ",".join(getattr(s, "topics", None) or ["?"])
            for s in broker.subscribers
            if getattr(s, "consumer", None) is None or not s.consumer.assignment()
        ]
        return f"assignment: none yet for {'; '.join(missing)}" if missing else None

    return [kafka, assignment]


def database_check(dsn: Callable[[], str]) -> Check:
    """A fresh connection and ``SELECT 1``: the database is reachable right now (the stage's
    own pool would wait for it; readiness must say it is not there)."""

    async def database() -> str | None:
        import asyncpg

        conn = await asyncpg.connect(dsn(), timeout=READY_CHECK_TIMEOUT_S - 0.2)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close(timeout=0.5)
        return None

    return database


def subscriber_consumers(broker: Any) -> Callable[[], list[Any]]:
    return lambda: [s.consumer for s in broker.subscribers if getattr(s, "consumer", None)]


async def start_server(name: str, checks: list[Check], port: int | None = None) -> OpsServer:
    from shared.settings import get_settings

    settings = get_settings()
    chosen = int(os.environ.get(PORT_ENV, "0")) if port is None else port
    server = OpsServer(name, checks)
    await server.start(os.environ.get(HOST_ENV, "127.0.0.1"), chosen, settings.state_dir)
    return server


def settle_heap(gen0_threshold: int) -> None:
    """Once the stage has started: what it allocated so far (modules, compiled patterns,
    word lists, pools) is set aside from garbage collection, and young collections run
    every ``gen0_threshold`` allocations instead of 700. A stage allocates a few hundred
    objects per event it parses, and the collector's passes over the batch in hand and
    the startup heap cost more CPU than the parsing itself (measured in BENCHMARKS.md).
    Reference counting still frees everything that is not in a cycle at once."""
    gc.collect()
    gc.freeze()
    if gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)


def instrument(app: Any, broker: Any, name: str, *, database: bool) -> None:
    """Serves the stage's ops endpoints for the whole life of the FastStream ``app``: from
    before its lifespan (so /healthz answers while the stage waits for its database) to
    after its shutdown."""
    from shared.settings import get_settings

    LAG.add(name, subscriber_consumers(broker))
    checks = broker_checks(broker)
    if database:
        checks.append(database_check(lambda: get_settings().dsn()))
    original = app.lifespan_context

    @asynccontextmanager
    async def lifespan(*args: Any, **kwargs: Any) -> AsyncIterator[None]:
        server = await start_server(name, checks)
        try:
            async with original(*args, **kwargs):
                settle_heap(get_settings().stage_gc_threshold)
                yield
        finally:
            await server.stop()

    app.lifespan_context = lifespan


def endpoints(state_dir: Path) -> dict[str, str]:
    """Running stages' ops URLs by record name (``<stage>-<pid>``), dead processes skipped."""
    found: dict[str, str] = {}
    folder = state_dir / OPS_DIR
    if not folder.exists():
        return found
    for path in sorted(folder.glob("*.json")):
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(path.read_text())
            if _alive(int(data["pid"])):
                found[path.stem] = data["url"]
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the HTTP apps (OTLP receiver, review web app) ------------------------------------------


def instrument_starlette(app: Any, name: str, checks: list[Check]) -> None:
    """The same ops server, on its own port, for the life of a Starlette app."""
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(instance: Any) -> AsyncIterator[Any]:
        server = await start_server(name, checks)
        try:
            async with original(instance) as state:
                yield state
        finally:
            await server.stop()

    app.router.lifespan_context = lifespan


class CountStatuses:
    """ASGI middleware: ``promoter_receiver_requests_total{status}`` for every HTTP request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting(message: Any) -> None:
            if message["type"] == "http.response.start":
                RECEIVER_REQUESTS.labels(str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting)
