"""The events that flow between stages, defined once.

Every event is frozen, named in the past tense, carries ``schema_version``, the
``trace_id`` and the chain of stages it passed. The canonical ``Trace`` is also the
native input format (see docs/native-trace.schema.json): teams without OpenTelemetry
send exactly this shape.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SpanKind(StrEnum):
    AGENT = "agent"
    LLM = "llm"
    TOOL = "tool"
    RETRIEVAL = "retrieval"
    GUARDRAIL = "guardrail"
    APPROVAL = "approval"
    EVALUATOR = "evaluator"
    OTHER = "other"


class SpanStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    UNSET = "unset"


class Document(Frozen):
    id: str | None = None
    content: str | None = None
    score: float | None = None


class Usage(Frozen):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


class Span(Frozen):
    span_id: str
    parent_span_id: str | None = None
    name: str
    kind: SpanKind = SpanKind.OTHER
    start_time: datetime
    end_time: datetime | None = None
    status: SpanStatus = SpanStatus.UNSET
    error_type: str | None = None
    error_message: str | None = None
    input: str | None = None
    output: str | None = None
    model: str | None = None
    tool_name: str | None = None
    tool_arguments: str | None = None
    tool_result: str | None = None
    documents: tuple[Document, ...] = ()
    usage: Usage | None = None
    # The project's own namespace (promote.*): what no standard covers.
    approval: Literal["requested", "granted", "denied"] | None = None
    escalated: bool | None = None
    retry_attempt: int | None = None
    guardrail_triggered: bool | None = None
    # Raw attributes as received, kept beside the normalised fields.
    attributes: dict[str, Any] = Field(default_factory=dict)


class Feedback(Frozen):
    source: str = "unknown"
    name: str
    score: float | None = None
    label: str | None = None
    explanation: str | None = None


class Trace(Frozen):
    trace_id: str = Field(min_length=1, max_length=64)
    session_id: str | None = None
    user_id: str | None = None
    agent_name: str | None = None
    agent_version: str | None = None
    # Business outcome when the agent reports one (promote.outcome): success, failure, ...
    outcome: str | None = None
    spans: tuple[Span, ...] = Field(min_length=1)
    feedback: tuple[Feedback, ...] = ()
    resource: dict[str, Any] = Field(default_factory=dict)


class ToolCall(Frozen):
    name: str
    arguments_fingerprint: str
    ok: bool
    side_effecting: bool = False


class TraceFeatures(Frozen):
    """Derived from a Trace by a pure function in ingest; read by every later stage."""

    step_count: int
    tool_calls: tuple[ToolCall, ...] = ()
    error_types: tuple[str, ...] = ()
    error_templates: tuple[str, ...] = ()
    retries: int = 0
    loops: int = 0
    human_interventions: int = 0
    approvals_requested: int = 0
    approvals_denied: int = 0
    escalated: bool = False
    guardrail_hits: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    total_tokens: int = 0
    outcome: Literal["success", "failure", "unknown"] = "unknown"
    negative_feedback: int = 0
    user_request: str | None = None
    # Read from generic telemetry (see shared.signals): what users said and tools returned.
    user_turns: int = 0
    user_corrections: int = 0
    user_frustration: int = 0
    empty_results: int = 0
    # A failed call followed by a different tool that worked: the wrong tool, then the right.
    tool_corrections: int = 0


class StageStamp(Frozen):
    stage: str
    version: str
    at: datetime


class Envelope(Frozen):
    schema_version: int = SCHEMA_VERSION
    trace_id: str
    stages: tuple[StageStamp, ...] = ()


class TraceNormalized(Envelope):
    trace: Trace
    features: TraceFeatures
    complete: bool = True
    # Ingest cut the longest strings to fit the Kafka size limit (README "Large traces").
    truncated: bool = False


class PatternTrend(Frozen):
    """The pattern against its own past: its share of the agent's traffic in the recent
    window against the baseline window, and its rescue load per occurrence likewise."""

    rising: bool
    rate_ratio: float
    p_value: float
    recent_share: float
    baseline_share: float
    recent_days: int
    baseline_days: int
    since: date
    rescue_rising: bool = False
    rescue_ratio: float = 0.0
    rescue_p_value: float = 1.0


class PatternInfo(Frozen):
    pattern_id: str
    fingerprint_version: int
    fingerprint: str
    occurrences: int
    distinct_sessions: int
    distinct_users: int
    distinct_days: int
    agent_versions: tuple[str, ...] = ()
    first_seen: datetime
    last_seen: datetime
    count_24h: int
    count_7d: int
    covered_by_fixture: bool = False
    trend: PatternTrend | None = None


class MetricBaseline(Frozen):
    """One measure of an agent's own traffic, on a log scale (latency, tokens and cost
    are skewed: a geometric mean and a spread of ratios describe them)."""

    traces: int
    log_mean: float
    log_sd: float


class AgentBaseline(Frozen):
    """What is usual for an agent, learned from its traffic by dedupe."""

    agent: str
    measures: dict[str, MetricBaseline] = Field(default_factory=dict)


class TrajectoryReport(Frozen):
    """A run's tool path against the successful runs of the same agent and request."""

    reference_pattern: str
    reference_runs: int
    median_successful_steps: float
    steps: int
    extra_steps: float
    loops: int = 0
    blind_retries: int = 0
    late_correction_step: int | None = None
    # "a<b": every successful run did a before b; this one did b first.
    order_breaks: tuple[str, ...] = ()
    summary: str = ""


class TraceDeduped(TraceNormalized):
    pattern: PatternInfo
    baseline: AgentBaseline | None = None
    trajectory: TrajectoryReport | None = None


class RedactionReport(Frozen):
    counts: dict[str, int] = Field(default_factory=dict)
    strings_scanned: int = 0
    passed: bool = True


class TraceRedacted(TraceDeduped):
    redaction: RedactionReport


class Decision(StrEnum):
    PROMOTE = "promote"
    HOLD = "hold"
    REJECT = "reject"


# The seven P.R.O.M.O.T.E. criteria, in the filter's order: the keys of every decision's
# scores, for scoring, review and reports alike.
CRITERIA = (
    "patterned",
    "risk_bearing",
    "operationally_costly",
    "missed_offline",
    "observable",
    "teachable",
    "enduring",
)


class CriterionScore(Frozen):
    score: float = Field(ge=0.0, le=1.0)
    evidence: dict[str, Any] = Field(default_factory=dict)


class TraceScored(TraceRedacted):
    scores: dict[str, CriterionScore]
    total: float
    decision: Decision
    reason: str
    policy_version: str


class FixtureIndexed(Frozen):
    """Latest coverage of one pattern, on the compacted fixtures.index topic."""

    schema_version: int = SCHEMA_VERSION
    pattern_id: str
    fixture_ids: tuple[str, ...]
    kinds: tuple[str, ...]
    version: int
    policy_version: str
    at: datetime


class DeadLettered(Frozen):
    """A permanent failure: a reference to the input, never its content (it may hold PII)."""

    schema_version: int = SCHEMA_VERSION
    stage: str
    error_class: str
    message: str
    trace_id: str | None = None
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    payload_sha256: str
    payload_bytes: int
    at: datetime


class Verdict(StrEnum):
    PROMOTE = "promote"
    REJECT = "reject"
    SNOOZE = "snooze"
    # A fixture taken out of the suite by hand (``fixture_id``); ``trace_ids`` names the
    # trace its current version came from.
    RETIRE = "retire"


class ExpectedBehaviour(Frozen):
    """What a reviewer says the agent should have done: the correct answer, the tool calls
    that should have happened, and what must not happen."""

    answer: str | None = None
    tool_calls: tuple[str, ...] = ()
    must_not: tuple[str, ...] = ()


class CaseReviewed(Frozen):
    """A person's verdict on held cases of one pattern, on traces.reviewed keyed by pattern
    id. ``verdict_id`` is a digest of the verdict's content: a resubmitted or redelivered
    verdict is recognised as one. A promotion carries the case it promotes (redacted, as
    scoring held it), so the fixture writer needs nothing but this event."""

    schema_version: int = SCHEMA_VERSION
    verdict_id: str
    pattern_id: str
    trace_ids: tuple[str, ...] = Field(min_length=1)
    verdict: Verdict
    whole_pattern: bool = False
    kinds: tuple[str, ...] = ()
    expected: ExpectedBehaviour | None = None
    reason: str = ""
    snoozed_until: datetime | None = None
    reviewer: str
    at: datetime
    case: TraceScored | None = None
    fixture_id: str | None = None


E = TypeVar("E", bound=Envelope)


def advance(event: Envelope, to: type[E], stamp: StageStamp, **fields: Any) -> E:
    """The next stage's event: everything the input carried, this stage's additions, and
    one more stamp on the chain. Nested values are reused, not re-validated."""
    return to(**{**dict(event), **fields, "stages": (*event.stages, stamp)})
