"""The OTLP/HTTP receiver under a slow or absent Kafka and oversized requests: it answers
429/503 with Retry-After (which exporters retry) or 413, never hangs, never a bare 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError

from shared import topics
from shared.events import Span, SpanKind, Trace
from shared.settings import Settings
from tools.corpus.otlp import to_otlp_json

pytestmark = pytest.mark.wiring

KEY = "test-key"
T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def otlp_body(spans: int = 2, attribute: str = "ok") -> bytes:
    trace = Trace(
        trace_id="ab" * 16,
        spans=tuple(
            Span(
                span_id=f"{i + 1:016x}",
                parent_span_id=None if i == 0 else f"{1:016x}",
                name="agent" if i == 0 else "tool",
                kind=SpanKind.AGENT if i == 0 else SpanKind.TOOL,
                start_time=T0,
                end_time=T0 + timedelta(seconds=1),
                attributes={"note": attribute},
            )
            for i in range(spans)
        ),
    )
    return json.dumps(to_otlp_json(trace)).encode()


class FakeProducer:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.sent: list[tuple[str, bytes]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[None]:
        if self.mode == "down":
            raise KafkaConnectionError("broker unreachable")
        self.sent.append((topic, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.mode == "ok":
            done.set_result(None)
        else:  # slow: acknowledged only once released
            self.started.set()
            asyncio.get_running_loop().create_task(self._ack_later(done))
        return done

    async def _ack_later(self, done: asyncio.Future[None]) -> None:
        await self.release.wait()
        if not done.done():
            done.set_result(None)

    async def send_and_wait(self, topic: str, value: bytes, **kwargs: Any) -> None:
        future = await self.send(topic, value, **kwargs)
        await future


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    from services.ingest import http

    settings = Settings(
        ingest_api_key=KEY,
        ingest_http_send_timeout_s=0.5,
        ingest_http_max_spans=50,
        ingest_http_max_attribute_bytes=1024,
        ingest_http_retry_after_s=7,
    )
    monkeypatch.setattr(http, "settings", settings)
    monkeypatch.setattr(http, "in_flight", asyncio.Semaphore(1))
    yield http


def client(http: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=http.app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://receiver")


async def post(c: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    return await asyncio.wait_for(c.post("/v1/traces", content=body, headers=headers), 10)


async def test_the_receiver_answers_503_with_retry_after_when_kafka_is_down(receiver: Any) -> None:
    receiver.state["producer"] = FakeProducer("down")
    async with client(receiver) as c:
        answer = await post(c, otlp_body())
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "7"


async def test_the_receiver_answers_503_instead_of_hanging_when_kafka_is_slow(
    receiver: Any,
) -> None:
    receiver.state["producer"] = FakeProducer("slow")
    async with client(receiver) as c:
        answer = await post(c, otlp_body())
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "7"


async def test_a_request_over_the_concurrency_cap_gets_429_with_retry_after(
    receiver: Any,
) -> None:
    producer = FakeProducer("slow")
    receiver.state["producer"] = producer
    receiver.settings = receiver.settings.model_copy(update={"ingest_http_send_timeout_s": 30.0})
    async with client(receiver) as c:
        first = asyncio.create_task(post(c, otlp_body()))
        await asyncio.wait_for(producer.started.wait(), 10)
        second = await post(c, otlp_body())
        producer.release.set()
        assert (await first).status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "7"


async def test_a_request_with_too_many_spans_is_refused_with_413(receiver: Any) -> None:
    producer = FakeProducer("ok")
    receiver.state["producer"] = producer
    async with client(receiver) as c:
        answer = await post(c, otlp_body(spans=60))
    assert answer.status_code == 413
    assert [topic for topic, _ in producer.sent] == [topics.DLQ], "a dead letter, no trace"


async def test_an_oversized_attribute_is_cut_and_marked_before_it_reaches_kafka(
    receiver: Any,
) -> None:
    producer = FakeProducer("ok")
    receiver.state["producer"] = producer
    async with client(receiver) as c:
        answer = await post(c, otlp_body(attribute="v" * 5_000))
    assert answer.status_code == 200
    (topic, value), *_ = producer.sent
    assert topic == topics.RAW
    note = json.loads(value)["spans"][0]["attributes"]["note"]
    assert len(note) < 1_100 and note.endswith("[truncated]")
