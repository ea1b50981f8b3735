"""Exports: stored fixtures → the files offline suites consume directly.

Pure functions: rows in, ``{relative path: file content}`` out. The same rows give
byte-identical files whatever order they arrive in, so an export can be committed and
diffed. Formats:

- ``jsonl``: the native fixtures, one per line, described by ``docs/fixture.schema.json``.
- ``pytest``: a test module calling a user-supplied agent adapter (see ``ADAPTER_MODULE``).
- ``promptfoo``: a list of promptfoo test cases, for ``tests: file://promptfoo_tests.yaml``.
- ``deepeval``: goldens for ``EvaluationDataset().add_goldens_from_json_file(path)``
  with its default key names.
- ``openai-evals``: samples in the OpenAI evals format (``input`` messages, ``ideal``).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import keyword
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
import yaml

from services.fixture_writer.logic import FixtureKind, body_digest

NATIVE_SCHEMA_VERSION = 1
GENERATOR = "Trace Promoter (promote export)"

# The files an export writes are kept as templates (templates/*.j2), filled by Jinja with
# values only. The output is Python, JavaScript and YAML, so nothing is escaped; a template's
# last newline is kept, and a value left unfilled is an error rather than an empty string.
_JINJA = jinja2.Environment(
    autoescape=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined
)


@functools.cache
def _template(name: str) -> jinja2.Template:
    source = importlib.resources.files("services.fixture_writer") / "templates" / name
    return _JINJA.from_string(source.read_text(encoding="utf-8"))


def _render(name: str, **values: Any) -> str:
    return _template(name).render(
        generator=GENERATOR, adapter_env=ADAPTER_ENV, adapter_module=ADAPTER_MODULE, **values
    )


@dataclass(frozen=True)
class ExportRow:
    """The current version of one active fixture, with the evidence that promoted it."""

    fixture_id: str
    kind: str
    version: int
    body: Mapping[str, Any]
    created_at: datetime
    source_trace_ids: tuple[str, ...] = ()
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    occurrences: int | None = None
    scores: Mapping[str, Any] = field(default_factory=dict)
    policy_version: str | None = None
    reason: str | None = None
    body_sha256: str | None = None  # as stored; computed from the body when not given

    @property
    def ref(self) -> str:
        return f"{self.fixture_id}@v{self.version}"


Exporter = Callable[[Iterable[ExportRow]], dict[str, str]]


def _ordered(rows: Iterable[ExportRow]) -> list[ExportRow]:
    return sorted(rows, key=lambda r: (r.fixture_id, r.version))


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _json_line(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _arguments(raw: Any) -> Any:
    """Tool arguments as stored (a JSON string from the trace) → the JSON value, when it is one."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def forbidden_calls(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fixture's forbidden calls, parsed and without repeats (a loop repeats the call)."""
    seen: set[str] = set()
    calls = []
    for call in (body.get("tool_assertions") or {}).get("forbidden_calls", []):
        parsed = {"tool": call["tool"], "arguments": _arguments(call.get("arguments"))}
        key = _json_line(parsed)
        if key not in seen:
            seen.add(key)
            calls.append(parsed)
    return calls


def _documents(body: Mapping[str, Any]) -> list[str]:
    return [d["content"] for d in body.get("context", {}).get("documents", []) if d.get("content")]


def _provenance(row: ExportRow) -> dict[str, Any]:
    body = row.body
    return {
        "fixture_id": row.fixture_id,
        "version": row.version,
        "kind": row.kind,
        "pattern_id": body.get("pattern_id"),
        "source_trace_id": body.get("source_trace_id"),
        "policy_version": body.get("policy_version"),
        "criteria": list(body.get("criteria", [])),
    }


# -- jsonl ------------------------------------------------------------------------------


def native_fixture(row: ExportRow) -> dict[str, Any]:
    """One line of the JSONL export, as ``docs/fixture.schema.json`` describes it."""
    return {
        "schema_version": NATIVE_SCHEMA_VERSION,
        "fixture_id": row.fixture_id,
        "kind": row.kind,
        "version": row.version,
        "created_at": _iso(row.created_at),
        "body_sha256": row.body_sha256 or body_digest(dict(row.body)),
        "body": row.body,
        "evidence": {
            "source_trace_ids": list(row.source_trace_ids),
            "first_seen": _iso(row.first_seen),
            "last_seen": _iso(row.last_seen),
            "occurrences": row.occurrences,
            "scores": row.scores,
            "policy_version": row.policy_version,
            "reason": row.reason,
        },
    }


def export_jsonl(rows: Iterable[ExportRow]) -> dict[str, str]:
    lines = [_json_line(native_fixture(r)) + "\n" for r in _ordered(rows)]
    return {"fixtures.jsonl": "".join(lines)}


# -- pytest -----------------------------------------------------------------------------

ADAPTER_MODULE = "trace_promoter_adapter"
ADAPTER_ENV = "PROMOTE_AGENT_ADAPTER"


def _identifier(fixture_id: str, taken: set[str]) -> str:
    name = "test_" + (re.sub(r"\W+", "_", fixture_id).strip("_").lower() or "fixture")
    candidate, n = name, 2
    while candidate in taken or keyword.iskeyword(candidate):
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _docstring(text: str) -> str:
    # Fixture text is redacted production content: anything may be in it, and it must not
    # end the string literal or smuggle a control character into the module.
    clean = "".join(c if c.isprintable() or c == "\n" else " " for c in text)
    return '"""' + clean.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') + '\n    """'


def _checks(body: Mapping[str, Any]) -> list[str]:
    trajectory = body.get("trajectory") or {}
    checks = []
    if body.get("tool_assertions"):
        checks.append("expected tools called, forbidden calls not made")
    checks.append(f"at most {trajectory.get('max_steps')} steps")
    if trajectory.get("must_escalate"):
        checks.append("escalates to a human")
    if trajectory.get("max_repeats_of_a_call") is not None:
        checks.append(f"no call repeated more than {trajectory['max_repeats_of_a_call']} time(s)")
    if body.get("label") == "negative":
        checks.append("does not reproduce the output labelled negative")
    if (body.get("review") or {}).get("answer"):
        checks.append("gives the answer the reviewer wrote")
    return checks


def _reviewed_by(review: Mapping[str, Any]) -> str:
    return f"Reviewed by {review['reviewed_by']} (verdict {review['verdict_id']})."


def _test_docstring(row: ExportRow) -> str:
    body = row.body
    lines = [
        f"{row.ref}: {row.kind}, pattern {body.get('pattern_id')}.",
        "",
        f"Source trace {body.get('source_trace_id')}, policy {body.get('policy_version')}, "
        f"criteria: {', '.join(body.get('criteria', [])) or 'none'}.",
        f"Why promoted: {body.get('reason')}",
        *([_reviewed_by(body["review"])] if body.get("review") else []),
        "",
        f"Checked: {'; '.join(_checks(body))}.",
    ]
    behaviour = [
        ("Expected behaviour", body.get("expected_behaviour", [])),
        ("Forbidden behaviour", body.get("forbidden_behaviour", [])),
    ]
    if any(items for _, items in behaviour):
        covered = (
            "the forbidden-call check above covers the tool-call items"
            if body.get("tool_assertions")
            else "the pattern's tool_use_assertion fixture checks its tool calls"
        )
        lines += ["", f"Needs a grader, not checked here ({covered}):"]
        for title, items in behaviour:
            lines += [f"{title}:", *(f"- {item}" for item in items)] if items else []
    wrapped = []
    for line in lines:
        wrapped += textwrap.wrap(line, 92, subsequent_indent="  ") or [""]
    return _docstring("\n".join(f"    {w}" if w else "" for w in wrapped).lstrip())


def _json_literal(value: Any) -> str:
    # JSON separates every string from the next, so three quotes in a row cannot occur and
    # the text is safe inside a raw triple-quoted literal.
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)
    assert '"""' not in text
    return text


def export_pytest(rows: Iterable[ExportRow]) -> dict[str, str]:
    ordered = _ordered(rows)
    fixtures = {r.fixture_id: dict(r.body) for r in ordered}
    taken: set[str] = set()
    tests = [
        f"def {_identifier(r.fixture_id, taken)}(run_agent: Any) -> None:\n"
        f"    {_test_docstring(r)}\n"
        f"    check(run_agent, FIXTURES[{r.fixture_id!r}])\n"
        for r in ordered
    ]
    # The module's fixed part (its helpers included: the generated module stands alone, so
    # they are not shared with this one), then one test per fixture.
    module = _render(
        "test_promoted_fixtures.py.j2",
        fixture_count=len(ordered),
        fixtures_json=_json_literal(fixtures),
    ) + "\n\n".join(tests)
    return {
        f"{ADAPTER_MODULE}.py": _render("trace_promoter_adapter.py.j2"),
        "conftest.py": _render("conftest.py.j2"),
        "test_promoted_fixtures.py": module,
    }


# -- promptfoo --------------------------------------------------------------------------


def _rubric(title: str, items: list[str]) -> str:
    return title + "\n" + "\n".join(f"- {item}" for item in items)


def promptfoo_test(row: ExportRow) -> dict[str, Any]:
    body = row.body
    asserts: list[dict[str, Any]] = []
    if body.get("expected_behaviour"):
        asserts.append(
            {
                "type": "llm-rubric",
                "metric": "expected_behaviour",
                "value": _rubric("The agent's response must:", body["expected_behaviour"]),
            }
        )
    if body.get("forbidden_behaviour"):
        asserts.append(
            {
                "type": "llm-rubric",
                "metric": "forbidden_behaviour",
                "value": _rubric("The agent's response must NOT:", body["forbidden_behaviour"]),
            }
        )
    if body.get("tool_assertions"):
        # promptfoo hands a javascript assertion `output` (a string, or the provider's tool
        # calls) and `context.vars`. The script reads tool calls in the OpenAI shape
        # ({function: {name, arguments}}) or flat ({name, arguments}), bare or under
        # `tool_calls`, possibly JSON-encoded.
        script = _render(
            "promptfoo_tool_check.js.j2",
            expected=json.dumps(body["tool_assertions"].get("expected_tools", [])),
            forbidden=json.dumps(forbidden_calls(body), sort_keys=True),
        )
        asserts.append({"type": "javascript", "metric": "tool_use", "value": script})
    observed = (body.get("observed") or {}).get("output")
    if body.get("label") == "negative" and observed:
        asserts.append(
            {"type": "not-equals", "metric": "not_the_negative_example", "value": observed}
        )
    review = body.get("review") or {}
    if review.get("answer"):
        # The reviewer's answer is the reference: factually consistent, however worded.
        asserts.append(
            {"type": "factuality", "metric": "reviewed_answer", "value": review["answer"]}
        )
    return {
        "description": f"{row.ref} ({row.kind})",
        "vars": {
            "input": body.get("input") or "",
            "context": "\n\n".join(_documents(body)),
        },
        "assert": asserts,
        "metadata": {
            **_provenance(row),
            "trajectory": body.get("trajectory"),
            "rubric_reason": body.get("rubric_reason"),
            "review": body.get("review"),
        },
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (rubrics, scripts) as literal blocks, so the file reads as written;
    no anchors, since fixtures share sub-objects and a reader should not chase aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def export_promptfoo(rows: Iterable[ExportRow]) -> dict[str, str]:
    tests = [promptfoo_test(r) for r in _ordered(rows)]
    header = _render("promptfoo_tests_header.yaml.j2")
    text = yaml.dump(tests, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)
    return {"promptfoo_tests.yaml": header + text}


# -- deepeval ---------------------------------------------------------------------------


def deepeval_golden(row: ExportRow) -> dict[str, Any]:
    body = row.body
    observed = (body.get("observed") or {}).get("output")
    negative = body.get("label") == "negative"
    golden: dict[str, Any] = {
        "name": row.ref,
        "input": body.get("input") or "",
        # A reviewer's answer is the reference; else a successful trace's answer is one, and
        # a failing one is only a negative.
        "expected_output": (body.get("review") or {}).get("answer")
        or (observed if row.kind == FixtureKind.SCENARIO_ROW.value else None),
        "actual_output": observed if negative else None,
        "context": _documents(body) or None,
        "expected_tools": [
            {"name": t} for t in (body.get("tool_assertions") or {}).get("expected_tools", [])
        ]
        or None,
        "comments": body.get("reason"),
        "additional_metadata": {
            **_provenance(row),
            "trajectory": body.get("trajectory"),
            "forbidden_calls": forbidden_calls(body),
            "label": body.get("label"),
            "rubric_reason": body.get("rubric_reason"),
            "review": body.get("review"),
            "occurrences": row.occurrences,
            "first_seen": _iso(row.first_seen),
            "last_seen": _iso(row.last_seen),
        },
    }
    must = [s.strip() for s in body.get("expected_behaviour", []) if s.strip()]
    must_not = [s.strip() for s in body.get("forbidden_behaviour", []) if s.strip()]
    if must or must_not:
        golden["expectations"] = {"must": must, "must_not": must_not}
    return {k: v for k, v in golden.items() if v is not None}


def export_deepeval(rows: Iterable[ExportRow]) -> dict[str, str]:
    goldens = [deepeval_golden(r) for r in _ordered(rows)]
    text = json.dumps(goldens, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return {"deepeval_goldens.json": text}


# -- openai evals -----------------------------------------------------------------------


def openai_eval_sample(row: ExportRow) -> dict[str, Any]:
    body = row.body
    messages: list[dict[str, str]] = []
    documents = _documents(body)
    if documents:
        messages.append(
            {"role": "system", "content": "Context documents:\n\n" + "\n\n".join(documents)}
        )
    messages.append({"role": "user", "content": body.get("input") or ""})
    observed = (body.get("observed") or {}).get("output")
    answer = (body.get("review") or {}).get("answer")
    if answer:
        ideal = answer
    elif row.kind == FixtureKind.SCENARIO_ROW.value and observed:
        ideal = observed
    else:
        parts = [_rubric("The assistant should:", body.get("expected_behaviour", []))]
        if body.get("forbidden_behaviour"):
            parts.append(_rubric("The assistant must not:", body["forbidden_behaviour"]))
        ideal = "\n".join(parts)
    return {"input": messages, "ideal": ideal, "metadata": _provenance(row)}


def export_openai_evals(rows: Iterable[ExportRow]) -> dict[str, str]:
    lines = [_json_line(openai_eval_sample(r)) + "\n" for r in _ordered(rows)]
    return {"openai_evals.jsonl": "".join(lines)}


EXPORTERS: dict[str, Exporter] = {
    "jsonl": export_jsonl,
    "pytest": export_pytest,
    "promptfoo": export_promptfoo,
    "deepeval": export_deepeval,
    "openai-evals": export_openai_evals,
}


def export(fmt: str, rows: Iterable[ExportRow]) -> dict[str, str]:
    try:
        exporter = EXPORTERS[fmt]
    except KeyError:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(EXPORTERS)}") from None
    return exporter(rows)
