"""A neutral ``Run`` as one OTLP trace, emitted as an agent's instrumentation would.

* resource: ``service.name`` (the agent) and ``service.version`` (the agent version);
* a root agent span (``invoke_agent`` / OpenInference ``AGENT``) with the conversation and a
  per-run user id, the first user message as input and the last assistant text as output, and
  status UNSET: an instrumentation does not know the business outcome;
* one model-call span per assistant message a model produced, child of the root, carrying only
  the messages added since the previous call (new user turns, tool results), so that a trace
  grows linearly with the conversation, the response (text and tool calls) and token usage;
* one tool span per executed tool call, child of the root, after its model call, with the
  arguments and the result; a tool that failed has status ERROR, a status message and
  ``error.type`` (and, in OpenInference, an ``exception`` event), its result text kept;
* the outcome as production gets it: a ``gen_ai.evaluation.result`` event on the root span
  (an online evaluator's score and pass/fail label).

About half the runs (by a hash of the run id) use the OpenTelemetry GenAI semantic
conventions, the others OpenInference's attribute names.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from tools.corpus.real.model import ConvertedRun, Message, Run, ToolCall

Convention = Literal["genai", "openinference"]
SCOPE_NAME = "trace-promoter.corpus.real"
EVALUATION_EVENT = "gen_ai.evaluation.result"
STATUS_MESSAGE_CHARS = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def convention_of(run_id: str) -> Convention:
    return "genai" if hashlib.sha256(run_id.encode()).digest()[0] % 2 == 0 else "openinference"


def trace_id_of(run_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{run_id}:trace".encode()).hexdigest()[:32]


def _span_id(trace_id: str, index: int) -> bytes:
    return hashlib.sha256(f"{trace_id}:{index}".encode()).digest()[:8]


def _nanos(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def convert(run: Run, seed: int = 0, convention: Convention | None = None) -> ConvertedRun:
    convention = convention or convention_of(run.run_id)
    trace_id = trace_id_of(run.run_id, seed)
    document = _Emitter(run, trace_id, convention).document()
    return ConvertedRun(run=run, trace_id=trace_id, convention=convention, document=document)


class _Emitter:
    def __init__(self, run: Run, trace_id: str, convention: Convention) -> None:
        self.run = run
        self.trace_id = trace_id
        self.genai = convention == "genai"
        self.request = ExportTraceServiceRequest()
        resource_spans = self.request.resource_spans.add()
        _set_attributes(
            resource_spans.resource.attributes,
            {"service.name": run.agent_name, "service.version": run.agent_version},
        )
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = SCOPE_NAME
        self.spans = scope_spans.spans
        self.root_id = _span_id(trace_id, 0)

    def document(self) -> dict[str, Any]:
        self._root()
        self._steps()
        document = json_format.MessageToDict(self.request, use_integers_for_enums=True)
        for resource_spans in document["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
        return document

    def _span(
        self, name: str, kind: Any, start: datetime, end: datetime, parent: bool = True
    ) -> Any:
        span = self.spans.add()
        span.trace_id = bytes.fromhex(self.trace_id)
        span.span_id = self.root_id if not parent else _span_id(self.trace_id, len(self.spans))
        if parent:
            span.parent_span_id = self.root_id
        span.name = name
        span.kind = kind
        span.start_time_unix_nano = _nanos(start)
        span.end_time_unix_nano = _nanos(max(start, end))
        return span

    # -- root ----------------------------------------------------------------------------

    def _root(self) -> None:
        run = self.run
        user_turns = run.user_turns()
        first_input = user_turns[0] if user_turns else None
        answers = [m.text for m in run.messages if m.role == "assistant" and m.text]
        last_output = answers[-1] if answers else None
        name = f"invoke_agent {run.agent_name}" if self.genai else run.agent_name
        span = self._span(name, OtlpSpan.SPAN_KIND_INTERNAL, run.start, run.end, parent=False)
        attributes: dict[str, Any]
        if self.genai:
            attributes = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": run.agent_name,
                "gen_ai.agent.version": run.agent_version,
                "gen_ai.conversation.id": run.session_id,
                "user.id": run.user_id,
            }
            if run.provider:
                attributes["gen_ai.provider.name"] = run.provider
            if first_input is not None:
                attributes["gen_ai.input.messages"] = _json([_text_message("user", first_input)])
            if last_output is not None:
                output = {**_text_message("assistant", last_output), "finish_reason": "stop"}
                attributes["gen_ai.output.messages"] = _json([output])
        else:
            attributes = {
                "openinference.span.kind": "AGENT",
                "agent.name": run.agent_name,
                "session.id": run.session_id,
                "user.id": run.user_id,
            }
            if first_input is not None:
                attributes["input.value"] = first_input
                attributes["input.mime_type"] = "text/plain"
            if last_output is not None:
                attributes["output.value"] = last_output
                attributes["output.mime_type"] = "text/plain"
        _set_attributes(span.attributes, attributes)
        event = span.events.add()
        event.name = EVALUATION_EVENT
        event.time_unix_nano = span.end_time_unix_nano
        _set_attributes(
            event.attributes,
            {
                "gen_ai.evaluation.name": run.evaluation_name,
                "gen_ai.evaluation.score.value": float(run.reward),
                "gen_ai.evaluation.score.label": "pass" if run.outcome == "success" else "fail",
            },
        )

    # -- model and tool calls ---------------------------------------------------------------

    def _steps(self) -> None:
        run = self.run
        results = run.tool_results()
        added: list[Message] = []
        last_time = run.start
        first_call = True
        for message in run.messages:
            if message.role != "assistant" or not message.model_call:
                added.append(message)
                last_time = max(last_time, message.time)
                continue
            self._model_call(message, added, last_time, first_call)
            first_call = False
            added = []
            cursor = message.time
            for call in message.tool_calls:
                result = results.get(call.id)
                if result is None:
                    continue  # never executed: the run ended first
                self._tool_call(call, result, cursor)
                cursor = max(cursor, result.time)
            last_time = max(last_time, message.time)

    def _model_call(
        self, message: Message, added: list[Message], start: datetime, first_call: bool
    ) -> None:
        run = self.run
        name = f"chat {run.model}" if self.genai else "ChatCompletion"
        span = self._span(name, OtlpSpan.SPAN_KIND_CLIENT, start, message.time)
        system = run.system_instructions if first_call else None
        if self.genai:
            attributes = self._genai_model_call(message, added, system)
        else:
            attributes = self._openinference_model_call(message, added, system)
        _set_attributes(span.attributes, attributes)

    def _genai_model_call(
        self, message: Message, added: list[Message], system: str | None
    ) -> dict[str, Any]:
        run = self.run
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": run.model,
            "gen_ai.response.model": run.model,
        }
        if run.provider:
            attributes["gen_ai.provider.name"] = run.provider
        if system:
            attributes["gen_ai.system_instructions"] = _json([{"type": "text", "content": system}])
        attributes["gen_ai.input.messages"] = _json([_genai_input(m) for m in added])
        parts: list[dict[str, Any]] = []
        if message.text:
            parts.append({"type": "text", "content": message.text})
        parts.extend(
            {"type": "tool_call", "id": c.id, "name": c.name, "arguments": _arguments(c)}
            for c in message.tool_calls
        )
        output = {"role": "assistant", "parts": parts, "finish_reason": message.finish_reason}
        attributes["gen_ai.output.messages"] = _json([output])
        if message.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = [message.finish_reason]
        if message.input_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = message.input_tokens
        if message.output_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = message.output_tokens
        return attributes

    def _openinference_model_call(
        self, message: Message, added: list[Message], system: str | None
    ) -> dict[str, Any]:
        run = self.run
        attributes: dict[str, Any] = {
            "openinference.span.kind": "LLM",
            "llm.model_name": run.model,
        }
        if run.provider:
            attributes["llm.provider"] = run.provider
        inputs: list[tuple[str, str | None, str | None]] = []
        if system:
            inputs.append(("system", system, None))
        inputs.extend((m.role, m.text, m.tool_call_id) for m in added)
        for index, (role, text, call_id) in enumerate(inputs):
            prefix = f"llm.input_messages.{index}.message"
            attributes[f"{prefix}.role"] = role
            if text is not None:
                attributes[f"{prefix}.content"] = text
            if call_id is not None:
                attributes[f"{prefix}.tool_call_id"] = call_id
        prefix = "llm.output_messages.0.message"
        attributes[f"{prefix}.role"] = "assistant"
        if message.text:
            attributes[f"{prefix}.content"] = message.text
        for index, call in enumerate(message.tool_calls):
            call_prefix = f"{prefix}.tool_calls.{index}.tool_call"
            attributes[f"{call_prefix}.id"] = call.id
            attributes[f"{call_prefix}.function.name"] = call.name
            attributes[f"{call_prefix}.function.arguments"] = call.arguments
        if message.input_tokens is not None:
            attributes["llm.token_count.prompt"] = message.input_tokens
        if message.output_tokens is not None:
            attributes["llm.token_count.completion"] = message.output_tokens
        if message.input_tokens is not None and message.output_tokens is not None:
            attributes["llm.token_count.total"] = message.input_tokens + message.output_tokens
        return attributes

    def _tool_call(self, call: ToolCall, result: Message, start: datetime) -> None:
        name = f"execute_tool {call.name}" if self.genai else call.name
        span = self._span(name, OtlpSpan.SPAN_KIND_INTERNAL, start, result.time)
        text = result.text or ""
        attributes: dict[str, Any]
        if self.genai:
            attributes = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": call.name,
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.id": call.id,
                "gen_ai.tool.call.arguments": call.arguments,
                "gen_ai.tool.call.result": text,
            }
        else:
            attributes = {
                "openinference.span.kind": "TOOL",
                "tool.name": call.name,
                "tool_call.id": call.id,
                "input.value": call.arguments,
                "input.mime_type": "application/json",
                "output.value": text,
                "output.mime_type": "text/plain",
            }
        if result.error_type is not None:
            message = text.removeprefix("Error: ").split("\n", 1)[0][:STATUS_MESSAGE_CHARS]
            attributes["error.type"] = result.error_type
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = message
            if not self.genai:
                event = span.events.add()
                event.name = "exception"
                event.time_unix_nano = span.end_time_unix_nano
                _set_attributes(
                    event.attributes,
                    {"exception.type": result.error_type, "exception.message": message},
                )
        _set_attributes(span.attributes, attributes)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _text_message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def _genai_input(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        part = {"type": "tool_call_response", "id": message.tool_call_id, "response": message.text}
        return {"role": "tool", "parts": [part]}
    return _text_message(message.role, message.text or "")


def _arguments(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments)
    except ValueError:
        return call.arguments


def _set_attributes(out: Any, attributes: Mapping[str, Any]) -> None:
    for key, value in attributes.items():
        if value is None:
            continue
        kv = out.add()
        kv.key = key
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        elif isinstance(value, str):
            kv.value.string_value = value
        elif isinstance(value, list):
            kv.value.array_value.SetInParent()
            for item in value:
                kv.value.array_value.values.add().string_value = str(item)
        else:
            raise TypeError(f"attribute {key!r} of type {type(value).__name__} has no OTLP form")
