"""tau2-bench retail results documents -> neutral ``Run``s, each with a customer of its own.

One file per (policy, run): ``{policy}_{model}_run{N}.json`` holding ``simulations``. The
policy (``chloe_gpt4o``, ...) is the agent version; ``N`` is the run number (``trial`` is
always 0 in this corpus). A run succeeded when its reward is at least 1.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.corpus.real.identity import Originals, Pseudonyms, seeded_faker
from tools.corpus.real.model import Message, Run, ToolCall, truncate

AGENT_NAME = "retail-support-agent"
EVALUATION_NAME = "task_success"
# tau2's retail tools raise ValueError; the environment returns "Error: <message>" and marks
# the tool message with error=true.
TOOL_ERROR_TYPE = "ValueError"
_FILE_RE = re.compile(r"(?P<version>.+)_run(?P<run>\d+)")
_ZIP_RE = re.compile(r"\b\d{5}\b")


def read_tau2(src: Path, seed: int = 0) -> Iterator[Run]:
    """Every simulation of every results file under ``src``, in file order."""
    files = sorted(p for p in src.glob("*.json") if _FILE_RE.fullmatch(p.stem))
    if not files:
        raise FileNotFoundError(f"no tau2 results files (*_runN.json) in {src}")
    # Per task, every value a run's customer holds, real or synthetic: no run of a task may
    # draw one of them.
    taken: dict[str, set[str]] = {}
    for path in files:
        match = _FILE_RE.fullmatch(path.stem)
        assert match is not None
        document = json.loads(path.read_text(encoding="utf-8"))
        tasks = {str(t["id"]): t for t in document["tasks"]}
        model = document["info"]["agent_info"]["llm"]
        for simulation in document["simulations"]:
            task_id = str(simulation["task_id"])
            yield _run(
                simulation,
                tasks[task_id],
                taken=taken.setdefault(task_id, set()),
                version=match["version"],
                run_number=int(match["run"]),
                model=model,
                seed=seed,
            )


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _originals(simulation: dict[str, Any], task: dict[str, Any]) -> Originals:
    originals = Originals()
    instructions = (task.get("user_scenario") or {}).get("instructions") or {}
    for key in ("known_info", "reason_for_call", "task_instructions"):
        text = instructions.get(key)
        if isinstance(text, str):
            originals.add_text(text)
            if key == "known_info":
                originals.zips.update(_ZIP_RE.findall(text))
    for action in (task.get("evaluation_criteria") or {}).get("actions") or []:
        originals.add_json(action.get("arguments") or {})
    for message in simulation["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            parsed = _parsed(content) if message["role"] == "tool" else None
            if isinstance(parsed, dict | list):
                originals.add_json(parsed)
            else:
                originals.add_text(content)
        for call in message.get("tool_calls") or []:
            originals.add_json(call.get("arguments") or {})
    originals.finish()
    return originals


def _primary_user(task: dict[str, Any], simulation: dict[str, Any]) -> str | None:
    for action in (task.get("evaluation_criteria") or {}).get("actions") or []:
        user_id = (action.get("arguments") or {}).get("user_id")
        if isinstance(user_id, str):
            return user_id
    for message in simulation["messages"]:
        for call in message.get("tool_calls") or []:
            user_id = (call.get("arguments") or {}).get("user_id")
            if isinstance(user_id, str):
                return user_id
    return None


def _run(
    simulation: dict[str, Any],
    task: dict[str, Any],
    *,
    taken: set[str],
    version: str,
    run_number: int,
    model: str,
    seed: int,
) -> Run:
    task_id = str(simulation["task_id"])
    run_id = f"tau2/{version}/run{run_number}/task{task_id}"
    fake = seeded_faker(seed, run_id)
    pseudonyms = Pseudonyms(_originals(simulation, task), fake, taken)
    messages = tuple(_message(m, pseudonyms) for m in simulation["messages"])
    primary = _primary_user(task, simulation)
    user_id = pseudonyms.mapping.get(primary or "") or f"{fake.user_name()}_{fake.numerify('####')}"
    reward = float(simulation["reward_info"]["reward"])
    start = _time(simulation["start_time"])
    end = max(_time(simulation["end_time"]), *(m.time for m in messages))
    digest = hashlib.sha256(f"{seed}:{run_id}:session".encode()).digest()
    return Run(
        run_id=run_id,
        corpus="tau2",
        task=task_id,
        agent_name=AGENT_NAME,
        agent_version=version,
        run=run_number,
        reward=reward,
        outcome="success" if reward >= 1 else "failure",
        model=model,
        start=min(start, *(m.time for m in messages)),
        end=end,
        session_id=str(uuid.UUID(bytes=digest[:16])),
        user_id=user_id,
        messages=messages,
        provider="openai",
        evaluation_name=EVALUATION_NAME,
        identity=dict(pseudonyms.mapping),
        identity_kinds=dict(pseudonyms.kinds),
    )


def _message(message: dict[str, Any], pseudonyms: Pseudonyms) -> Message:
    role = message["role"]
    content = message.get("content")
    text = pseudonyms.apply(content) if isinstance(content, str) else None
    time = _time(message["timestamp"])
    if role == "tool":
        error = bool(message.get("error"))
        return Message(
            role="tool",
            text=truncate(text or ""),
            time=time,
            tool_call_id=message.get("id"),
            error_type=TOOL_ERROR_TYPE if error else None,
        )
    if role == "user":
        return Message(role="user", text=text, time=time)
    usage = message.get("usage") or {}
    raw = message.get("raw_data") or {}
    calls = tuple(
        ToolCall(
            id=call["id"],
            name=call["name"],
            arguments=json.dumps(pseudonyms.apply_json(call.get("arguments") or {})),
        )
        for call in message.get("tool_calls") or []
    )
    return Message(
        role="assistant",
        text=text,
        time=time,
        tool_calls=calls,
        # The opening greeting is fixed text: no model produced it.
        model_call=bool(usage or raw),
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        finish_reason=raw.get("finish_reason") or ("tool_calls" if calls else "stop"),
    )
