"""The OTLP/HTTP receiver: POST /v1/traces → traces.raw, one message per trace id.

A second shell of the ingest stage (run with `uvicorn services.ingest.http:app`). The
request is decoded by the same core as the Kafka path, so a body is refused here (4xx and
a dead letter) for exactly the reasons ingest would refuse it. Each trace goes to
traces.raw as canonical native JSON — raw attributes kept — keyed by its trace id, so all
spans of a trace meet on one partition and one ingest instance.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.ingest.decode import InvalidPayload, decode_payload
from services.ingest.logic import authorized, response_media_type
from shared import topics
from shared.events import DeadLettered
from shared.log import configure_logging
from shared.settings import get_settings
from shared.stage import now, to_bytes

settings = get_settings()
logger = configure_logging("ingest_http", settings.log_level)
state: dict[str, AIOKafkaProducer] = {}


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    if not settings.ingest_api_key:
        raise RuntimeError("PROMOTE_INGEST_API_KEY is not set: the receiver never runs open")
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers(),
        acks="all",
        enable_idempotence=True,
        max_request_size=settings.ingest_max_body_bytes + 65536,
        linger_ms=5,
    )
    await producer.start()
    state["producer"] = producer
    yield
    await producer.stop()


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


async def refuse(status: int, reason: str, message: str, body: bytes) -> JSONResponse:
    letter = DeadLettered(
        stage="ingest_http",
        error_class=reason,
        message=message,
        source_topic="http:/v1/traces",
        payload_sha256=hashlib.sha256(body).hexdigest(),
        payload_bytes=len(body),
        at=now(),
    )
    await state["producer"].send_and_wait(
        topics.DLQ,
        to_bytes(letter),
        key=letter.payload_sha256.encode(),
        headers=[("content-type", b"application/json")],
    )
    logger.warning("refused", extra={"status": status, "reason": reason})
    return JSONResponse({"code": status, "message": f"{reason}: {message}"}, status_code=status)


async def export_traces(request: Request) -> Response:
    if not authorized(request.headers, settings.ingest_api_key or ""):
        return JSONResponse({"code": 401, "message": "missing or wrong API key"}, 401)
    body = await read_limited(request, settings.ingest_max_body_bytes)
    if body is None:
        return await refuse(413, "too_large", "request body exceeds the limit", b"")
    content_type = request.headers.get("content-type")
    try:
        traces = decode_payload(body, content_type, max_bytes=settings.ingest_max_body_bytes)
    except InvalidPayload as error:
        return await refuse(400, error.reason, error.message, body)
    producer = state["producer"]
    await asyncio.gather(
        *(
            producer.send_and_wait(
                topics.RAW,
                trace.model_dump_json().encode(),
                key=trace.trace_id.encode(),
                headers=[("content-type", b"application/json")],
            )
            for trace in traces
        )
    )
    media_type = response_media_type(content_type)
    if media_type == "application/x-protobuf":
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=media_type)
    return JSONResponse({})


app = Starlette(routes=[Route("/v1/traces", export_traces, methods=["POST"])], lifespan=lifespan)
