"""wiki-search environment results -> neutral ``Run``s.

One JSONL file per model (``{model}.results.jsonl``), one row per question (``example_id``),
each model one run per question. The model (``model`` in ``{model}.metadata.json``) is the
agent version. Rows carry no timestamps,
only ``generation_ms``: each model gets its own day (2026-10-01 plus the model's index in
name order), question ``example_id`` starts ``example_id * 10`` minutes into that day, and
``generation_ms`` is spread over the steps (a model call weighs four, a tool call one).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tools.corpus.real.identity import seeded_faker
from tools.corpus.real.model import Message, Run, ToolCall, truncate

AGENT_NAME = "wiki-research-agent"
EVALUATION_NAME = "answer_correctness"
FIRST_DAY = datetime(2026, 10, 1, tzinfo=UTC)
QUESTION_SPACING = timedelta(minutes=10)
MODEL_WEIGHT, TOOL_WEIGHT = 4, 1
_SUFFIX = ".results.jsonl"

# The environment returns a raised exception's str() as the tool result; its form says which.
_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Invalid section_id format\b"), "ValueError"),
    (re.compile(r"Section not found: "), "ValueError"),
    (
        re.compile(r".*\(\) (?:got an unexpected keyword argument|missing \d+ required)"),
        "TypeError",
    ),
    (re.compile(r"'[^'\n]*'$"), "KeyError"),  # str(KeyError('x')) is "'x'"
    (re.compile(r"Error\b"), "ToolError"),
)


def tool_error_type(result: str) -> str | None:
    for pattern, error_type in _ERRORS:
        if pattern.match(result):
            return error_type
    return None


def model_names(src: Path) -> list[str]:
    names = sorted(p.name.removesuffix(_SUFFIX) for p in src.glob(f"*{_SUFFIX}"))
    if not names:
        raise FileNotFoundError(f"no wiki-search results files (*{_SUFFIX}) in {src}")
    return names


def read_wiki(src: Path, seed: int = 0) -> Iterator[Run]:
    """Every row of every model's results file under ``src``, model by model."""
    for index, stem in enumerate(model_names(src)):
        metadata = src / f"{stem}.metadata.json"
        model = stem
        if metadata.exists():
            model = json.loads(metadata.read_text(encoding="utf-8")).get("model") or stem
        with (src / f"{stem}{_SUFFIX}").open(encoding="utf-8") as rows:
            for line in rows:
                if line.strip():
                    yield _run(json.loads(line), model, index, seed)


def _provider(model: str) -> str | None:
    return "openai" if model.startswith(("gpt-", "o1", "o3", "o4")) else None


def _calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    calls = []
    for raw in message.get("tool_calls") or []:
        call = json.loads(raw) if isinstance(raw, str) else raw
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments or {})
        calls.append(ToolCall(id=call["id"], name=function["name"], arguments=arguments))
    return tuple(calls)


def _run(row: dict[str, Any], model: str, model_index: int, seed: int) -> Run:
    example_id = str(row["example_id"])
    run_id = f"wiki/{model}/q{example_id}"
    start = FIRST_DAY + timedelta(days=model_index) + int(row["example_id"]) * QUESTION_SPACING
    system = [m["content"] for m in row["prompt"] if m["role"] == "system" and m.get("content")]
    prompt = [m for m in row["prompt"] if m["role"] != "system"]
    completion = row["completion"]

    weights = sum(
        MODEL_WEIGHT if m["role"] == "assistant" else TOOL_WEIGHT
        for m in completion
        if m["role"] in ("assistant", "tool")
    )
    unit = timedelta(milliseconds=float(row["generation_ms"]) / max(weights, 1))

    messages: list[Message] = [
        Message(role="user", text=m.get("content") or "", time=start) for m in prompt
    ]
    now = start
    pending: list[str] = []
    for raw in completion:
        if raw["role"] == "assistant":
            now += unit * MODEL_WEIGHT
            calls = _calls(raw)
            pending = [c.id for c in calls]
            messages.append(
                Message(
                    role="assistant",
                    text=raw.get("content") or None,
                    time=now,
                    tool_calls=calls,
                    finish_reason="tool_calls" if calls else "stop",
                )
            )
        elif raw["role"] == "tool":
            now += unit * TOOL_WEIGHT
            result = raw.get("content") or ""
            messages.append(
                Message(
                    role="tool",
                    text=truncate(result),
                    time=now,
                    # Results follow their calls in order; the rows carry no call ids.
                    tool_call_id=pending.pop(0) if pending else None,
                    error_type=tool_error_type(result),
                )
            )
        else:
            messages.append(Message(role="user", text=raw.get("content") or "", time=now))

    fake = seeded_faker(seed, run_id)
    digest = hashlib.sha256(f"{seed}:{run_id}:session".encode()).digest()
    reward = float(row["reward"])
    return Run(
        run_id=run_id,
        corpus="wiki",
        task=example_id,
        agent_name=AGENT_NAME,
        agent_version=model,
        run=1,
        reward=reward,
        outcome="success" if reward >= 1 else "failure",
        model=model,
        start=start,
        end=max(now, start + timedelta(milliseconds=float(row["generation_ms"]))),
        session_id=str(uuid.UUID(bytes=digest[:16])),
        user_id=f"{fake.user_name()}{fake.numerify('###')}",
        messages=tuple(messages),
        system_instructions="\n".join(system) or None,
        provider=_provider(model),
        evaluation_name=EVALUATION_NAME,
    )
