"""The conversation a trace carries, as role-tagged turns.

Real instrumentations put the messages on the model-call spans, not on the agent's root:
OTel GenAI as ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON with ``parts``,
or the older ``content`` form), older GenAI emitters as flattened ``gen_ai.prompt.N.role`` /
``.content``, OpenInference as flattened ``llm.input_messages.N.message.role`` /
``.message.content``. Some send every call the whole history, some only what is new: turns
are therefore collected across the model calls in time order, and a turn already seen
(same role, same text) is not counted again.

What the user said over the whole conversation is what the run was about; the root span's
input alone is often only a greeting ("Hi, I need help with an order").
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shared.events import Span, SpanKind, Trace

USER = "user"
ASSISTANT = "assistant"
TOOL = "tool"
SYSTEM = "system"

_ROLES = {
    "user": USER,
    "human": USER,
    "assistant": ASSISTANT,
    "ai": ASSISTANT,
    "model": ASSISTANT,
    "tool": TOOL,
    "function": TOOL,
    "ipython": TOOL,
    "system": SYSTEM,
    "developer": SYSTEM,
}

_OI_KEY = re.compile(r"llm\.(input|output)_messages\.(\d{1,9})\.message\.(role|content)")
_OI_CONTENTS_KEY = re.compile(
    r"llm\.(input|output)_messages\.(\d{1,9})\.message\.contents\.(\d{1,9})\.message_content\.text"
)
_OLD_KEY = re.compile(r"gen_ai\.(prompt|completion)\.(\d{1,9})\.(role|content)")
# What every key the three patterns above match starts with.
_FLAT_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
)


_MODEL_CALL_KINDS = (SpanKind.LLM, SpanKind.AGENT)


@dataclass(frozen=True)
class Turn:
    role: str
    text: str


def _role(value: Any) -> str | None:
    return _ROLES.get(value.strip().lower()) if isinstance(value, str) else None


def _json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value


def _part_text(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping) and part.get("type", "text") == "text":
        text = part.get("content", part.get("text"))
        return text if isinstance(text, str) else None
    return None


def _message_text(message: Mapping[str, Any]) -> str:
    texts: list[str] = []
    parts = message.get("parts")
    if isinstance(parts, list):
        texts += [t for t in map(_part_text, parts) if t]
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        texts += [t for t in map(_part_text, content) if t]
    return "\n".join(texts)


def _structured(value: Any) -> Iterator[Turn]:
    parsed = _json(value)
    if isinstance(parsed, Mapping):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return
    for message in parsed:
        if isinstance(message, Mapping):
            role = _role(message.get("role"))
            text = _message_text(message).strip()
            if role and text:
                yield Turn(role, text)


def _flattened(attributes: Mapping[str, Any], which: tuple[str, ...]) -> Iterator[Turn]:
    """OpenInference and older GenAI flatten messages into indexed keys."""
    fields: dict[tuple[int, int], dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(_FLAT_PREFIXES):
            continue  # most attributes are no message: a prefix test is cheaper than 3 regexes
        if match := _OI_KEY.fullmatch(key) or _OLD_KEY.fullmatch(key):
            side = 0 if match.group(1) in ("input", "prompt") else 1
            if match.group(1) in which:
                fields.setdefault((side, int(match.group(2))), {})[match.group(3)] = value
        elif match := _OI_CONTENTS_KEY.fullmatch(key):
            side = 0 if match.group(1) == "input" else 1
            entry = fields.setdefault((side, int(match.group(2))), {})
            entry.setdefault("parts", []).append((int(match.group(3)), value))
    for _, entry in sorted(fields.items()):
        role = _role(entry.get("role"))
        text = entry.get("content")
        if not isinstance(text, str):
            text = "\n".join(v for _, v in sorted(entry.get("parts", [])) if isinstance(v, str))
        if role and text.strip():
            yield Turn(role, text.strip())


def span_turns(span: Span) -> list[Turn]:
    """The messages one model call carries, inputs first, in their order."""
    a = span.attributes
    if not a:
        return []  # native spans often carry no raw attributes, hence no messages
    turns: list[Turn] = []
    for key in ("gen_ai.input.messages", "gen_ai.prompt", "gen_ai.output.messages"):
        value = a.get(key)
        if value is not None:  # most calls carry one form or none
            turns += _structured(value)
    turns += _flattened(a, ("input", "prompt", "output", "completion"))
    return turns


def turns(trace: Trace) -> list[Turn]:
    """Every distinct turn of the conversation in the order it first appeared.

    Without messages on any model call, the root's input and output stand for the user's
    request and the agent's answer."""
    return turns_in(in_time_order(trace.spans))


_START_THEN_ID = operator.attrgetter("start_time", "span_id")


def in_time_order(spans: Iterable[Span]) -> list[Span]:
    return sorted(spans, key=_START_THEN_ID)


def turns_in(spans: list[Span]) -> list[Turn]:
    """``turns`` of a trace whose spans are given ``in_time_order`` (a caller that sorted
    them already does not sort them again)."""
    seen: set[tuple[str, str]] = set()
    out: list[Turn] = []
    for span in spans:
        if span.kind not in _MODEL_CALL_KINDS:
            continue
        for turn in span_turns(span):
            if (turn.role, turn.text) not in seen:
                seen.add((turn.role, turn.text))
                out.append(turn)
    if not any(t.role == USER for t in out):
        roots = [s for s in spans if s.kind == SpanKind.AGENT] or spans[:1]
        for span in roots[:1]:
            if span.input and span.input.strip():
                out.insert(0, Turn(USER, span.input.strip()))
            if span.output and span.output.strip() and not any(t.role == ASSISTANT for t in out):
                out.append(Turn(ASSISTANT, span.output.strip()))
    return out


def user_turns(trace: Trace) -> list[str]:
    return [t.text for t in turns(trace) if t.role == USER]


def user_turns_in(spans: list[Span]) -> list[str]:
    """``user_turns`` of spans given ``in_time_order``."""
    return [t.text for t in turns_in(spans) if t.role == USER]
