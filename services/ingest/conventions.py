"""Semantic conventions: which span attributes and events fill which canonical fields.

Attribute precedence (documented in docs/attributes.md): ``promote.*`` > ``gen_ai.*`` current
names > ``gen_ai.*`` older names > OpenInference > generic (``input.value``/``output.value``).
A value of an unusable type is ignored for normalisation (it stays in ``Span.attributes``) and
the next key in precedence is tried: one odd attribute must not send a whole trace to the DLQ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from services.ingest.attribute_values import as_float, as_id, as_int, as_text, pick
from shared.events import Document, Feedback, SpanKind, Usage

T = TypeVar("T")

# Indexes are bounded to 9 digits: int() of a key-sized digit run could exceed
# Python's int-string conversion limit and raise.
_OI_MESSAGE_RE = re.compile(
    r"llm\.(input|output)_messages\.(\d{1,9})\.message\."
    r"(?:content|contents\.(\d{1,9})\.message_content\.text)"
)
_OLD_GENAI_MESSAGE_RE = re.compile(r"gen_ai\.(prompt|completion)\.(\d{1,9})\.content")
_OI_DOCUMENT_RE = re.compile(
    r"(retrieval\.documents|reranker\.output_documents)\.(\d{1,9})\.document\.(id|content|score)"
)

_GENAI_OPERATION_KINDS: Mapping[str, SpanKind] = {
    "chat": SpanKind.LLM,
    "text_completion": SpanKind.LLM,
    "generate_content": SpanKind.LLM,
    # An embedding call is a model call with token cost; it groups with llm spans.
    "embeddings": SpanKind.LLM,
    "execute_tool": SpanKind.TOOL,
    "invoke_agent": SpanKind.AGENT,
    "create_agent": SpanKind.AGENT,
    "invoke_workflow": SpanKind.AGENT,
    "retrieval": SpanKind.RETRIEVAL,
}
_OPENINFERENCE_KINDS: Mapping[str, SpanKind] = {
    "LLM": SpanKind.LLM,
    "EMBEDDING": SpanKind.LLM,
    "TOOL": SpanKind.TOOL,
    "RETRIEVER": SpanKind.RETRIEVAL,
    "RERANKER": SpanKind.RETRIEVAL,
    "AGENT": SpanKind.AGENT,
    "GUARDRAIL": SpanKind.GUARDRAIL,
    "EVALUATOR": SpanKind.EVALUATOR,
    "CHAIN": SpanKind.OTHER,
    "PROMPT": SpanKind.OTHER,
    "UNKNOWN": SpanKind.OTHER,
}
_SPAN_KIND_VALUES = frozenset(k.value for k in SpanKind)
# Phoenix/OpenInference annotator kinds mapped onto Feedback.source.
_ANNOTATOR_SOURCES: Mapping[str, str] = {"LLM": "evaluator", "HUMAN": "human", "CODE": "code"}

EVALUATION_EVENT = "gen_ai.evaluation.result"
ANNOTATION_EVENT = "annotation"
PROMOTE_FEEDBACK_EVENT = "promote.feedback"
EXCEPTION_EVENT = "exception"
_OLD_PROMPT_EVENT = "gen_ai.content.prompt"
_OLD_COMPLETION_EVENT = "gen_ai.content.completion"


@dataclass(frozen=True)
class SpanEvent:
    name: str
    attributes: dict[str, Any]


def span_kind_of(attributes: Mapping[str, Any]) -> SpanKind:
    """The canonical kind a span's raw attributes say, by the documented precedence."""
    declared = as_id(attributes.get("promote.span.kind"))
    if declared is not None and declared.lower() in _SPAN_KIND_VALUES:
        return SpanKind(declared.lower())
    operation = as_id(attributes.get("gen_ai.operation.name"))
    if operation is not None and operation.lower() in _GENAI_OPERATION_KINDS:
        return _GENAI_OPERATION_KINDS[operation.lower()]
    if "gen_ai.tool.name" in attributes or "gen_ai.tool.call.id" in attributes:
        return SpanKind.TOOL
    # Emitters older than gen_ai.operation.name marked model calls only by these.
    if any(
        key in attributes for key in ("gen_ai.system", "gen_ai.prompt", "gen_ai.completion")
    ) or any(_OLD_GENAI_MESSAGE_RE.fullmatch(key) for key in attributes):
        return SpanKind.LLM
    openinference = as_id(attributes.get("openinference.span.kind"))
    if openinference is not None and openinference.upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[openinference.upper()]
    if "tool.name" in attributes:
        return SpanKind.TOOL
    if "llm.model_name" in attributes:
        return SpanKind.LLM
    return SpanKind.OTHER


def input_of(attributes: Mapping[str, Any], events: list[SpanEvent]) -> str | None:
    """Input from every key above the generic input.value (which otlp._span weighs itself)."""
    messages = _messages_text(attributes.get("gen_ai.input.messages"))
    instructions = _parts_text(attributes.get("gen_ai.system_instructions"))
    if messages is not None or instructions is not None:
        return _join([instructions, messages])
    return _first_not_none(
        lambda: pick(attributes, ("gen_ai.retrieval.query.text",), as_text),
        lambda: _messages_text(attributes.get("gen_ai.prompt")),
        lambda: _flattened_old_genai(attributes, "prompt"),
        lambda: _event_text(events, _OLD_PROMPT_EVENT, "gen_ai.prompt"),
        lambda: _flattened_openinference(attributes, "input"),
    )


def output_of(attributes: Mapping[str, Any], events: list[SpanEvent]) -> str | None:
    return _first_not_none(
        lambda: _messages_text(attributes.get("gen_ai.output.messages")),
        lambda: _messages_text(attributes.get("gen_ai.completion")),
        lambda: _flattened_old_genai(attributes, "completion"),
        lambda: _event_text(events, _OLD_COMPLETION_EVENT, "gen_ai.completion"),
        lambda: _flattened_openinference(attributes, "output"),
    )


def _first_not_none(*candidates: Callable[[], T | None]) -> T | None:
    for candidate in candidates:
        value = candidate()
        if value is not None:
            return value
    return None


def _join(texts: Iterable[str | None]) -> str | None:
    present = [text for text in texts if text is not None]
    return "\n".join(present) if present else None


def _maybe_json(value: Any) -> Any:
    """Structured content may arrive as an AnyValue or as a JSON string; read both."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


def _messages_text(value: Any) -> str | None:
    """Text of chat messages: gen_ai ``parts`` form, or the older ``content`` form."""
    if value is None:
        return None
    parsed = _maybe_json(value)
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not (
        isinstance(parsed, list)
        and parsed
        and all(
            isinstance(m, dict) and ("parts" in m or "content" in m or "role" in m) for m in parsed
        )
    ):
        # Not message-shaped: a plain prompt string is the text itself.
        return as_text(value)
    texts: list[str | None] = []
    for message in parsed:
        texts.append(_parts_text(message.get("parts"), allow_plain=False))
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.append(_parts_text(content, allow_plain=False))
    return _join(texts)


def _parts_text(value: Any, *, allow_plain: bool = True) -> str | None:
    """Text parts of a gen_ai parts list (``[{"type": "text", "content": ...}]``)."""
    if value is None:
        return None
    parsed = _maybe_json(value)
    if isinstance(parsed, str):
        return parsed if allow_plain else None
    if not isinstance(parsed, list):
        return as_text(value) if allow_plain else None
    texts: list[str | None] = []
    for part in parsed:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type", "text") == "text":
            text = part.get("content", part.get("text"))
            if isinstance(text, str):
                texts.append(text)
    return _join(texts)


def _flattened_old_genai(attributes: Mapping[str, Any], which: str) -> str | None:
    found: list[tuple[int, str]] = []
    for key, value in attributes.items():
        match = _OLD_GENAI_MESSAGE_RE.fullmatch(key)
        if match and match.group(1) == which and isinstance(value, str):
            found.append((int(match.group(2)), value))
    return _join(text for _, text in sorted(found)) if found else None


def _flattened_openinference(attributes: Mapping[str, Any], which: str) -> str | None:
    found: list[tuple[int, int, str]] = []
    for key, value in attributes.items():
        match = _OI_MESSAGE_RE.fullmatch(key)
        if match and match.group(1) == which and isinstance(value, str):
            content_index = -1 if match.group(3) is None else int(match.group(3))
            found.append((int(match.group(2)), content_index, value))
    return _join(text for _, _, text in sorted(found)) if found else None


def _event_text(events: list[SpanEvent], event_name: str, key: str) -> str | None:
    for event in events:
        if event.name == event_name and key in event.attributes:
            return _messages_text(event.attributes[key])
    return None


def documents_of(attributes: Mapping[str, Any]) -> tuple[Document, ...]:
    listed = _maybe_json(attributes.get("gen_ai.retrieval.documents"))
    if isinstance(listed, list) and listed:
        return tuple(
            Document(
                id=as_id(item.get("id")),
                content=as_text(item.get("content", item.get("text"))),
                score=as_float(item.get("score")),
            )
            for item in listed
            if isinstance(item, dict)
        )
    for prefix in ("retrieval.documents", "reranker.output_documents"):
        fields: dict[int, dict[str, Any]] = {}
        for key, value in attributes.items():
            match = _OI_DOCUMENT_RE.fullmatch(key)
            if match and match.group(1) == prefix:
                fields.setdefault(int(match.group(2)), {})[match.group(3)] = value
        if fields:
            return tuple(
                Document(
                    id=as_id(doc.get("id")),
                    content=as_text(doc.get("content")),
                    score=as_float(doc.get("score")),
                )
                for _, doc in sorted(fields.items())
            )
    return ()


def usage_of(attributes: Mapping[str, Any]) -> Usage | None:
    input_tokens = pick(
        attributes,
        ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
        as_int,
    )
    output_tokens = pick(
        attributes,
        (
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ),
        as_int,
    )
    cost = pick(attributes, ("gen_ai.usage.cost", "llm.cost.total"), as_float)
    if input_tokens is None and output_tokens is None and cost is None:
        return None
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost)


def feedback_of(events: list[SpanEvent]) -> list[Feedback]:
    feedback = []
    for event in events:
        a = event.attributes
        if event.name == EVALUATION_EVENT:
            source: str | None = "evaluator"
            prefix = "gen_ai.evaluation."
            name = as_id(a.get("gen_ai.evaluation.name"))
            score = as_float(a.get("gen_ai.evaluation.score.value"))
            label = as_id(a.get("gen_ai.evaluation.score.label"))
            default_name = "evaluation"
        elif event.name == ANNOTATION_EVENT:
            kind = as_id(a.get("annotation.annotator_kind"))
            source = None if kind is None else _ANNOTATOR_SOURCES.get(kind.upper(), kind.lower())
            prefix = "annotation."
            name = as_id(a.get("annotation.name"))
            score = as_float(a.get("annotation.score"))
            label = as_id(a.get("annotation.label"))
            default_name = "annotation"
        elif event.name == PROMOTE_FEEDBACK_EVENT:
            source = as_id(a.get("promote.feedback.source"))
            prefix = "promote.feedback."
            name = as_id(a.get("promote.feedback.name"))
            score = as_float(a.get("promote.feedback.score"))
            label = as_id(a.get("promote.feedback.label"))
            default_name = "feedback"
        else:
            continue
        feedback.append(
            Feedback(
                source=source or "unknown",
                name=default_name if name is None else name,
                score=score,
                label=label,
                explanation=as_text(a.get(prefix + "explanation")),
            )
        )
    return feedback


# --- trace level -------------------------------------------------------------------------------


def _agent_name_from_service(value: Any) -> str | None:
    # SDKs fill service.name with "unknown_service[:exe]" when unset: not an agent name.
    name = as_id(value)
    return None if name is None or name.startswith("unknown_service") else name


TRACE_FIELDS: Mapping[str, tuple[tuple[str, Callable[[Any], str | None]], ...]] = {
    "session_id": (
        ("promote.session.id", as_id),
        ("gen_ai.conversation.id", as_id),
        ("session.id", as_id),
    ),
    "user_id": (
        ("promote.user.id", as_id),
        ("user.id", as_id),
        ("enduser.id", as_id),
    ),
    "agent_name": (
        ("gen_ai.agent.name", as_id),
        ("agent.name", as_id),
        ("service.name", _agent_name_from_service),
    ),
    "agent_version": (
        ("promote.agent.version", as_id),
        ("gen_ai.agent.version", as_id),
        ("service.version", as_id),
    ),
    "outcome": (("promote.outcome", as_id),),
}
