"""Derived features of a canonical trace: pure functions every stage may call.

Ingest computes them; redaction recomputes them from the redacted trace so that no
feature (the user's request, error messages) carries a value redaction removed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from datetime import datetime

from shared.conversation import user_turns
from shared.events import Span, SpanKind, SpanStatus, ToolCall, Trace, TraceFeatures
from shared.signals import (
    approval_outcome,
    is_approval_tool,
    is_correction,
    is_escalation_tool,
    is_frustrated,
    result_is_empty,
    result_is_error,
)
from shared.templating import template_message

# Tools whose effects outlive the run: a wrong call to one of these is a risk, not a typo.
SIDE_EFFECT_VERBS = (
    "refund",
    "cancel",
    "delete",
    "transfer",
    "send",
    "pay",
    "charge",
    "update",
    "create",
    "book",
    "close",
    "remove",
    "write",
    "post",
    "approve",
    "grant",
)

NEGATIVE_LABELS = {"negative", "thumbs_down", "bad", "incorrect", "fail", "failed", "wrong"}


def arguments_fingerprint(arguments: str | None) -> str:
    """Same arguments → same fingerprint, whatever the key order or whitespace."""
    if not arguments:
        return "-"
    try:
        canonical = json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = " ".join(arguments.split())
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def is_side_effecting(span: Span) -> bool:
    flagged = span.attributes.get("promote.tool.side_effecting")
    if isinstance(flagged, bool):
        return flagged
    name = span.tool_name or ""
    # Asking for permission is not an effect on the world, even from a tool named
    # "create_approval_request". A hand-off is: it spends a person's time.
    if is_approval_tool(name):
        return False
    return any(verb in name.lower() for verb in SIDE_EFFECT_VERBS)


def tool_failed(span: Span) -> bool:
    """A call failed when its span says so, or when its result reports an error (many
    tools return an error payload with a successful span)."""
    return span.status == SpanStatus.ERROR or result_is_error(span.tool_result)


def approval_of(span: Span) -> str | None:
    """The approval state a span records: ``promote.approval`` when set, else what an
    approval tool's result says."""
    if span.approval is not None:
        return span.approval
    if span.kind == SpanKind.TOOL and is_approval_tool(span.tool_name or span.name):
        return approval_outcome(span.tool_result, span.status == SpanStatus.ERROR)
    return None


def escalates(span: Span) -> bool:
    if span.escalated is not None:
        return span.escalated
    return span.kind == SpanKind.TOOL and is_escalation_tool(span.tool_name or span.name)


def _tool_corrections(calls: tuple[ToolCall, ...]) -> int:
    return sum(1 for a, b in itertools.pairwise(calls) if not a.ok and b.ok and a.name != b.name)


def root_span(trace: Trace) -> Span | None:
    ids = {s.span_id for s in trace.spans}
    roots = [s for s in trace.spans if s.parent_span_id is None or s.parent_span_id not in ids]
    return min(roots, key=lambda s: s.start_time) if roots else None


def is_complete(trace: Trace) -> bool:
    """A root that has ended, and every parent link resolvable within the trace."""
    ids = {s.span_id for s in trace.spans}
    root = root_span(trace)
    if root is None or root.end_time is None:
        return False
    return all(s.parent_span_id is None or s.parent_span_id in ids for s in trace.spans)


def derive_features(trace: Trace) -> TraceFeatures:
    spans = sorted(trace.spans, key=lambda s: (s.start_time, s.span_id))
    tool_spans = [s for s in spans if s.kind == SpanKind.TOOL]
    tool_calls = tuple(
        ToolCall(
            name=s.tool_name or s.name,
            arguments_fingerprint=arguments_fingerprint(s.tool_arguments),
            ok=not tool_failed(s),
            side_effecting=is_side_effecting(s),
        )
        for s in tool_spans
    )
    repeated = Counter((c.name, c.arguments_fingerprint) for c in tool_calls)
    loops = sum(n - 1 for n in repeated.values() if n > 1)
    retries = sum(1 for s in spans if (s.retry_attempt or 0) > 0)
    errors = [s for s in spans if s.status == SpanStatus.ERROR]
    error_types = tuple(sorted({s.error_type or "error" for s in errors}))
    error_templates = tuple(
        sorted({template_message(s.error_message) for s in errors if s.error_message})
    )
    approvals = [a for a in map(approval_of, spans) if a is not None]
    human = sum(1 for s in spans if s.kind == SpanKind.APPROVAL) + sum(
        1 for f in trace.feedback if f.source in {"human", "reviewer"}
    )
    guardrail_hits = sum(
        1
        for s in spans
        if s.guardrail_triggered or (s.kind == SpanKind.GUARDRAIL and s.status == SpanStatus.ERROR)
    )
    negative = sum(1 for f in trace.feedback if is_negative_feedback(f.score, f.label))
    positive = sum(1 for f in trace.feedback if is_positive_feedback(f.score, f.label))
    root = root_span(trace)
    latency_ms = 0.0
    if root is not None and root.end_time is not None:
        latency_ms = (root.end_time - root.start_time).total_seconds() * 1000.0
    cost = sum((s.usage.cost_usd or 0.0) for s in spans if s.usage is not None)
    tokens = sum(
        (s.usage.input_tokens or 0) + (s.usage.output_tokens or 0)
        for s in spans
        if s.usage is not None
    )
    said = user_turns(trace)
    return TraceFeatures(
        step_count=len(spans),
        tool_calls=tool_calls,
        error_types=error_types,
        error_templates=error_templates,
        retries=retries,
        loops=loops,
        human_interventions=human,
        approvals_requested=len(approvals),
        approvals_denied=sum(1 for a in approvals if a == "denied"),
        escalated=any(escalates(s) for s in spans),
        guardrail_hits=guardrail_hits,
        latency_ms=latency_ms,
        cost_usd=round(cost, 6),
        total_tokens=tokens,
        outcome=_outcome(trace, root, negative, positive),
        negative_feedback=negative,
        user_request=root.input if root is not None else None,
        user_turns=len(said),
        user_corrections=sum(1 for text in said if is_correction(text)),
        user_frustration=sum(1 for text in said if is_frustrated(text)),
        empty_results=sum(1 for s in tool_spans if result_is_empty(s.tool_result)),
        tool_corrections=_tool_corrections(tool_calls),
    )


POSITIVE_LABELS = {"positive", "thumbs_up", "good", "correct", "pass", "passed", "success"}


def is_positive_feedback(score: float | None, label: str | None) -> bool:
    if label is not None:
        return label.lower() in POSITIVE_LABELS
    return score is not None and score >= 0.5


def is_negative_feedback(score: float | None, label: str | None) -> bool:
    if label is not None and label.lower() in NEGATIVE_LABELS:
        return True
    return score is not None and score < 0.5


def _outcome(trace: Trace, root: Span | None, negative_feedback: int, positive: int) -> str:
    if trace.outcome:
        return "success" if trace.outcome.lower() in {"success", "resolved", "ok"} else "failure"
    if root is not None and root.status == SpanStatus.ERROR:
        return "failure"
    if negative_feedback:
        return "failure"
    if root is not None and root.status == SpanStatus.OK:
        return "success"
    # An online evaluator's passing grade is how most production runs learn they worked:
    # instrumentations leave the root's status unset.
    if positive:
        return "success"
    return "unknown"


def started_at(trace: Trace) -> datetime:
    """Event time of a trace: windows, days and budgets use it, never processing time."""
    return min(s.start_time for s in trace.spans)
