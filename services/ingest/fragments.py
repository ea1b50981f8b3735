"""Fragments of one trace folded into one: the rule a repeated span follows."""

from __future__ import annotations

from typing import Any

from shared.events import Feedback, Span, Trace


def merge_by_trace_id(traces: list[Trace]) -> list[Trace]:
    """Native payloads may repeat a trace id; fold them the way assembly merges fragments."""
    order: dict[str, list[Trace]] = {}
    for trace in traces:
        order.setdefault(trace.trace_id, []).append(trace)
    return [parts[0] if len(parts) == 1 else merge_fragments(parts) for parts in order.values()]


def supersedes(span: Span, known: Span | None) -> bool:
    # The first copy of a span wins, except that a finished copy replaces an unfinished one.
    return known is None or (known.end_time is None and span.end_time is not None)


def merge_fragments(parts: list[Trace]) -> Trace:
    first = parts[0]
    spans: dict[str, Span] = {}
    feedback: list[Feedback] = []
    resource: dict[str, Any] = {}
    update: dict[str, Any] = {}
    for part in parts:
        for span in part.spans:
            if supersedes(span, spans.get(span.span_id)):
                spans[span.span_id] = span
        # Feedback repeated by a resent fragment counts once; repeats within one part are kept.
        # A set of what earlier parts held: a list made this quadratic (issue 13).
        earlier = set(feedback)
        feedback.extend(f for f in part.feedback if f not in earlier)
        for key, value in part.resource.items():
            resource.setdefault(key, value)
        for name in ("session_id", "user_id", "agent_name", "agent_version", "outcome"):
            if update.get(name) is None:
                update[name] = getattr(part, name)
    update.update(spans=tuple(spans.values()), feedback=tuple(feedback), resource=resource)
    return first.model_copy(update=update)
