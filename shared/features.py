"""Derived features of a canonical trace: pure functions every stage may call.

Ingest computes them; redaction recomputes them from the redacted trace so that no
feature (the user's request, error messages) carries a value redaction removed.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import operator
from collections import Counter
from datetime import datetime

from shared.conversation import in_time_order, user_turns_in
from shared.events import Span, SpanKind, SpanStatus, ToolCall, Trace, TraceFeatures, Usage
from shared.signals import (
    approval_outcome,
    is_approval_tool,
    is_correction,
    is_escalation_tool,
    is_frustrated,
    result_is_error,
    result_verdicts,
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


# json.dumps(sort_keys=True, separators=(",", ":")), without building an encoder per call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def arguments_fingerprint(arguments: str | None) -> str:
    """Same arguments → same fingerprint, whatever the key order or whitespace."""
    if not arguments:
        return "-"
    try:
        canonical = _CANONICAL_JSON.encode(json.loads(arguments))
    except ValueError:
        canonical = " ".join(arguments.split())
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Tool names repeat across spans and traces: what a name says is memoised, as in
# shared.signals (a longer name than a tool's is read, not kept).
_MEMO_NAME_CHARS = 256


def _names_side_effect(name: str) -> bool:
    # Asking for permission is not an effect on the world, even from a tool named
    # "create_approval_request". A hand-off is: it spends a person's time.
    if is_approval_tool(name):
        return False
    lowered = name.lower()
    return any(verb in lowered for verb in SIDE_EFFECT_VERBS)


_names_side_effect_memo = functools.lru_cache(maxsize=4096)(_names_side_effect)


def is_side_effecting(span: Span) -> bool:
    flagged = span.attributes.get("promote.tool.side_effecting")
    if isinstance(flagged, bool):
        return flagged
    name = span.tool_name or ""
    if len(name) > _MEMO_NAME_CHARS:
        return _names_side_effect(name)
    return _names_side_effect_memo(name)


def tool_failed(span: Span, result_reports_error: bool | None = None) -> bool:
    """A call failed when its span says so, or when its result reports an error (many
    tools return an error payload with a successful span). ``result_reports_error`` is
    ``result_is_error`` of the span's result when the caller has it already."""
    if span.status == SpanStatus.ERROR:
        return True
    if result_reports_error is None:
        return result_is_error(span.tool_result)
    return result_reports_error


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
    return _root_among(trace.spans, {s.span_id for s in trace.spans})


def _root_among(spans: tuple[Span, ...], ids: set[str]) -> Span | None:
    roots = [s for s in spans if s.parent_span_id is None or s.parent_span_id not in ids]
    return min(roots, key=_START_TIME) if roots else None


_START_TIME = operator.attrgetter("start_time")


def is_complete(trace: Trace) -> bool:
    """A root that has ended, and every parent link resolvable within the trace."""
    ids = {s.span_id for s in trace.spans}
    root = _root_among(trace.spans, ids)
    if root is None or root.end_time is None:
        return False
    return all(s.parent_span_id is None or s.parent_span_id in ids for s in trace.spans)


def derive_features(trace: Trace) -> TraceFeatures:
    spans = in_time_order(trace.spans)
    # One pass over the spans for what each one counts towards: a pass per feature cost
    # more than the counting (ingest and redaction run this on every trace).
    tool_spans: list[Span] = []
    errors: list[Span] = []
    approvals: list[str] = []
    usages: list[Usage] = []
    retries = approval_spans = guardrail_hits = 0
    escalated = False
    for s in spans:
        kind = s.kind
        failed = s.status == SpanStatus.ERROR
        if kind == SpanKind.TOOL:
            tool_spans.append(s)
        elif kind == SpanKind.APPROVAL:
            approval_spans += 1
        if failed:
            errors.append(s)
        if (s.retry_attempt or 0) > 0:
            retries += 1
        if s.guardrail_triggered or (kind == SpanKind.GUARDRAIL and failed):
            guardrail_hits += 1
        approval = approval_of(s)
        if approval is not None:
            approvals.append(approval)
        if s.usage is not None:
            usages.append(s.usage)
        escalated = escalated or escalates(s)
    # (reports an error, reports nothing) of each call's result, from one parse of it.
    verdicts = [result_verdicts(s.tool_result) for s in tool_spans]
    tool_calls = tuple(
        ToolCall(
            name=s.tool_name or s.name,
            arguments_fingerprint=arguments_fingerprint(s.tool_arguments),
            ok=not tool_failed(s, error),
            side_effecting=is_side_effecting(s),
        )
        for s, (error, _) in zip(tool_spans, verdicts, strict=True)
    )
    repeated = Counter((c.name, c.arguments_fingerprint) for c in tool_calls)
    loops = sum(n - 1 for n in repeated.values() if n > 1)
    error_types = tuple(sorted({s.error_type or "error" for s in errors}))
    error_templates = tuple(
        sorted({template_message(s.error_message) for s in errors if s.error_message})
    )
    human = approval_spans + sum(1 for f in trace.feedback if f.source in {"human", "reviewer"})
    negative = sum(1 for f in trace.feedback if is_negative_feedback(f.score, f.label))
    positive = sum(1 for f in trace.feedback if is_positive_feedback(f.score, f.label))
    root = root_span(trace)
    latency_ms = 0.0
    if root is not None and root.end_time is not None:
        latency_ms = (root.end_time - root.start_time).total_seconds() * 1000.0
    cost = sum((u.cost_usd or 0.0) for u in usages)
    tokens = sum((u.input_tokens or 0) + (u.output_tokens or 0) for u in usages)
    said = user_turns_in(spans)
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
        escalated=escalated,
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
        empty_results=sum(1 for _, empty in verdicts if empty),
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
