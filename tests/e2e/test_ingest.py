"""Ingest end to end: a real OpenTelemetry SDK client, the HTTP receiver, and assembly
across a SIGKILL — on the real broker, with every stage its own process."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from promoter.lag import wait_for_idle
from promoter.supervisor import Endpoints, Stack
from shared import topics
from shared.events import Trace
from shared.kafka import read_topic
from tests.e2e.test_ops import scrape, stage_urls, total, until
from tests.e2e.test_pipeline import produce
from tools.corpus.generate import generate

pytestmark = pytest.mark.e2e


def normalized_events(bootstrap: str, trace_id: str) -> list[dict[str, Any]]:
    values = asyncio.run(read_topic(bootstrap, topics.NORMALIZED))
    return [e for e in map(json.loads, values) if e["trace_id"] == trace_id]


def run_instrumented_agent(endpoint: str, api_key: str) -> str:
    """A small agent-like program, instrumented the way GenAI-convention users do it."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "refund-bot", "service.version": "2.1.0"})
    )
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers={"x-api-key": api_key}))
    )
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("invoke_agent refund-bot") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "refund-bot")
        root.set_attribute("gen_ai.conversation.id", "conv-7")
        with tracer.start_as_current_span("chat gpt-test") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-test")
            chat.set_attribute("gen_ai.usage.input_tokens", 120)
            chat.set_attribute("gen_ai.usage.output_tokens", 30)
        with tracer.start_as_current_span("execute_tool issue_refund") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "issue_refund")
            tool.set_attribute("gen_ai.tool.call.arguments", '{"order": "A-1", "amount": 90}')
            tool.set_attribute("error.type", "RefundLimitExceeded")
            tool.set_status(Status(StatusCode.ERROR, "amount 90 exceeds order total 40"))
        root.add_event(
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "correctness",
                "gen_ai.evaluation.score.value": 0.1,
                "gen_ai.evaluation.score.label": "fail",
                "gen_ai.evaluation.explanation": "refunded more than the order total",
            },
        )
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return trace_id


def test_an_opentelemetry_instrumented_agent_arrives_complete_with_tools_and_feedback(
    pipeline: Endpoints, stack: Stack
) -> None:
    assert pipeline.ingest_http is not None
    trace_id = run_instrumented_agent(pipeline.ingest_http, stack.api_key())
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=120)

    [event] = normalized_events(pipeline.kafka_bootstrap_servers, trace_id)
    assert event["complete"] is True
    trace = Trace.model_validate(event["trace"])
    assert trace.agent_name == "refund-bot" and trace.agent_version == "2.1.0"
    assert trace.session_id == "conv-7"
    assert sorted(s.kind.value for s in trace.spans) == ["agent", "llm", "tool"]
    tool = next(s for s in trace.spans if s.kind.value == "tool")
    assert tool.tool_name == "issue_refund"
    assert tool.error_type == "RefundLimitExceeded"
    llm = next(s for s in trace.spans if s.kind.value == "llm")
    assert llm.usage is not None and llm.usage.input_tokens == 120
    assert [(f.name, f.score, f.label) for f in trace.feedback] == [("correctness", 0.1, "fail")]
    features = event["features"]
    assert features["tool_calls"][0]["name"] == "issue_refund"
    assert features["outcome"] == "failure"


def test_bad_http_bodies_get_a_4xx_and_a_dead_letter_and_never_reach_the_pipeline(
    pipeline: Endpoints, stack: Stack
) -> None:
    assert pipeline.ingest_http is not None
    key = {"x-api-key": stack.api_key()}
    bodies = {
        b"\x0a\xff\xff\xff garbage protobuf": "application/x-protobuf",
        b'{"resourceSpans": [{"scopeSpans": "nope"}]}': "application/json",
        gzip.compress(b"\xff\xfe not utf-8"): "application/json",
    }
    for body, content_type in bodies.items():
        answer = httpx.post(
            pipeline.ingest_http, content=body, headers={**key, "content-type": content_type}
        )
        assert answer.status_code == 400, answer.text
    unauthorized = httpx.post(
        pipeline.ingest_http, content=b"{}", headers={"content-type": "application/json"}
    )
    assert unauthorized.status_code == 401
    huge = httpx.post(
        pipeline.ingest_http,
        content=b"0" * (9 * 1024 * 1024),
        headers={**key, "content-type": "application/json"},
    )
    assert huge.status_code == 413

    letters = [
        json.loads(v) for v in asyncio.run(read_topic(pipeline.kafka_bootstrap_servers, topics.DLQ))
    ]
    digests = {d["payload_sha256"] for d in letters if d["stage"] == "ingest_http"}
    assert {hashlib.sha256(b).hexdigest() for b in bodies} <= digests


def buffered_traces(state_dir: Path) -> float:
    """What ingest's buffer gauge reads now (0 while its ops endpoint is not up yet)."""
    url = stage_urls(state_dir).get("ingest")
    return total(scrape(url), "promoter_ingest_buffered_traces") if url else 0.0


def test_a_trace_split_across_messages_comes_out_complete_once_after_ingest_is_killed(
    pipeline: Endpoints, stack: Stack
) -> None:
    trace = next(t.trace for t in generate(seed=41) if len(t.trace.spans) >= 10)
    root = next(s for s in trace.spans if s.parent_span_id is None)
    children = tuple(s for s in trace.spans if s is not root)
    first = trace.model_copy(update={"spans": children}).model_dump_json().encode()
    second = trace.model_copy(update={"spans": (root,)}).model_dump_json().encode()
    key = trace.trace_id.encode()

    # Idle: nothing is held by the assembly (a held trace keeps its offset uncommitted), so
    # the first trace the buffer gauge shows is this one.
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=120)
    asyncio.run(produce(pipeline.kafka_bootstrap_servers, topics.RAW, [(key, first)]))
    until("first part buffered", lambda: buffered_traces(stack.state) >= 1, timeout_s=60)

    pid = stack.stage_pid("ingest")
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert stack.stage_pid("ingest") is None

    asyncio.run(produce(pipeline.kafka_bootstrap_servers, topics.RAW, [(key, second)]))
    stack.start_stage("ingest", pipeline)
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=120)

    events = normalized_events(pipeline.kafka_bootstrap_servers, trace.trace_id)
    assert len(events) == 1, "emitted exactly once"
    assert events[0]["complete"] is True
    emitted = Trace.model_validate(events[0]["trace"])
    assert {s.span_id for s in emitted.spans} == {s.span_id for s in trace.spans}
