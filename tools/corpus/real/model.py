"""Neutral run objects: what a corpus says happened, before any telemetry convention.

The readers (``tau2``, ``wiki``) turn each corpus's own format into ``Run``s; ``otlp`` emits a
``Run`` as one OTLP trace. The evaluation's baselines read these objects too (the user turns,
the tool-name sequence), never the product's decoded traces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
Outcome = Literal["success", "failure"]

# Tool results longer than this are cut, in the slice and in every full conversion alike: a
# wiki page section runs to 13k characters, and each result is carried twice in a trace (the
# tool span and the next model call's input).
MAX_TOOL_RESULT_CHARS = 3000
TRUNCATION_MARKER = "\n[... truncated: {n} more characters]"


def truncate(text: str, limit: int = MAX_TOOL_RESULT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(n=len(text) - limit)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model produced it


@dataclass(frozen=True)
class Message:
    role: Role
    text: str | None
    # When the message was complete: a user turn sent, a model response received, a tool
    # result returned.
    time: datetime
    tool_calls: tuple[ToolCall, ...] = ()
    # Tool results: the call they answer, and whether the tool failed (raised).
    tool_call_id: str | None = None
    error_type: str | None = None
    # Assistant messages: whether a model call produced it (a fixed greeting is not one),
    # its token usage and finish reason when the corpus has them.
    model_call: bool = True
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Run:
    """One agent run with its outcome and the ground-truth group it belongs to."""

    run_id: str
    corpus: Literal["tau2", "wiki"]
    task: str
    agent_name: str
    agent_version: str
    run: int
    reward: float
    outcome: Outcome
    model: str
    start: datetime
    end: datetime
    session_id: str
    user_id: str
    messages: tuple[Message, ...]
    system_instructions: str | None = None
    provider: str | None = None
    evaluation_name: str = "evaluation"
    # Original identity value -> the run's own synthetic value (empty where none was needed).
    identity: dict[str, str] = field(default_factory=dict)
    # Original identity value -> its kind (person, user_id, email, order, payment, ...).
    identity_kinds: dict[str, str] = field(default_factory=dict)

    def user_turns(self) -> list[str]:
        """The user's messages the agent saw: those a model call came after (a closing
        message nobody answered reaches no model call, hence no span)."""
        last_call = max(
            (i for i, m in enumerate(self.messages) if m.role == "assistant" and m.model_call),
            default=-1,
        )
        return [m.text for m in self.messages[:last_call] if m.role == "user" and m.text]

    def tool_names(self) -> list[str]:
        return [c.name for m in self.messages for c in m.tool_calls]

    def tool_results(self) -> dict[str, Message]:
        return {m.tool_call_id: m for m in self.messages if m.role == "tool" and m.tool_call_id}


@dataclass(frozen=True)
class ConvertedRun:
    """A run, its OTLP JSON document (one ExportTraceServiceRequest, one trace) and labels."""

    run: Run
    trace_id: str
    convention: Literal["genai", "openinference"]
    document: dict[str, Any]

    def label(self) -> dict[str, Any]:
        run = self.run
        return {
            "trace_id": self.trace_id,
            "corpus": run.corpus,
            "task": run.task,
            "outcome": run.outcome,
            "agent_version": run.agent_version,
            "run": run.run,
            "reward": run.reward,
            "start_time": run.start.isoformat(),
            "run_id": run.run_id,
            "convention": self.convention,
        }
