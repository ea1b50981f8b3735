"""What the baselines need, read back from a converted OTLP JSON document.

The committed slice holds only the documents and labels; the baselines of ``eval --quick``
read the user turns and the tool-name sequence from the documents with this reader of the
converter's own output (never with the product's decoder). On a full conversion the same
figures come from the neutral ``Run``s, and the logic tests check both agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_OI_INPUT_RE = re.compile(r"llm\.input_messages\.(\d+)\.message\.(role|content)")
_OI_CALL_RE = re.compile(
    r"llm\.output_messages\.0\.message\.tool_calls\.(\d+)\.tool_call\.function\.name"
)


@dataclass(frozen=True)
class BaselineView:
    trace_id: str
    user_turns: tuple[str, ...]
    tool_names: tuple[str, ...]


def _spans(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            yield from scope_spans.get("spans", [])


def _value(any_value: dict[str, Any]) -> Any:
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in any_value:
            return any_value[key]
    return None


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {kv["key"]: _value(kv.get("value", {})) for kv in span.get("attributes", [])}


def read_back(document: dict[str, Any]) -> BaselineView:
    trace_id = ""
    turns: list[str] = []
    tools: list[str] = []
    for span in _spans(document):
        trace_id = trace_id or span.get("traceId", "")
        attributes = _attributes(span)
        if attributes.get("gen_ai.operation.name") == "chat":
            for message in json.loads(attributes.get("gen_ai.input.messages") or "[]"):
                if message.get("role") == "user":
                    text = "\n".join(
                        p["content"] for p in message.get("parts", []) if p.get("type") == "text"
                    )
                    if text:
                        turns.append(text)
            for message in json.loads(attributes.get("gen_ai.output.messages") or "[]"):
                tools.extend(
                    p["name"] for p in message.get("parts", []) if p.get("type") == "tool_call"
                )
        elif attributes.get("openinference.span.kind") == "LLM":
            inputs: dict[int, dict[str, str]] = {}
            calls: dict[int, str] = {}
            for key, value in attributes.items():
                if match := _OI_INPUT_RE.fullmatch(key):
                    inputs.setdefault(int(match[1]), {})[match[2]] = value
                elif match := _OI_CALL_RE.fullmatch(key):
                    calls[int(match[1])] = value
            turns.extend(
                m["content"]
                for _, m in sorted(inputs.items())
                if m.get("role") == "user" and m.get("content")
            )
            tools.extend(name for _, name in sorted(calls.items()))
    return BaselineView(trace_id, tuple(turns), tuple(tools))
