"""The real corpora as OTLP: converters on literal inputs, the committed slice, the full corpora
(when present beside the repository), and the evaluation's figures on literal facts."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from services.ingest.decode import decode_payload
from shared.events import SpanKind, SpanStatus, Trace
from tools.corpus.real import stack
from tools.corpus.real.convert import convert_tau2, convert_wiki
from tools.corpus.real.evaluation import DEFAULT_CORPORA, inputs, item_from_document, item_of
from tools.corpus.real.identity import distinctive
from tools.corpus.real.metrics import (
    FLOORS,
    Item,
    evaluate,
    jaccard_groups,
    tool_sequence_groups,
    verdicts,
)
from tools.corpus.real.model import MAX_TOOL_RESULT_CHARS, ConvertedRun
from tools.corpus.real.otlp import convert
from tools.corpus.real.readback import read_back
from tools.corpus.real.report import THRESHOLD_PLACEHOLDER, markdown
from tools.corpus.real.slice import DATA_DIR, choose, read_slice
from tools.corpus.real.stack import DeadLetter, Decided, FixtureRow, Grouped, StackFacts
from tools.corpus.real.tau2 import read_tau2
from tools.corpus.real.wiki import read_wiki, tool_error_type

pytestmark = pytest.mark.logic

TAU2_SRC = DEFAULT_CORPORA / "tau2-retail"
WIKI_SRC = DEFAULT_CORPORA / "wiki-search"
needs_corpora = pytest.mark.skipif(
    not (TAU2_SRC.is_dir() and WIKI_SRC.is_dir()),
    reason=f"the real corpora are not beside the repository ({DEFAULT_CORPORA})",
)


def decode(document: dict[str, Any]) -> Trace:
    traces = decode_payload(json.dumps(document).encode(), "application/json")
    assert len(traces) == 1, "exactly one trace per document"
    return traces[0]


def root_of(trace: Trace) -> Any:
    roots = [s for s in trace.spans if s.parent_span_id is None]
    assert len(roots) == 1
    return roots[0]


# --- literal inputs ----------------------------------------------------------------------------

USER: dict[str, Any] = {
    "user_id": "mia_garcia_4516",
    "name": {"first_name": "Mia", "last_name": "Garcia"},
    "address": {
        "address1": "537 Main Street",
        "address2": "Suite 572",
        "city": "Indianapolis",
        "country": "USA",
        "state": "IN",
        "zip": "46229",
    },
    "email": "mia.garcia2723@example.com",
    "payment_methods": {
        "paypal_9497703": {"source": "paypal", "id": "paypal_9497703"},
        "credit_card_3124723": {
            "source": "credit_card",
            "id": "credit_card_3124723",
            "brand": "visa",
            "last_four": "7285",
        },
    },
    "orders": ["#W5490111"],
}
ORIGINALS = (
    "mia_garcia_4516",
    "Mia Garcia",
    "mia.garcia2723@example.com",
    "537 Main Street",
    "Indianapolis",
    "46229",
    "W5490111",
    "paypal_9497703",
    "credit_card_3124723",
    "7285",
)


def _message(role: str, content: str | None, second: int, **extra: Any) -> dict[str, Any]:
    return {
        "role": role,
        "content": content,
        "timestamp": f"2026-02-17T23:26:{second:02d}.000000",
        **extra,
    }


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "name": name, "arguments": arguments, "requestor": "assistant"}


def _model(second: int, content: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    return _message(
        "assistant",
        content,
        second,
        tool_calls=calls or None,
        usage={"prompt_tokens": 3000 + second, "completion_tokens": 20},
        raw_data={"finish_reason": "tool_calls" if calls else "stop"},
    )


def _simulation(reward: float, sim_id: str) -> dict[str, Any]:
    return {
        "id": sim_id,
        "task_id": "12",
        "trial": 0,
        "start_time": "2026-02-17T23:26:00.000000",
        "end_time": "2026-02-17T23:26:30.000000",
        "reward_info": {"reward": reward},
        "messages": [
            _message("assistant", "Hi! How can I help you today?", 0, usage=None, raw_data=None),
            _message("user", "Hi, I'm Mia Garcia, email mia.garcia2723@example.com.", 2),
            _model(4, None, [_call("call_1", "find_user_id_by_email", {"email": USER["email"]})]),
            _message("tool", "mia_garcia_4516", 4, id="call_1", error=False),
            _model(
                6,
                None,
                [
                    _call("call_2", "get_user_details", {"user_id": "mia_garcia_4516"}),
                    _call("call_3", "get_order_details", {"order_id": "#W9999999"}),
                ],
            ),
            _message("tool", json.dumps(USER), 6, id="call_2", error=False),
            _message("tool", "Error: Order not found", 7, id="call_3", error=True),
            _model(9, "Mia, your order #W5490111 was paid with visa 7285 (paypal_9497703).", []),
            _message("user", "Thanks, ###STOP###", 11),
        ],
    }


def _tau2_document() -> dict[str, Any]:
    task = {
        "id": "12",
        "user_scenario": {
            "instructions": {"known_info": "You are mia_garcia_4516 in zipcode 46229."}
        },
        "evaluation_criteria": {
            "actions": [{"name": "get_user_details", "arguments": {"user_id": "mia_garcia_4516"}}]
        },
    }
    return {
        "timestamp": "2026-02-17T23:26:00",
        "info": {"agent_info": {"llm": "gpt-4o"}},
        "tasks": [task],
        "simulations": [_simulation(1.0, "a")],
    }


@pytest.fixture
def tau2_src(tmp_path: Path) -> Path:
    first = _tau2_document()
    second = _tau2_document()
    second["simulations"] = [_simulation(0.0, "b")]
    (tmp_path / "policy_gpt4o_run1.json").write_text(json.dumps(first))
    (tmp_path / "policy_gpt4o_run2.json").write_text(json.dumps(second))
    return tmp_path


WIKI_ROW = {
    "example_id": 3,
    "prompt": [
        {"role": "system", "content": "Use the provided Wikipedia search tools."},
        {"role": "user", "content": "What does Utsuro-bune mean?"},
    ],
    "completion": [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                json.dumps(
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "search_pages", "arguments": '{"query": "Utsuro"}'},
                    }
                ),
                json.dumps(
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "read_section", "arguments": '{"section_id": "x"}'},
                    }
                ),
            ],
        },
        {"role": "tool", "content": "[{'page_id': 'utsuro-bune'}]", "tool_calls": None},
        {"role": "tool", "content": "'utsuro-bune:x'", "tool_calls": None},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                json.dumps(
                    {
                        "id": "call_c",
                        "type": "function",
                        "function": {
                            "name": "read_section",
                            "arguments": '{"section_id": "utsuro-bune:legend"}',
                        },
                    }
                )
            ],
        },
        {"role": "tool", "content": "# Legend\n" + "hollow ship " * 600, "tool_calls": None},
        {"role": "assistant", "content": "It means hollow boat.", "tool_calls": None},
    ],
    "answer": "Hollow ship",
    "reward": 1.0,
    "generation_ms": 9000.0,
}


@pytest.fixture
def wiki_src(tmp_path: Path) -> Path:
    wrong = {**WIKI_ROW, "reward": 0.0}
    (tmp_path / "model-a.results.jsonl").write_text(json.dumps(WIKI_ROW) + "\n")
    (tmp_path / "model-a.metadata.json").write_text(json.dumps({"model": "org/model-a"}))
    (tmp_path / "model-b.results.jsonl").write_text(json.dumps(wrong) + "\n")
    return tmp_path


@pytest.mark.parametrize("convention", ["genai", "openinference"])
def test_a_tau2_run_decodes_to_one_trace_with_root_model_and_tool_spans(
    tau2_src: Path, convention: Any
) -> None:
    run = next(read_tau2(tau2_src))
    trace = decode(convert(run, convention=convention).document)

    root = root_of(trace)
    assert root.kind is SpanKind.AGENT
    assert root.status is SpanStatus.UNSET, "instrumentation does not know the outcome"
    assert trace.agent_name == "retail-support-agent"
    assert trace.agent_version == "policy_gpt4o"
    assert trace.resource["service.version"] == "policy_gpt4o"
    assert trace.session_id == run.session_id
    assert trace.user_id == run.user_id and re.fullmatch(r"[a-z]+_[a-z]+_\d{4}", run.user_id)
    assert root.input == run.user_turns()[0]
    assert root.output is not None and root.output.startswith(run.identity["Mia"])

    llm = [s for s in trace.spans if s.kind is SpanKind.LLM]
    assert len(llm) == 3, "one model span per model response (the greeting is none)"
    assert all(s.parent_span_id == root.span_id and s.model == "gpt-4o" for s in llm)
    assert all(s.usage is not None and s.usage.output_tokens == 20 for s in llm)
    assert llm[0].input is not None and "email" in llm[0].input
    assert llm[-1].output is not None and "was paid with visa" in llm[-1].output

    tools = [s for s in trace.spans if s.kind is SpanKind.TOOL]
    assert [s.tool_name for s in tools] == [
        "find_user_id_by_email",
        "get_user_details",
        "get_order_details",
    ]
    assert all(s.parent_span_id == root.span_id and s.tool_result for s in tools)
    assert json.loads(tools[1].tool_arguments or "") == {"user_id": run.user_id}
    failed = tools[2]
    assert failed.status is SpanStatus.ERROR
    assert failed.error_type == "ValueError"
    assert failed.error_message == "Order not found"
    assert failed.tool_result == "Error: Order not found", "the result text is kept"
    assert all(s.status is not SpanStatus.ERROR for s in tools[:2])
    # Each tool span comes after its model call and before the next one.
    assert llm[1].end_time is not None and tools[1].start_time >= llm[1].end_time
    assert tools[2].end_time is not None and llm[2].start_time >= tools[2].end_time

    assert [(f.source, f.name, f.score, f.label) for f in trace.feedback] == [
        ("evaluator", "task_success", 1.0, "pass")
    ]


def test_each_tau2_run_gets_its_own_consistent_customer(tau2_src: Path) -> None:
    first, second = list(read_tau2(tau2_src))
    texts = [json.dumps(convert(r).document, ensure_ascii=False) for r in (first, second)]
    for original in ORIGINALS:
        assert original not in texts[0] and original not in texts[1], original
    assert first.identity["mia_garcia_4516"] != second.identity["mia_garcia_4516"]
    for original, new in distinctive(first.identity, first.identity_kinds):
        assert new in texts[0], f"{original} -> {new} is used in its run"
        assert new not in texts[1], f"{new} of one run appears in another run of the task"
    # Formats are kept, and one value maps to one value across the whole run.
    assert re.fullmatch(r"W\d{7}", first.identity["W5490111"])
    assert re.fullmatch(r"paypal_\d{7}", first.identity["paypal_9497703"])
    assert re.fullmatch(r"[a-z]+\.[a-z]+\d{4}@example\.com", first.identity[USER["email"]])
    new_user = first.identity["mia_garcia_4516"]
    assert texts[0].count(new_user) >= 3, "argument, result and profile agree"
    first_name, last_name = first.identity["Mia Garcia"].split()
    assert new_user.startswith(f"{first_name.lower()}_{last_name.lower()}_")
    # Not identity: the unknown order the agent guessed and the product facts stay.
    assert "#W9999999" not in first.identity and "W9999999" in first.identity
    assert first.outcome == "success" and second.outcome == "failure"


def test_a_wiki_run_in_both_conventions(wiki_src: Path) -> None:
    runs = list(read_wiki(wiki_src))
    assert [(r.agent_version, r.outcome) for r in runs] == [
        ("org/model-a", "success"),
        ("model-b", "failure"),
    ]
    run = runs[0]
    assert run.start.isoformat() == "2026-10-01T00:30:00+00:00"
    assert runs[1].start.isoformat() == "2026-10-02T00:30:00+00:00", "a day per model"
    assert (run.end - run.start).total_seconds() == pytest.approx(9.0)
    for convention in ("genai", "openinference"):
        trace = decode(convert(run, convention=convention).document)
        root = root_of(trace)
        assert trace.agent_name == "wiki-research-agent"
        assert root.input == "What does Utsuro-bune mean?"
        assert root.output == "It means hollow boat."
        llm = [s for s in trace.spans if s.kind is SpanKind.LLM]
        assert len(llm) == 3
        assert llm[0].input is not None and "Use the provided Wikipedia" in llm[0].input
        tools = [s for s in trace.spans if s.kind is SpanKind.TOOL]
        assert [s.tool_name for s in tools] == ["search_pages", "read_section", "read_section"]
        assert [s.status for s in tools] == [SpanStatus.UNSET, SpanStatus.ERROR, SpanStatus.UNSET]
        assert tools[1].error_type == "KeyError"
        assert json.loads(tools[2].tool_arguments or "") == {"section_id": "utsuro-bune:legend"}
        long_result = tools[2].tool_result or ""
        assert len(long_result) < MAX_TOOL_RESULT_CHARS + 60
        assert long_result.endswith("more characters]"), "a long result is cut with a marker"
        assert [(f.name, f.label) for f in trace.feedback] == [("answer_correctness", "pass")]


def test_wiki_tool_errors_are_read_from_the_exception_text() -> None:
    assert tool_error_type("Invalid section_id format. Expected: page_id:section_name") == (
        "ValueError"
    )
    assert tool_error_type("Section not found: quran:quran_96") == "ValueError"
    assert (
        tool_error_type("load_environment.<locals>.f() got an unexpected keyword argument 'x'")
        == "TypeError"
    )
    assert tool_error_type("'slip_shot'") == "KeyError"
    assert tool_error_type("[{'page_id': 'x', 'title': 'X'}]") is None
    assert tool_error_type("# A 'quoted' page") is None


def test_converted_runs_are_ordered_by_start_and_limited(tau2_src: Path, wiki_src: Path) -> None:
    runs = convert_tau2(tau2_src, limit=1) + convert_wiki(wiki_src)
    assert len(runs) == 3
    wiki = [r.run.start for r in runs if r.run.corpus == "wiki"]
    assert wiki == sorted(wiki)
    label = runs[0].label()
    assert set(label) >= {
        "trace_id",
        "corpus",
        "task",
        "outcome",
        "agent_version",
        "run",
        "reward",
        "start_time",
    }
    assert label["task"] == "12" and label["run"] == 1


# --- the committed slice -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def committed() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return read_slice(DATA_DIR)


def test_every_committed_trace_decodes_whole(
    committed: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    conventions: Counter[tuple[str, str]] = Counter()
    for document, label in committed:
        trace = decode(document)
        assert trace.trace_id == label["trace_id"]
        root = root_of(trace)
        assert root.kind is SpanKind.AGENT and root.input
        assert trace.agent_version == label["agent_version"]
        assert trace.session_id and trace.user_id
        llm = [s for s in trace.spans if s.kind is SpanKind.LLM]
        tools = [s for s in trace.spans if s.kind is SpanKind.TOOL]
        assert llm and all(
            "gen_ai.input.messages" in s.attributes
            or "llm.output_messages.0.message.role" in s.attributes
            for s in llm
        )
        if root.output is not None:
            assert any(s.output for s in llm), "the model's text reaches Span.output"
        assert all(s.tool_name and s.tool_arguments and s.tool_result is not None for s in tools)
        called = read_back(document).tool_names
        assert Counter(s.tool_name for s in tools) <= Counter(called), "a span per call made"
        assert len(tools) >= len(called) - 1, "only a call the run ended on goes unexecuted"
        [feedback] = trace.feedback
        assert feedback.score == label["reward"]
        assert feedback.label == ("pass" if label["outcome"] == "success" else "fail")
        spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
        convention = "genai" if "gen_ai.operation.name" in json.dumps(spans[0]) else "oi"
        assert convention == ("genai" if label["convention"] == "genai" else "oi")
        conventions[(label["corpus"], convention)] += 1
    assert set(conventions) == {
        ("tau2", "genai"),
        ("tau2", "oi"),
        ("wiki", "genai"),
        ("wiki", "oi"),
    }


def test_the_slice_holds_recurring_and_one_off_failures_of_both_corpora(
    committed: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    size = (DATA_DIR / "slice.jsonl").stat().st_size
    assert size < 3 * 1024 * 1024
    assert 50 <= len(committed) <= 70
    starts = [label["start_time"] for _, label in committed]
    assert starts == sorted(starts)
    outcomes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for _, label in committed:
        outcomes[(label["corpus"], label["task"])][label["outcome"]] += 1
    for corpus in ("tau2", "wiki"):
        mine = {t: c for (k, t), c in outcomes.items() if k == corpus}
        recurring = [t for t, c in mine.items() if c["failure"] >= 2 and c["success"] >= 1]
        one_off = [t for t, c in mine.items() if c["failure"] == 1]
        assert len(recurring) >= 3, corpus
        assert len(one_off) >= 2, corpus
    licenses = (DATA_DIR / "LICENSES.md").read_text()
    assert "Copyright (c) 2025 Sierra Research" in licenses
    assert "Copyright (c) 2025 William Brown" in licenses


def test_baseline_inputs_read_back_from_committed_documents(
    committed: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    for document, label in committed:
        item = item_from_document(document, label)
        assert item.user_turns and item.user_turns[0] == root_of(decode(document)).input
        if label["corpus"] == "tau2":
            assert item.tool_names, "every tau2 run calls tools"


def test_quick_inputs_are_the_slice_by_corpus(
    committed: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    quick = inputs(quick=True, corpora=Path("/nonexistent"), seed=0)
    assert list(quick) == ["tau2", "wiki"]
    for corpus, (documents, items) in quick.items():
        labels = [label for _, label in committed if label["corpus"] == corpus]
        assert [i.trace_id for i in items] == [label["trace_id"] for label in labels]
        assert [read_back(d).trace_id for d in documents] == [i.trace_id for i in items]
        assert {i.outcome for i in items} == {"success", "failure"}


# --- the full corpora ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full() -> dict[str, list[ConvertedRun]]:
    return {"tau2": convert_tau2(TAU2_SRC), "wiki": convert_wiki(WIKI_SRC)}


@needs_corpora
def test_the_committed_slice_is_what_the_converter_makes(
    full: dict[str, list[ConvertedRun]],
    committed: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    picked = choose(full["tau2"]) + choose(full["wiki"])
    picked.sort(key=lambda c: (c.run.start, c.run.run_id))
    assert [c.label() for c in picked] == [label for _, label in committed]
    assert [c.document for c in picked] == [document for document, _ in committed]


@needs_corpora
def test_no_run_shares_a_customer_with_another_run_of_its_task(
    full: dict[str, list[ConvertedRun]],
) -> None:
    by_task: dict[str, list[ConvertedRun]] = defaultdict(list)
    for converted in full["tau2"]:
        by_task[converted.run.task].append(converted)
    assert len(by_task) == 40
    for task, runs in by_task.items():
        texts = {r.trace_id: json.dumps(r.document, ensure_ascii=False) for r in runs}
        for run in runs:
            pairs = list(distinctive(run.run.identity, run.run.identity_kinds))
            assert pairs, f"task {task}: {run.run.run_id} has a customer"
            for original, new in pairs:
                token = re.compile(rf"(?<![\w-]){re.escape(new)}(?![\w-])")
                assert original not in texts[run.trace_id] or original in new
                for other in runs:
                    text = texts[other.trace_id]
                    if other is not run and new in text:
                        assert not token.search(text), (task, new)


@needs_corpora
def test_the_full_corpora_convert_with_both_conventions_and_their_outcomes(
    full: dict[str, list[ConvertedRun]],
) -> None:
    tau2, wiki = full["tau2"], full["wiki"]
    assert (len(tau2), sum(r.run.outcome == "failure" for r in tau2)) == (480, 111)
    assert (len(wiki), sum(r.run.outcome == "failure" for r in wiki)) == (700, 158)
    for runs in (tau2, wiki):
        share = sum(r.convention == "genai" for r in runs) / len(runs)
        assert 0.4 < share < 0.6
        assert len({r.trace_id for r in runs}) == len(runs)
        for converted in runs[::25]:
            trace = decode(converted.document)
            assert len([s for s in trace.spans if s.kind is SpanKind.TOOL]) == len(
                converted.run.tool_results()
            )
            view = read_back(converted.document)
            item = item_of(converted)
            assert view.user_turns == item.user_turns and view.tool_names == item.tool_names


# --- figures ------------------------------------------------------------------------------------


def _item(trace_id: str, task: str, outcome: str, turns: str, tools: str = "") -> Item:
    return Item(
        trace_id=trace_id,
        task=task,
        outcome=outcome,
        start_time=f"2026-01-01T00:00:{int(trace_id[1:]):02d}",
        user_turns=(turns,),
        tool_names=tuple(tools.split()),
    )


ITEMS = [
    _item("t1", "A", "failure", "cancel my order please now", "find get cancel"),
    _item("t2", "A", "failure", "cancel my order please today", "find get cancel"),
    _item("t3", "A", "failure", "please cancel my order please", "find get"),
    _item("t4", "A", "success", "cancel my order please now", "find get cancel"),
    _item("t5", "B", "failure", "exchange the lamp for a brighter one", "find exchange"),
    _item("t6", "B", "failure", "exchange the lamp for a brighter lamp", "find exchange"),
    _item("t7", "C", "failure", "where is my parcel", "find track"),
]


def _facts() -> StackFacts:
    facts = StackFacts()
    patterns = {"t1": "p1", "t2": "p1", "t3": "p2", "t4": "p1", "t5": "p3", "t6": "p3"}
    facts.grouped = {t: Grouped(p, near_copy=t == "t6") for t, p in patterns.items()}
    facts.decided = {
        "t1": Decided("promote", "p1", "", "v1"),
        "t2": Decided("hold", "p1", "", "v1"),
        "t3": Decided("promote", "p2", "", "v1"),
        "t4": Decided("reject", "p1", "", "v1"),
        "t5": Decided("promote", "p3", "", "v1"),
    }
    facts.forwarded = {"t1", "t2", "t3", "t4", "t5"}
    facts.fixtures = [
        FixtureRow("f1", "p1", "regression_case", "active", "t1"),
        FixtureRow("f2", "p1", "grader_example", "active", "t1"),
        FixtureRow("f3", "p3", "regression_case", "active", "t5"),
        FixtureRow("f4", "p3", "grader_example", "active", "t5"),
        FixtureRow("f4", "p3", "grader_example", "active", "t6"),
    ]
    facts.dead = {"t7": DeadLetter("redaction", "RedactionFailed", "")}
    return facts


def test_the_figures_of_a_literal_run() -> None:
    report = evaluate(ITEMS, _facts())
    assert (report["runs"], report["failed_runs"], report["recurring_failing_tasks"]) == (7, 6, 2)
    pipeline = report["methods"]["pipeline"]
    # Failed runs: pairs A(t1,t2) merged right, A(t1,t3),(t2,t3) split, B(t5,t6) merged right.
    failed = pipeline["grouping_failed"]
    assert (failed["true_positives"], failed["false_positives"], failed["false_negatives"]) == (
        2,
        0,
        2,
    )
    assert failed["precision"] == 1.0 and failed["recall"] == 0.5
    # All runs: the success t4 merged with two failures of its task costs two false pairs.
    assert pipeline["grouping_all"]["false_positives"] == 2
    assert pipeline["patterns_per_recurring_task"]["distribution"] == {"1": 1, "2": 1}
    assert pipeline["one_promoted_pattern"] == {"count": 1, "of": 2, "share": 0.5}
    assert pipeline["successes_promoted"] == 0
    assert (pipeline["promotions"], pipeline["fixtures"]) == (3, 4)
    assert pipeline["fixtures_per_promoted_pattern"] == 2.0
    assert pipeline["fixture_kinds"] == {"grader_example": 2, "regression_case": 2}
    assert pipeline["failing_tasks_covered"] == 2
    every = report["methods"]["promote_every_failure"]
    assert (every["promotions"], every["fixtures"]) == (6, 12)
    assert pipeline["fixtures_vs_every_failure"] == pytest.approx(4 / 12, abs=1e-4)
    assert report["no_decision"] == {
        "total": 2,
        "reasons": {"dead-lettered (redaction)": 1, "near copy of an exemplar": 1},
    }
    verdict = {v["name"]: v["pass"] for v in report["floors"]}
    assert verdict["failed runs: pairwise precision"] is True
    assert verdict["failed runs: pairwise recall"] is False
    assert verdict["successes promoted"] is True


def test_a_promoted_success_fails_its_floor() -> None:
    facts = _facts()
    facts.decided["t4"] = Decided("promote", "p1", "", "v1")
    report = evaluate(ITEMS, facts)
    assert report["methods"]["pipeline"]["successes_promoted"] == 1
    assert {v["name"]: v["pass"] for v in report["floors"]}["successes promoted"] is False


def test_baselines_group_by_tool_sequence_and_by_user_turn_bigrams() -> None:
    tools = tool_sequence_groups(ITEMS)
    assert tools["t1"] == tools["t2"] != tools["t3"]
    assert tools["t1"] != tools["t4"], "outcome splits"
    jaccard = jaccard_groups(ITEMS)
    assert jaccard["t1"] == jaccard["t2"] == jaccard["t3"]
    assert jaccard["t5"] == jaccard["t6"] != jaccard["t1"]
    assert jaccard["t4"] != jaccard["t1"], "same words, other outcome"
    assert len({jaccard[t] for t in ("t1", "t5", "t7", "t4")}) == 4


def test_missing_runs_count_as_groups_of_their_own_and_are_explained() -> None:
    report = evaluate(ITEMS, StackFacts())
    assert report["methods"]["pipeline"]["grouping_failed"]["true_positives"] == 0
    assert report["no_decision"]["reasons"] == {"missing (never reached dedupe)": 7}
    assert all(not v["pass"] for v in verdicts(report["methods"]["pipeline"])[:4])
    assert len(report["floors"]) == len(FLOORS)


def test_the_report_renders_every_corpus_floor_and_the_threshold_section() -> None:
    figures = evaluate(ITEMS, _facts())
    report = {
        "meta": {
            "command": "python -m tools.corpus.real eval --quick",
            "date": "2026-01-01 00:00 UTC",
            "commit": "abc123",
            "uncommitted": ["services/dedupe/logic.py"],
            "input": "literal",
            "seed": 0,
            "seconds": 1.0,
        },
        "corpora": {"tau2": figures, "wiki": figures},
    }
    text = markdown(report)
    assert "commit `abc123`" in text and "`services/dedupe/logic.py`" in text
    assert text.count("| tau2 | failed runs: pairwise recall | 0.500 | >= 0.6 | FAIL |") == 1
    assert "## Threshold choice" in text and THRESHOLD_PLACEHOLDER in text
    assert "| pairwise precision, failed runs | 1.000 |" in text


def test_waiting_gives_up_when_a_stage_process_has_exited(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    readings = iter([False, False, True])
    monkeypatch.setattr(stack, "wait_for_idle", lambda bootstrap, timeout_s: next(readings))
    checks: list[int] = []

    def exited() -> list[str]:
        checks.append(1)
        return ["redaction"] if len(checks) == 2 else []

    assert stack.wait_until_idle("broker", 600.0, exited) == (False, ["redaction"])
    assert len(checks) == 2, "stages are checked between slices of the wait"
    (tmp_path / "redaction.log").write_text(
        "started\nImportError: no module x\nerror: Unclosed AIOKafkaProducer\ndone\n\n"
    )
    assert stack._last_error(tmp_path, "redaction") == "ImportError: no module x"
    assert stack._last_error(tmp_path, "scoring") == "exited (no log)"
