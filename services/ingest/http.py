"""The OTLP/HTTP receiver: POST /v1/traces → traces.raw, one message per trace id.

A second shell of the ingest stage (run with `uvicorn services.ingest.http:app`). The
request is decoded by the same core as the Kafka path, so a body is refused here (4xx and
a dead letter) for exactly the reasons ingest would refuse it. Each trace goes to
traces.raw as canonical native JSON — raw attributes kept — keyed by its trace id, so all
spans of a trace meet on one partition and one ingest instance.

Back-pressure (issue 13): at most PROMOTE_INGEST_HTTP_MAX_CONCURRENCY requests are decoded
and sent at once, more get 429 with Retry-After; decoding runs in a worker thread, never
on the event loop; a request with more than PROMOTE_INGEST_HTTP_MAX_SPANS spans gets 413;
attribute strings over PROMOTE_INGEST_HTTP_MAX_ATTRIBUTE_BYTES are cut (marked); sends are
queued one after the other (the producer batches them) and awaited together under
PROMOTE_INGEST_HTTP_SEND_TIMEOUT_S: a slow or unreachable Kafka answers 503 with
Retry-After, which OTLP exporters retry, instead of a 500 they may drop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.ingest.decode import InvalidPayload, decode_payload
from services.ingest.logic import TRUNCATION_MARKER, authorized, response_media_type
from shared import topics
from shared.errors import is_transient, retry_transient
from shared.events import Trace
from shared.kafka import make_producer
from shared.log import configure_logging
from shared.ops import BATCH_SIZE, CountStatuses, dead_lettered, instrument_starlette
from shared.settings import get_settings
from shared.stage import dead_letter_of, to_bytes

settings = get_settings()
logger = configure_logging("ingest_http", settings.log_level)
state: dict[str, AIOKafkaProducer] = {}
in_flight = asyncio.Semaphore(settings.ingest_http_max_concurrency)


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    if not settings.ingest_api_key:
        raise RuntimeError("PROMOTE_INGEST_API_KEY is not set: the receiver never runs open")
    producer = make_producer(settings, "ingest_http")
    # The receiver listens at once and answers 503 until Kafka is reachable: started (or
    # restarted) while the broker is away, it must not exit (it would never come back).
    connecting = asyncio.create_task(connect(producer))
    try:
        yield
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        state.pop("producer", None)
        await producer.stop()


async def connect(producer: AIOKafkaProducer) -> None:
    await retry_transient("ingest_http kafka start", producer.start, max_delay_s=None)
    state["producer"] = producer


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds the limit (never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class Unavailable(Exception):
    """Kafka is slow or away: the client is told to come back later."""


def busy(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": status, "message": message},
        status_code=status,
        headers={"Retry-After": str(settings.ingest_http_retry_after_s)},
    )


async def refuse(status: int, reason: str, message: str, body: bytes) -> JSONResponse:
    letter = dead_letter_of("ingest_http", body, reason, message, source_topic="http:/v1/traces")
    producer = state.get("producer")
    if producer is None:
        return busy(503, "the dead-letter queue is not reachable yet; retry later")
    try:
        await asyncio.wait_for(
            producer.send_and_wait(
                topics.DLQ,
                to_bytes(letter),
                key=letter.payload_sha256.encode(),
                headers=[("content-type", b"application/json")],
            ),
            settings.ingest_http_send_timeout_s,
        )
    except Exception as error:
        if is_transient(error):
            # The refusal must be recorded before it is answered; the client retries.
            return busy(503, "the dead-letter queue is unavailable; retry later")
        raise
    dead_lettered("ingest_http", reason)
    logger.warning("refused", extra={"status": status, "reason": reason})
    return JSONResponse({"code": status, "message": f"{reason}: {message}"}, status_code=status)


def _cut(value: object, limit: int) -> object:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + TRUNCATION_MARKER
    if isinstance(value, dict):
        return {k: _cut(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v, limit) for v in value]
    return value


def cap_attributes(trace: Trace, limit: int) -> Trace:
    """Attribute strings over ``limit`` characters are cut and end with the marker."""

    def too_big(value: object) -> bool:
        if isinstance(value, str):
            return len(value) > limit
        if isinstance(value, dict):
            return any(too_big(v) for v in value.values())
        if isinstance(value, list):
            return any(too_big(v) for v in value)
        return False

    if not any(too_big(s.attributes) for s in trace.spans):
        return trace
    spans = tuple(
        s.model_copy(update={"attributes": _cut(s.attributes, limit)})
        if too_big(s.attributes)
        else s
        for s in trace.spans
    )
    return trace.model_copy(update={"spans": spans})


def decode_request(body: bytes, content_type: str | None) -> list[Trace]:
    """Runs in a worker thread: a large body must not stall the event loop."""
    traces = decode_payload(body, content_type, max_bytes=settings.ingest_max_body_bytes)
    spans = sum(len(t.spans) for t in traces)
    if spans > settings.ingest_http_max_spans:
        raise InvalidPayload(
            "too_many_spans", f"{spans} spans over the limit of {settings.ingest_http_max_spans}"
        )
    limit = settings.ingest_http_max_attribute_bytes
    return [cap_attributes(t, limit) for t in traces]


async def send_all(producer: AIOKafkaProducer, traces: list[Trace]) -> None:
    """Queues every trace (the producer batches them, and waits for room in its buffer),
    then awaits every acknowledgement: never one task per trace."""
    deliveries = [
        await producer.send(
            topics.RAW,
            trace.model_dump_json().encode(),
            key=trace.trace_id.encode(),
            headers=[("content-type", b"application/json")],
        )
        for trace in traces
    ]
    await asyncio.gather(*deliveries)


async def export_traces(request: Request) -> Response:
    if not authorized(request.headers, settings.ingest_api_key or ""):
        return JSONResponse({"code": 401, "message": "missing or wrong API key"}, 401)
    if in_flight.locked():
        return busy(429, "too many requests in flight; retry later")
    async with in_flight:
        return await _export(request)


async def _export(request: Request) -> Response:
    body = await read_limited(request, settings.ingest_max_body_bytes)
    if body is None:
        return await refuse(413, "too_large", "request body exceeds the limit", b"")
    content_type = request.headers.get("content-type")
    try:
        traces = await asyncio.to_thread(decode_request, body, content_type)
    except InvalidPayload as error:
        status = 413 if error.reason == "too_many_spans" else 400
        return await refuse(status, error.reason, error.message, body)
    producer = state.get("producer")
    if producer is None:
        return busy(503, "the broker is not reachable yet; retry later")
    BATCH_SIZE.labels("ingest_http", "request").observe(len(traces))
    try:
        await asyncio.wait_for(send_all(producer, traces), settings.ingest_http_send_timeout_s)
    except Exception as error:
        if not is_transient(error):
            raise
        logger.warning("kafka_unavailable", extra={"error_class": type(error).__name__})
        return busy(503, "the broker is unavailable or slow; retry later")
    media_type = response_media_type(content_type)
    if media_type == "application/x-protobuf":
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=media_type)
    return JSONResponse({})


app = Starlette(routes=[Route("/v1/traces", export_traces, methods=["POST"])], lifespan=lifespan)
app.add_middleware(CountStatuses)


async def producer_connected() -> str | None:
    return None if "producer" in state else "kafka: producer not connected yet"


instrument_starlette(app, "ingest_http", [producer_connected])
