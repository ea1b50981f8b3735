"""Dedupe's functional core: pattern identity and what to forward.

Fingerprint v1 is structural: agent, the tool/retrieval steps with repeats collapsed
(model calls only where they failed), error types, templated error messages, the
approval/escalation shape and the outcome. A new version must never silently merge
patterns of an old one, so the version is part of the pattern id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from shared.events import SpanKind, SpanStatus, Trace, TraceFeatures
from shared.features import started_at

FINGERPRINT_VERSION = 1


@dataclass(frozen=True)
class Observation:
    trace_id: str
    content_sha256: str
    pattern_id: str
    fingerprint: str
    fingerprint_version: int
    seen_at: datetime
    # (dimension, value) pairs counted as distinct per pattern; ids are digests.
    members: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Recorded:
    first_delivery: bool
    already_forwarded: bool


def collapsed_steps(trace: Trace) -> tuple[str, ...]:
    steps: list[str] = []
    for span in sorted(trace.spans, key=lambda s: (s.start_time, s.span_id)):
        if span.kind == SpanKind.TOOL:
            step = f"tool:{span.tool_name or span.name}"
        elif span.kind == SpanKind.RETRIEVAL:
            step = "retrieval"
        elif span.kind == SpanKind.LLM and span.status == SpanStatus.ERROR:
            step = "llm!"
        elif span.kind in (SpanKind.GUARDRAIL, SpanKind.APPROVAL) or span.approval is not None:
            step = f"{span.kind.value}:{span.approval or ('hit' if span.guardrail_triggered else 'pass')}"
        else:
            continue
        if span.status == SpanStatus.ERROR and not step.endswith("!"):
            step += "!"
        if not steps or steps[-1] != step:
            steps.append(step)
    return tuple(steps)


def fingerprint(trace: Trace, features: TraceFeatures) -> str:
    parts = [
        f"v{FINGERPRINT_VERSION}",
        f"agent={trace.agent_name or '-'}",
        "steps=" + ">".join(collapsed_steps(trace)),
        "errors=" + ",".join(features.error_types),
        "messages=" + "|".join(features.error_templates),
        f"approval={features.approvals_requested}/{features.approvals_denied}",
        f"escalated={features.escalated}",
        f"outcome={features.outcome}",
    ]
    return "\n".join(parts)


def pattern_id_of(fingerprint_text: str) -> str:
    return f"p{FINGERPRINT_VERSION}-" + hashlib.sha256(fingerprint_text.encode()).hexdigest()[:20]


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def content_sha256(trace: Trace) -> str:
    return hashlib.sha256(trace.model_dump_json().encode()).hexdigest()


def observe(trace: Trace, features: TraceFeatures) -> Observation:
    text = fingerprint(trace, features)
    seen_at = started_at(trace)
    members: list[tuple[str, str]] = [("day", seen_at.date().isoformat())]
    if trace.session_id:
        members.append(("session", digest(trace.session_id)))
    if trace.user_id:
        members.append(("user", digest(trace.user_id)))
    if trace.agent_version:
        members.append(("agent_version", trace.agent_version))
    return Observation(
        trace_id=trace.trace_id,
        content_sha256=content_sha256(trace),
        pattern_id=pattern_id_of(text),
        fingerprint=text,
        fingerprint_version=FINGERPRINT_VERSION,
        seen_at=seen_at,
        members=tuple(members),
    )


def should_forward(recorded: Recorded, covered: bool) -> bool:
    """Forward what can still teach something: not a redelivery already passed on, and
    not a pattern the suite already covers (its statistics are updated all the same)."""
    if recorded.already_forwarded:
        return False
    return not covered
