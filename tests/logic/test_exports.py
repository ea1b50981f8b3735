"""Each export format, loaded by the tool that consumes it; and the release-gate report.

The consumers are the real ones, pinned: pytest runs the generated module, promptfoo's own
`evaluate` loads and runs the test cases, deepeval's own loader reads the goldens. promptfoo
(npm) and deepeval (its own virtualenv: its pins, rich < 15, clash with the project's) are
test tools, fetched on first use into the cache folder the Kafka jars use.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services.fixture_writer.exports import (
    ADAPTER_ENV,
    ADAPTER_MODULE,
    ExportRow,
    export,
    export_deepeval,
    export_jsonl,
    export_openai_evals,
    export_promptfoo,
    export_pytest,
    forbidden_calls,
)
from services.fixture_writer.logic import FixtureKind, body_digest, build_fixtures
from services.fixture_writer.report import NO_CRITERION, GateEntry, render_report
from shared.events import Document, Feedback, SpanKind, Trace, TraceScored
from tests.support.builders import T0, refund_trace, scored, span

pytestmark = pytest.mark.logic

REPO = Path(__file__).resolve().parents[2]
TOOL_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trace-promoter" / "tools"
)
PROMPTFOO_VERSION = "0.123.1"
DEEPEVAL_VERSION = "4.3.1"
# Transitive dependencies of the two tools resolve as their registries stood on this day,
# so every machine tests against the same set.
TOOLS_RESOLVED_AT = "2026-11-27"
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")


# -- literal fixtures -------------------------------------------------------------------


def escalating_trace() -> Trace:
    """A refund that failed and was handed to a human; its refund call names the customer's
    e-mail only as a redaction placeholder."""
    return Trace(
        trace_id="e" * 32,
        session_id="sess-9",
        user_id="user-9",
        agent_name="billing-agent",
        agent_version="1.4.0",
        outcome="failure",
        spans=(
            span(
                0,
                SpanKind.AGENT,
                "agent",
                input="Refund ORD-2 to my card or get me a human",
                output="A colleague will call you back.",
            ),
            span(1, SpanKind.TOOL, "lookup_order", tool_arguments='{"order": "ORD-2"}'),
            span(
                2,
                SpanKind.TOOL,
                "issue_refund",
                error="card declined",
                tool_arguments='{"order": "ORD-2", "notify": "<EMAIL_1>"}',
            ),
            span(3, SpanKind.TOOL, "transfer_to_human", tool_arguments="{}", escalated=True),
        ),
        feedback=(
            Feedback(
                source="user",
                name="thumbs",
                score=0.0,
                label="negative",
                explanation="took three tries to reach a person",
            ),
        ),
    )


def answered_trace() -> Trace:
    return Trace(
        trace_id="a" * 32,
        session_id="sess-4",
        user_id="user-4",
        agent_name="billing-agent",
        agent_version="1.4.0",
        outcome="success",
        spans=(
            span(
                0,
                SpanKind.AGENT,
                "agent",
                input="When does ORD-7 ship?",
                output="ORD-7 ships tomorrow.",
            ),
            span(
                1,
                SpanKind.RETRIEVAL,
                "search_kb",
                documents=(Document(id="kb-12", content="Orders ship within two days."),),
            ),
            span(2, SpanKind.TOOL, "lookup_order", tool_arguments='{"order": "ORD-7"}'),
        ),
    )


def promoted_events() -> list[TraceScored]:
    return [
        scored(refund_trace(), pattern_id="p1-refund"),
        scored(escalating_trace(), pattern_id="p1-escalate"),
        scored(answered_trace(), pattern_id="p1-answered"),
    ]


def export_rows() -> list[ExportRow]:
    rows = []
    for n, event in enumerate(promoted_events()):
        for draft in build_fixtures(event):
            rows.append(
                ExportRow(
                    fixture_id=draft.fixture_id,
                    kind=draft.kind.value,
                    version=1 + n % 2,
                    body=draft.body,
                    created_at=T0 + timedelta(minutes=n),
                    source_trace_ids=(event.trace_id,),
                    first_seen=event.pattern.first_seen,
                    last_seen=event.pattern.last_seen,
                    occurrences=event.pattern.occurrences,
                    scores={k: v.model_dump(mode="json") for k, v in event.scores.items()},
                    policy_version=event.policy_version,
                    reason=event.reason,
                )
            )
    return rows


def with_forbidden_calls(rows: list[ExportRow]) -> set[str]:
    return {r.ref for r in rows if forbidden_calls(r.body)}


def test_the_literal_fixtures_cover_every_kind_and_assertion() -> None:
    rows = export_rows()
    assert {r.kind for r in rows} == {k.value for k in FixtureKind} - {"boundary_test"}
    assert any(r.body["trajectory"]["must_escalate"] for r in rows)
    assert any(
        PLACEHOLDER.search(c["arguments"] or "")
        for r in rows
        for c in r.body.get("tool_assertions", {}).get("forbidden_calls", [])
    )


def test_every_format_is_deterministic_whatever_the_row_order() -> None:
    rows = export_rows()
    for fmt in ("jsonl", "pytest", "promptfoo", "deepeval", "openai-evals"):
        assert export(fmt, rows) == export(fmt, list(reversed(rows))), fmt


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        export("csv", export_rows())


# -- jsonl ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads((REPO / "docs" / "fixture.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_jsonl_line_validates_against_the_shipped_schema(
    fixture_schema: jsonschema.Draft202012Validator,
) -> None:
    rows = export_rows()
    lines = export_jsonl(rows)["fixtures.jsonl"].splitlines()
    assert len(lines) == len(rows)
    for line in lines:
        fixture_schema.validate(json.loads(line))
    assert {json.loads(line)["fixture_id"] for line in lines} == {r.fixture_id for r in rows}


def test_a_jsonl_line_keeps_the_stored_body_and_its_evidence() -> None:
    row = export_rows()[0]
    line = json.loads(export_jsonl([row])["fixtures.jsonl"])
    assert line["body"] == row.body
    assert line["body_sha256"] == body_digest(dict(row.body))
    assert line["version"] == row.version
    assert line["evidence"]["source_trace_ids"] == list(row.source_trace_ids)
    assert line["evidence"]["occurrences"] == row.occurrences


def test_the_schema_refuses_a_tool_use_fixture_without_its_assertions(
    fixture_schema: jsonschema.Draft202012Validator,
) -> None:
    row = next(r for r in export_rows() if r.kind == FixtureKind.TOOL_USE_ASSERTION.value)
    line = json.loads(export_jsonl([row])["fixtures.jsonl"])
    del line["body"]["tool_assertions"]
    assert not fixture_schema.is_valid(line)


# -- pytest -----------------------------------------------------------------------------

STUB_AGENT = f'''\
"""A stub agent: does what plan.json says for each input."""
import json
from pathlib import Path

from {ADAPTER_MODULE} import AgentRun, ToolCallRecord

PLAN = json.loads(Path(__file__).with_name("plan.json").read_text())


def run_agent(input, context):
    step = PLAN[input]
    return AgentRun(
        output="Done, as far as policy allows.",
        tool_calls=[ToolCallRecord(name, arguments) for name, arguments in step["calls"]],
        escalated=step["escalate"],
        steps=1,
    )
'''


def agent_plan(rows: list[ExportRow], *, make_forbidden_calls: bool) -> dict[str, Any]:
    """Per input, what a stub agent does: every expected tool, an escalation where one is
    required and, for the misbehaving agent, every call the fixtures forbid (placeholders
    filled with a concrete value, as a live agent would)."""
    plan: dict[str, Any] = {}
    for row in rows:
        step = plan.setdefault(row.body["input"], {"calls": [], "escalate": False})
        step["escalate"] |= row.body["trajectory"]["must_escalate"]
        for tool in row.body.get("tool_assertions", {}).get("expected_tools", []):
            if [tool, {}] not in step["calls"]:
                step["calls"].append([tool, {}])
        if make_forbidden_calls:
            for call in forbidden_calls(row.body):
                filled = json.loads(
                    PLACEHOLDER.sub("jane@example.com", json.dumps(call["arguments"]))
                )
                if [call["tool"], filled] not in step["calls"]:
                    step["calls"].append([call["tool"], filled])
    return plan


@pytest.fixture
def pytest_export(tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    for name, text in export_pytest(export_rows()).items():
        (folder / name).write_text(text)
    return folder


def run_exported_suite(suite: Path, agent: Path | None) -> dict[str, Any]:
    report = suite.parent / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", ADAPTER_ENV)}
    # The consumer runs plain pytest, not this project's plugins and settings.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    if agent is not None:
        env |= {"PYTHONPATH": str(agent.parent), ADAPTER_ENV: f"{agent.stem}:run_agent"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(suite),
            "-p",
            "no:cacheprovider",
            "-q",
            f"--junitxml={report}",
            f"--rootdir={suite}",
        ],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    suite_xml = ET.parse(report).getroot().find("testsuite")
    assert suite_xml is not None
    failures = {
        case.get("name"): failure.get("message") or ""
        for case in suite_xml.iter("testcase")
        if (failure := case.find("failure")) is not None
    }
    return {
        "tests": int(suite_xml.get("tests", 0)),
        "failures": int(suite_xml.get("failures", 0)),
        "errors": int(suite_xml.get("errors", 0)),
        "skipped": int(suite_xml.get("skipped", 0)),
        "failure_messages": failures,
    }


def write_stub_agent(folder: Path, plan: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "plan.json").write_text(json.dumps(plan))
    agent = folder / "stub_agent.py"
    agent.write_text(STUB_AGENT)
    return agent


def test_the_pytest_export_passes_for_an_agent_that_keeps_the_assertions(
    pytest_export: Path, tmp_path: Path
) -> None:
    rows = export_rows()
    agent = write_stub_agent(tmp_path / "good", agent_plan(rows, make_forbidden_calls=False))
    outcome = run_exported_suite(pytest_export, agent)
    assert outcome["tests"] == len(rows)
    assert (outcome["failures"], outcome["errors"], outcome["skipped"]) == (0, 0, 0)


def test_the_pytest_export_fails_the_tool_use_tests_of_an_agent_making_forbidden_calls(
    pytest_export: Path, tmp_path: Path
) -> None:
    rows = export_rows()
    agent = write_stub_agent(tmp_path / "bad", agent_plan(rows, make_forbidden_calls=True))
    outcome = run_exported_suite(pytest_export, agent)
    expected_failures = with_forbidden_calls(rows)
    assert expected_failures, "the literal fixtures must forbid some call"
    assert outcome["tests"] == len(rows)
    assert outcome["failures"] == len(expected_failures)
    assert outcome["errors"] == 0
    for message in outcome["failure_messages"].values():
        assert "forbidden call" in message


def test_the_pytest_export_errors_rather_than_passes_without_an_adapter(
    pytest_export: Path,
) -> None:
    outcome = run_exported_suite(pytest_export, agent=None)
    assert outcome["errors"] == outcome["tests"] == len(export_rows())


def test_the_pytest_export_imports_nothing_but_the_standard_library_and_pytest() -> None:
    allowed = set(sys.stdlib_module_names) | {"pytest", ADAPTER_MODULE}
    for name, text in export_pytest(export_rows()).items():
        imported = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert imported <= allowed, (name, imported - allowed)


def test_each_pytest_test_documents_the_behaviour_only_a_grader_can_judge() -> None:
    rows = export_rows()
    module = ast.parse(export_pytest(rows)["test_promoted_fixtures.py"])
    docs = [
        ast.get_docstring(f) or ""
        for f in module.body
        if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")
    ]
    assert len(docs) == len(rows)
    for row in rows:
        doc = next(d for d in docs if d.startswith(row.ref))
        flat = " ".join(doc.split())
        for item in row.body["expected_behaviour"] + row.body["forbidden_behaviour"]:
            assert " ".join(item.split()) in flat


# -- promptfoo --------------------------------------------------------------------------

PROMPTFOO_RUNNER = r"""
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [toolDir, testsFile, planFile, resultFile] = process.argv.slice(2);
const pkgDir = join(toolDir, 'node_modules', 'promptfoo');
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const promptfoo = await import(pathToFileURL(join(pkgDir, pkg.exports['.'].import)).href);
const yaml = createRequire(join(pkgDir, 'package.json'))('js-yaml');

const tests = yaml.load(readFileSync(testsFile, 'utf8'));
const schemaErrors = tests.flatMap((t) => {
  const parsed = promptfoo.TestCaseSchema.safeParse(t);
  return parsed.success ? [] : [`${t.description}: ${JSON.stringify(parsed.error.issues)}`];
});
const known = (type) => promptfoo.BaseAssertionTypesSchema.safeParse(type.replace(/^not-/, ''));
const unknownTypes = [...new Set(tests.flatMap((t) => t.assert || []).map((a) => a.type))]
  .filter((type) => !known(type).success);

const plan = JSON.parse(readFileSync(planFile, 'utf8'));
const agent = async (prompt, context) => ({
  output: JSON.stringify((plan[context.vars.input]?.calls || []).map(([name, args]) => (
    { type: 'function', function: { name, arguments: JSON.stringify(args) } }))),
});
// Rubrics need a model; offline, a grader that passes them leaves the mechanical checks.
const grader = {
  id: () => 'offline-grader',
  callApi: async () => ({ output: JSON.stringify({ pass: true, score: 1, reason: 'offline' }) }),
};
const run = await promptfoo.evaluate({
  prompts: ['{{input}}'],
  providers: [agent],
  tests: 'file://' + testsFile,
  defaultTest: { options: { provider: grader } },
  writeLatestResults: false,
}, { maxConcurrency: 1, showProgressBar: false, cache: false });
const summary = await run.toEvaluateSummary();
writeFileSync(resultFile, JSON.stringify({
  tests: tests.length,
  schemaErrors,
  unknownTypes,
  results: summary.results.map((r) => ({
    description: r.testCase.description,
    success: r.success,
    reason: r.gradingResult?.reason || r.error || '',
  })),
}));
"""


def _fetch_once(target: Path, fetch: Any) -> Path:
    """Builds a tool folder beside its final place and renames it in, so an interrupted
    fetch never leaves a half-installed tool behind."""
    if target.exists():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    fetch(partial)
    partial.rename(target)
    return target


@pytest.fixture(scope="session")
def promptfoo_tool() -> Path:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed to check the promptfoo export")

    def fetch(folder: Path) -> None:
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(folder),
                f"promptfoo@{PROMPTFOO_VERSION}",
                f"--before={TOOLS_RESOLVED_AT}",
                "--ignore-scripts",
                "--omit=optional",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
            check=True,
            capture_output=True,
            timeout=280,
        )

    return _fetch_once(TOOL_CACHE / f"promptfoo-{PROMPTFOO_VERSION}", fetch)


def run_promptfoo(tool: Path, tests_file: Path, plan: dict[str, Any]) -> dict[str, Any]:
    work = tests_file.parent
    (work / "runner.mjs").write_text(PROMPTFOO_RUNNER)
    (work / "plan.json").write_text(json.dumps(plan))
    env = {
        **os.environ,
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_CONFIG_DIR": str(work / "promptfoo-home"),
    }
    done = subprocess.run(
        [
            "node",
            str(work / "runner.mjs"),
            str(tool),
            str(tests_file),
            str(work / "plan.json"),
            str(work / "result.json"),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads((work / "result.json").read_text())
    return result


@pytest.fixture
def promptfoo_tests_file(tmp_path: Path) -> Path:
    ((name, text),) = export_promptfoo(export_rows()).items()
    path = tmp_path / name
    path.write_text(text)
    return path


def test_promptfoo_loads_and_runs_the_tests_and_knows_every_assertion_type(
    promptfoo_tool: Path, promptfoo_tests_file: Path
) -> None:
    rows = export_rows()
    result = run_promptfoo(
        promptfoo_tool, promptfoo_tests_file, agent_plan(rows, make_forbidden_calls=False)
    )
    assert result["tests"] == len(rows)
    assert result["schemaErrors"] == []
    assert result["unknownTypes"] == []
    failed = [r for r in result["results"] if not r["success"]]
    assert len(result["results"]) == len(rows)
    assert failed == []


def test_promptfoo_fails_the_tool_use_tests_of_an_agent_making_forbidden_calls(
    promptfoo_tool: Path, promptfoo_tests_file: Path
) -> None:
    rows = export_rows()
    result = run_promptfoo(
        promptfoo_tool, promptfoo_tests_file, agent_plan(rows, make_forbidden_calls=True)
    )
    failed = {r["description"].split(" ")[0] for r in result["results"] if not r["success"]}
    assert failed == with_forbidden_calls(rows)


def test_the_promptfoo_tests_carry_the_input_and_a_rubric_per_behaviour_list() -> None:
    rows = export_rows()
    tests = yaml.safe_load(export_promptfoo(rows)["promptfoo_tests.yaml"])
    by_ref = {t["description"].split(" ")[0]: t for t in tests}
    for row in rows:
        test = by_ref[row.ref]
        assert test["vars"]["input"] == row.body["input"]
        rubrics = [a["value"] for a in test["assert"] if a["type"] == "llm-rubric"]
        for item in row.body["expected_behaviour"] + row.body["forbidden_behaviour"]:
            assert any(item in rubric for rubric in rubrics)


# -- deepeval ---------------------------------------------------------------------------

DEEPEVAL_LOADER = """
import json, sys
from deepeval.dataset import EvaluationDataset

dataset = EvaluationDataset()
dataset.add_goldens_from_json_file(sys.argv[1], input_key_name="input")
with open(sys.argv[2], "w") as out:
    json.dump([{
        "name": g.name,
        "input": g.input,
        "expected_output": g.expected_output,
        "actual_output": g.actual_output,
        "context": g.context,
        "expected_tools": [t.name for t in g.expected_tools or []],
        "must": g.expectations.must if g.expectations else [],
        "must_not": g.expectations.must_not if g.expectations else [],
        "fixture_id": (g.additional_metadata or {}).get("fixture_id"),
    } for g in dataset.goldens], out)
"""


@pytest.fixture(scope="session")
def deepeval_python() -> Path:
    uv = REPO / ".tools" / "bin" / "uv"  # the pinned uv `make setup` installs
    uv_command = str(uv) if uv.exists() else shutil.which("uv")
    if uv_command is None:
        pytest.fail("uv is needed to install deepeval for its export check: run `make setup`")

    def fetch(folder: Path) -> None:
        subprocess.run(
            [uv_command, "venv", "--quiet", "--python", sys.executable, str(folder)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                uv_command,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(folder / "bin" / "python"),
                "--exclude-newer",
                TOOLS_RESOLVED_AT,
                f"deepeval=={DEEPEVAL_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=280,
        )

    return _fetch_once(TOOL_CACHE / f"deepeval-{DEEPEVAL_VERSION}", fetch) / "bin" / "python"


def test_deepeval_loads_one_golden_per_fixture_with_its_expectations(
    deepeval_python: Path, tmp_path: Path
) -> None:
    rows = export_rows()
    ((name, text),) = export_deepeval(rows).items()
    (tmp_path / name).write_text(text)
    (tmp_path / "load.py").write_text(DEEPEVAL_LOADER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPEVAL")}
    env["DEEPEVAL_TELEMETRY_OPT_OUT"] = "YES"
    done = subprocess.run(
        [str(deepeval_python), "load.py", name, "goldens.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    goldens = {g["name"]: g for g in json.loads((tmp_path / "goldens.json").read_text())}
    assert len(goldens) == len(rows)
    for row in rows:
        golden = goldens[row.ref]
        assert golden["input"] == row.body["input"]
        assert golden["must"] == row.body["expected_behaviour"]
        assert golden["must_not"] == row.body["forbidden_behaviour"]
        assert golden["expected_tools"] == row.body.get("tool_assertions", {}).get(
            "expected_tools", []
        )
        assert golden["fixture_id"] == row.fixture_id
        if row.kind == FixtureKind.SCENARIO_ROW.value:
            assert golden["expected_output"] == row.body["observed"]["output"]
        if row.kind == FixtureKind.GRADER_EXAMPLE.value:
            assert golden["actual_output"] == row.body["observed"]["output"]


# -- openai evals -----------------------------------------------------------------------


def test_openai_evals_samples_have_input_messages_and_an_ideal() -> None:
    rows = export_rows()
    samples = [
        json.loads(line) for line in export_openai_evals(rows)["openai_evals.jsonl"].splitlines()
    ]
    assert len(samples) == len(rows)
    by_id = {s["metadata"]["fixture_id"]: s for s in samples}
    for row in rows:
        sample = by_id[row.fixture_id]
        assert all(
            m["role"] in {"system", "user"} and isinstance(m["content"], str)
            for m in sample["input"]
        )
        assert sample["input"][-1] == {"role": "user", "content": row.body["input"]}
        assert isinstance(sample["ideal"], str) and sample["ideal"]
        documents = [d["content"] for d in row.body["context"]["documents"]]
        if documents:
            assert sample["input"][0]["role"] == "system"
            assert all(d in sample["input"][0]["content"] for d in documents)


# -- release-gate report ----------------------------------------------------------------


def gate_entries() -> list[GateEntry]:
    entries = []
    for n, event in enumerate(promoted_events()):
        for draft in build_fixtures(event):
            entries.append(
                GateEntry(
                    at=T0 + timedelta(minutes=n),
                    action="added" if n != 1 else "versioned",
                    fixture_id=draft.fixture_id,
                    version=1 + (n == 1),
                    kind=draft.kind.value,
                    pattern_id=draft.pattern_id,
                    criteria=draft.criteria,
                    reason=event.reason,
                    source_trace_ids=(event.trace_id,),
                    policy_version=event.policy_version,
                    occurrences=event.pattern.occurrences,
                    first_seen=event.pattern.first_seen,
                    last_seen=event.pattern.last_seen,
                )
            )
    entries.append(
        GateEntry(
            at=T0 + timedelta(hours=1),
            action="retired",
            fixture_id="p0-old:regression_case",
            version=3,
            kind="regression_case",
            pattern_id="p0-old",
            criteria=("operationally_costly", "enduring"),
            reason="Retired: the tool was removed.",
        )
    )
    entries.append(
        GateEntry(
            at=T0 + timedelta(hours=2),
            action="added",
            fixture_id="p0-weak:scenario_row",
            version=1,
            kind="scenario_row",
            pattern_id="p0-weak",
            criteria=(),
            reason="Promoted by hand.",
        )
    )
    return entries


def sections(markdown: str, level: str) -> Iterator[tuple[str, str]]:
    parts = re.split(rf"^{level} (.+)$", markdown, flags=re.MULTILINE)
    yield from zip(parts[1::2], parts[2::2], strict=True)


def test_the_report_names_every_change_under_its_criterion_and_kind() -> None:
    entries = gate_entries()
    markdown = render_report(entries, since=T0 - timedelta(days=1))
    by_criterion = {title.split(" (")[0]: text for title, text in sections(markdown, "###")}
    assert set(by_criterion) == {e.criterion for e in entries}
    for entry in entries:
        ref = f"`{entry.fixture_id}@v{entry.version}`"
        by_kind = {t.split(" (")[0]: x for t, x in sections(by_criterion[entry.criterion], "####")}
        assert ref in by_kind[entry.kind], ref
        assert markdown.count(ref) == 1
        assert entry.reason in by_kind[entry.kind]
        for trace_id in entry.source_trace_ids:
            assert trace_id in by_kind[entry.kind]


def test_a_change_is_filed_under_the_strongest_criterion_saying_why_it_matters() -> None:
    entry = replace(
        gate_entries()[0], criteria=("missed_offline", "observable", "risk_bearing", "enduring")
    )
    assert entry.criterion == "risk_bearing"
    assert replace(entry, criteria=("missed_offline", "teachable")).criterion == "missed_offline"
    assert replace(entry, criteria=()).criterion == NO_CRITERION


def test_the_report_counts_changes_by_kind_and_action() -> None:
    entries = gate_entries()
    markdown = render_report(entries, since=None)
    for kind in {e.kind for e in entries}:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {kind} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        counts = [
            sum(1 for e in entries if e.kind == kind and e.action == a)
            for a in ("added", "versioned", "retired")
        ]
        assert cells[1:] == [str(n) for n in counts] + [str(sum(counts))]
    assert "over the whole recorded history" in markdown
    assert NO_CRITERION in markdown


def test_the_report_of_a_quiet_period_says_nothing_changed() -> None:
    markdown = render_report([], since=T0)
    assert "No fixture was added, versioned or retired since 2026-11-03 10:00 UTC" in markdown
