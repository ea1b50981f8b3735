"""decode_json's fast path for one native trace gives what the general path gives.

The general path (json.loads, then Trace.model_validate) is the reference: for every body the
fast path must return the very same traces, or leave the body to the general path so that the
refusal is the one it always was. Each test compares both on bodies the fast path could get
wrong: non-finite numbers, lone surrogates, duplicate keys, other document shapes, times.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from services.ingest.invalid_payload import InvalidPayload
from services.ingest.json_payload import (
    _checked_text,
    _decode_documents,
    _may_hold_non_finite,
    _single_native_trace,
    decode_json,
)
from shared.events import Trace
from tests.support.fuzz import fuzz_settings, json_values
from tools.corpus.generate import generate
from tools.corpus.otlp import CONVENTIONS, to_otlp_json

pytestmark = pytest.mark.logic

MAX_DEPTH = 64
BOM = b"\xef\xbb\xbf"

Decode = Callable[[bytes, int], list[Trace]]


def general(data: bytes, max_depth: int) -> list[Trace]:
    """The general path alone: what decode_json did before it had a fast path."""
    return _decode_documents(_checked_text(data, max_depth), max_depth)


def fields_set(value: Any) -> Any:
    """Which fields each model in the tree was given: repr and == do not tell."""
    if isinstance(value, BaseModel):
        return sorted(value.model_fields_set), [fields_set(v) for _, v in value]
    if isinstance(value, tuple):
        return [fields_set(v) for v in value]
    return None


def outcome(decode: Decode, data: bytes, max_depth: int = MAX_DEPTH) -> tuple[Any, ...]:
    """What a decode gives, exactly: repr tells 0 from 0.0 and -0.0, and one tzinfo from
    another; == is not used, as a NaN (in a string the schema reads as a float) is unequal
    to itself."""
    try:
        traces = decode(data, max_depth)
    except InvalidPayload as refused:
        return ("refused", refused.reason, refused.message)
    described = [(type(t), repr(t), fields_set(t)) for t in traces]
    return ("decoded", type(traces), described)


def assert_same(data: bytes, max_depth: int = MAX_DEPTH) -> tuple[Any, ...]:
    got = outcome(decode_json, data, max_depth)
    assert got == outcome(general, data, max_depth)
    return got


# --- bodies ------------------------------------------------------------------------------------


class Raw(str):
    """A JSON token written as it is: what json.dumps cannot write (1e400, -0, 1E2)."""


class Pairs(tuple[tuple[str, Any], ...]):
    """An object written pair by pair, so a key may repeat."""


def dump(value: Any, comma: str = ",", colon: str = ":", ascii_only: bool = True) -> str:
    def write(node: Any) -> str:
        if isinstance(node, Raw):
            return str(node)
        if isinstance(node, dict):
            node = Pairs(node.items())
        if isinstance(node, Pairs):
            return "{" + comma.join(f"{write(k)}{colon}{write(v)}" for k, v in node) + "}"
        if isinstance(node, list):
            return "[" + comma.join(map(write, node)) + "]"
        return json.dumps(node, ensure_ascii=ascii_only)

    return write(value)


def body(value: Any, **style: Any) -> bytes:
    # surrogatepass: a lone surrogate written raw (not escaped) makes invalid UTF-8, as it would.
    return dump(value, **style).encode("utf-8", "surrogatepass")


# Every field of every model set, with numbers where the schema has them, times with offsets.
FULL: dict[str, Any] = {
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "session_id": "sess-81",
    "user_id": "user-17",
    "agent_name": "support-agent",
    "agent_version": "2.4.1",
    "outcome": "failure",
    "spans": [
        {
            "span_id": "00f067aa0ba902b7",
            "parent_span_id": "53995c3f42cd8ad8",
            "name": "execute_tool refund",
            "kind": "tool",
            "start_time": "2026-11-01T07:28:14.149000Z",
            "end_time": "2026-11-01T09:28:16+02:00",
            "status": "error",
            "error_type": "RefundFailed",
            "error_message": "refund could not be issued",
            "input": "Refund order A-1009, it arrived broken \u00e9\u2028",
            "output": "I could not issue the refund \U0001f600",
            "model": "gpt-4o",
            "tool_name": "refund",
            "tool_arguments": '{"order": "A-1009"}',
            "tool_result": "error",
            "documents": [{"id": "kb-1", "content": "Refunds take 5 days", "score": 0.82}],
            "usage": {"input_tokens": 812, "output_tokens": 64, "cost_usd": 0.00267},
            "approval": "requested",
            "escalated": False,
            "retry_attempt": 1,
            "guardrail_triggered": True,
            "attributes": {
                "gen_ai.request.temperature": 0.2,
                "app.prompt_version": 7,
                "app.tags": ["a", 1.5, None, True, {"nested": -2.5e-3}],
            },
        },
        {
            "span_id": "53995c3f42cd8ad8",
            "name": "invoke_agent support-agent",
            "kind": "agent",
            "start_time": "2026-11-01T07:28:14",
        },
    ],
    "feedback": [
        {
            "source": "user",
            "name": "thumbs",
            "score": -1.0,
            "label": "bad",
            "explanation": "wrong refund",
        }
    ],
    "resource": {"service.name": "support", "host.cores": 8, "limits": {"rate": [0.5, 2]}},
}

# Tokens that json.loads, as the general path calls it, refuses: pydantic's JSON parser reads
# them as floats (inf, nan), which a float field and a free-form tree keep.
NON_FINITE = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1E+999",
    "1" + "0" * 400 + ".0",
]
# Values where the two parsers or the two validation modes could part ways.
HOSTILE: list[Any] = [
    *map(Raw, NON_FINITE),
    Raw("1" + "0" * 400),
    Raw("1" * 4301),
    Raw("-0"),
    Raw("-0.0"),
    Raw("1E2"),
    Raw("0.1e1"),
    Raw("1e-400"),
    Raw("123456789012345678901234567890"),
    Raw("9007199254740993"),
    Raw('"\\ud800"'),
    Raw('"\\udc00x"'),
    Raw('"\\ud83d\\ude00"'),
    Raw('"a\\u0000b"'),
    Raw('"a\x01b"'),
    Raw("01"),
    Raw("1."),
    Raw("[1,]"),
    "NaN",
    "-Infinity",
    "1e400",
    "7",
    " 7 ",
    "yes",
    "2026-11-01T07:28:14",
    "2026-11-01T07:28:14-05:30",
    "",
    "\ud800",
    0,
    1,
    -1,
    1.0,
    2.5,
    1_700_000_000,
    1_700_000_000_000,
    1_700_000_000.5,
    2**63,
    True,
    False,
    None,
    [],
    {},
    [1, "a"],
    {"a": Raw("NaN")},
    [[Raw("1e400")]],
    {"trace_id": "x"},
]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def replaced(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):  # a key not there yet is added last
        return {**node, head: replaced(node.get(head), rest, value)}
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(node)]


def at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


CORPUS = [labelled.trace for labelled in generate(seed=7, scale=5)]
CORPUS_BODIES = [trace.model_dump_json().encode() for trace in CORPUS]
BASES = [FULL, *(json.loads(b) for b in CORPUS_BODIES[:: len(CORPUS_BODIES) // 12])]


# --- the corpus: what senders send -------------------------------------------------------------


def test_every_corpus_trace_decodes_the_same_on_both_paths() -> None:
    for data in CORPUS_BODIES:
        assert assert_same(data)[0] == "decoded"


def test_the_fast_path_takes_nearly_every_corpus_trace() -> None:
    # Its byte check sends a body to the general path on a mere likeness of a huge number:
    # an order id "ord_4XD0E127 to" looks like 0E127 and a space.
    taken = [_single_native_trace(data) for data in CORPUS_BODIES]
    assert [t for t in taken if t is not None] == [
        trace for trace, fast in zip(CORPUS, taken, strict=True) if fast is not None
    ]
    assert taken.count(None) <= len(CORPUS) // 100


def test_the_full_document_sets_every_field_of_every_model_on_the_fast_path() -> None:
    # The hostile-value tests below reach every field only while FULL's first span sets every
    # field: a field added to the schema fails here until FULL has it too.
    def unset(model: BaseModel) -> Iterator[str]:
        for name in type(model).model_fields.keys() - model.model_fields_set:
            yield f"{type(model).__name__}.{name}"
        for _, value in model:
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, BaseModel):
                    yield from unset(item)

    first_span_only = replaced(FULL, ("spans",), FULL["spans"][:1])
    trace = _single_native_trace(body(first_span_only))
    assert trace is not None
    assert list(unset(trace)) == []
    assert [trace] == general(body(first_span_only), MAX_DEPTH)


# --- what the general path refuses or reads its own way -----------------------------------------


def test_hostile_nesting_is_refused_before_any_parser_runs() -> None:
    deep = body(replaced(FULL, ("resource",), {"deep": json.loads("[" * 100 + "]" * 100)}))
    # pydantic's parser alone would take it: only the depth check, first, refuses it.
    assert Trace.model_validate_json(deep).resource["deep"]
    assert assert_same(deep) == (
        "refused",
        "too_deep",
        f"JSON nests deeper than {MAX_DEPTH} levels",
    )
    deeper = body(replaced(FULL, ("resource",), Raw("[" * 100_000 + "]" * 100_000)))
    assert assert_same(deeper)[:2] == ("refused", "too_deep")


@pytest.mark.parametrize("token", NON_FINITE)
@pytest.mark.parametrize(
    "path",
    [
        ("spans", 0, "documents", 0, "score"),
        ("spans", 0, "usage", "cost_usd"),
        ("feedback", 0, "score"),
        ("spans", 0, "attributes", "gen_ai.request.temperature"),
        ("spans", 0, "attributes", "app.tags", 4, "nested"),
        ("resource", "limits", "rate", 0),
    ],
)
def test_non_finite_numbers_are_refused_where_a_float_would_keep_them(
    token: str, path: tuple[Any, ...]
) -> None:
    data = body(replaced(FULL, path, Raw(token)))
    assert _single_native_trace(data) is None
    assert assert_same(data)[:2] == ("refused", "invalid_json")


@pytest.mark.parametrize("token", [*NON_FINITE, "1" + "0" * 250 + "e99", "1e0400", "-1E+309"])
@pytest.mark.parametrize(
    "path", [(), ("spans", 0), ("spans", 0, "usage"), ("spans", 0, "attributes"), ("resource",)]
)
def test_a_non_finite_number_under_a_repeated_key_is_refused_as_before(
    token: str, path: tuple[Any, ...]
) -> None:
    # The later value replaces it: pydantic's parser never shows it, json.loads refuses it.
    node = at(FULL, path)
    key = next(iter(node))
    data = body(replaced(FULL, path, Pairs([(key, Raw(token)), *node.items()])))
    assert _may_hold_non_finite(data)
    assert assert_same(data)[:2] == ("refused", "invalid_json")


@pytest.mark.parametrize(
    "token",
    [*NON_FINITE, "1e+400", "1E400", "-1e0400", "1" + "0" * 250 + "e99", "1" + "0" * 309],
)
@pytest.mark.parametrize("template", ['{"a":%s}', '{"a": [%s]}', '{"a" : %s\n}', '{"a":%s,"b":1}'])
def test_the_byte_check_flags_every_spelling_of_a_non_finite_number(
    token: str, template: str
) -> None:
    assert _may_hold_non_finite((template % token).encode())


@pytest.mark.parametrize(
    "token",
    ["812", "0.00267", "-2.5e-3", "1e-05", "1.5e12", "1e99", '"3e400f"', '"e123"', '"Nan"'],
)
def test_the_byte_check_lets_ordinary_numbers_and_hex_through(token: str) -> None:
    assert not _may_hold_non_finite(
        f'{{"a":{token},"b":"4bf92f3577b34da6a3ce929d0e0e4736"}}'.encode()
    )


def test_a_huge_integer_in_a_float_field_is_refused_as_before() -> None:
    # json.loads reads it as an int, which no float holds; pydantic's parser makes it inf.
    data = body(replaced(FULL, ("spans", 0, "usage", "cost_usd"), Raw("1" + "0" * 400)))
    assert _single_native_trace(data) is None
    assert assert_same(data)[:2] == ("refused", "schema")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00x", "x\\udbff"])
@pytest.mark.parametrize(
    "path", [("spans", 0, "input"), ("spans", 0, "attributes", "app.tags", 0), ("resource", "k")]
)
def test_lone_surrogate_escapes_decode_as_the_general_path_decodes_them(
    escape: str, path: tuple[Any, ...]
) -> None:
    # json.loads keeps a lone surrogate; pydantic's parser refuses it, and must not mend it.
    got = assert_same(body(replaced(FULL, path, Raw(f'"{escape}"'))))
    assert got[0] == "decoded"
    assert escape in got[2][0][1]  # the repr writes a lone surrogate as its escape


def test_a_lone_surrogate_escape_in_a_key_decodes_as_before() -> None:
    attributes = Pairs([(Raw('"k\\ud800"'), 1)])
    got = assert_same(body(replaced(FULL, ("spans", 0, "attributes"), attributes)))
    assert got[0] == "decoded" and "k\\ud800" in got[2][0][1]


def test_a_surrogate_pair_escape_decodes_on_the_fast_path() -> None:
    data = body(replaced(FULL, ("spans", 0, "input"), Raw('"\\ud83d\\ude00"')))
    trace = _single_native_trace(data)
    assert trace is not None and trace.spans[0].input == "\U0001f600"
    assert_same(data)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (Pairs([*FULL.items(), ("trace_id", "0" * 32)]), "decoded"),
        (Pairs([("trace_id", ""), *FULL.items()]), "decoded"),
        (Pairs([*FULL.items(), ("trace_id", "")]), "refused"),
        (Pairs([*FULL.items(), ("spans", [{**FULL["spans"][1], "span_id": "other"}])]), "decoded"),
        (
            replaced(FULL, ("spans", 0), Pairs([*FULL["spans"][0].items(), ("name", "x")])),
            "decoded",
        ),
        (
            replaced(FULL, ("spans", 0), Pairs([*FULL["spans"][0].items(), ("usage", None)])),
            "decoded",
        ),
        (replaced(FULL, ("resource",), Pairs([("x", {"y": 1}), ("x", {"z": 2})])), "decoded"),
        (replaced(FULL, ("resource",), Pairs([("b", 1), ("a", 2), ("b", 3)])), "decoded"),
        # json.loads refuses the NaN even though a later value replaces it.
        (replaced(FULL, ("resource",), Pairs([("c", Raw("NaN")), ("c", 4)])), "refused"),
    ],
)
def test_duplicate_keys_keep_the_last_value_in_the_first_place(
    document: Any, expected: str
) -> None:
    assert assert_same(body(document))[0] == expected


@pytest.mark.parametrize(
    "data",
    [
        BOM + body(FULL),
        BOM + BOM + body(FULL),
        b" \t\r\n" + body(FULL) + b"\r\n \t",
        body(FULL, comma=", ", colon=": "),
        json.dumps(FULL, indent=2).encode(),
        json.dumps(FULL, ensure_ascii=False).encode(),
        b"\x0c" + body(FULL),
        "\u00a0".encode() + body(FULL),
        body(FULL) + "\u2028".encode(),
        body(FULL) + b"\x00",
        body(FULL)[:-1],
        body(FULL) + b"}",
        body(FULL) + b",",
        b"",
        b"   \n",
        BOM,
    ],
)
def test_bom_whitespace_and_framing_decode_as_before(data: bytes) -> None:
    assert_same(data)


def test_a_bom_and_json_whitespace_still_take_the_fast_path() -> None:
    for data in [BOM + body(FULL), b" \n\t" + body(FULL) + b"\r\n"]:
        assert _single_native_trace(data.removeprefix(BOM)) is not None
        assert assert_same(data)[0] == "decoded"


def test_lists_jsonl_and_otlp_documents_decode_as_before() -> None:
    other = replaced(FULL, ("trace_id",), "0" * 32)
    otlp = [to_otlp_json(Trace.model_validate(FULL), c) for c in CONVENTIONS]
    bodies = [
        body([FULL, other]),
        body([FULL, FULL]),
        body([FULL]),
        body([]),
        (dump(FULL) + "\n" + dump(other) + "\n").encode(),
        (dump(FULL) + "\n\n" + dump(FULL)).encode(),
        (dump(FULL) + "\n" + dump(replaced(FULL, ("resource", "n"), Raw("NaN")))).encode(),
        *(body(document) for document in otlp),
        *(body({"trace_id": "t", "spans": FULL["spans"], **document}) for document in otlp),
        *(body({**document, "trace_id": "t"}) for document in otlp),
        body({"resource_spans": []}),
    ]
    outcomes = [assert_same(data) for data in bodies]
    assert [len(o[2]) for o in outcomes[:3]] == [2, 1, 1]


@pytest.mark.parametrize(
    "document",
    [
        {k: v for k, v in FULL.items() if k != "trace_id"},
        replaced(FULL, ("trace_id",), ""),
        replaced(FULL, ("trace_id",), None),
        replaced(FULL, ("trace_id",), 123),
        replaced(FULL, ("trace_id",), "x" * 65),
        {"trace_id": ""},
        {},
    ],
)
def test_a_missing_or_empty_trace_id_is_refused_as_before(document: Any) -> None:
    got = assert_same(body(document))
    assert got[0] == "refused"
    if document.get("trace_id", "") in ("", None):
        assert got[1] == "missing_trace_id"


@pytest.mark.parametrize(
    "document",
    [
        {**FULL, "unexpected": 1},
        replaced(FULL, ("spans", 0), {**FULL["spans"][0], "unexpected": None}),
        replaced(FULL, ("feedback", 0), {**FULL["feedback"][0], "unexpected": "x"}),
    ],
)
def test_extra_fields_are_refused_as_before(document: Any) -> None:
    assert assert_same(body(document))[:2] == ("refused", "schema")


@pytest.mark.parametrize("document", ['"x"', "1", "null", "true", "[1]", "[[]]", '[{}, "x"]'])
def test_documents_that_are_not_objects_are_refused_as_before(document: str) -> None:
    assert assert_same(document.encode())[0] == "refused"


@pytest.mark.parametrize(
    "data",
    [
        body(FULL).replace(b"support", b"supp\xffort"),
        body(FULL).replace(b"support", b"supp\xc3"),
        body(FULL).replace(b"Refund", b"\xed\xa0\x80"),
        b"\xff" + body(FULL),
    ],
)
def test_invalid_utf8_is_refused_as_before(data: bytes) -> None:
    assert assert_same(data)[:2] == ("refused", "not_utf8")


def test_naive_and_offset_times_come_out_in_utc_on_the_fast_path() -> None:
    data = body(FULL)
    trace = _single_native_trace(data)
    assert trace is not None
    times = [t for s in trace.spans for t in (s.start_time, s.end_time) if t is not None]
    assert [t.utcoffset() for t in times] == [timedelta(0)] * 3
    assert trace.spans[0].end_time == trace.spans[0].start_time.replace(second=16, microsecond=0)
    assert assert_same(data)[0] == "decoded"


def test_the_result_is_a_list_of_traces() -> None:
    got = decode_json(body(FULL), MAX_DEPTH)
    assert type(got) is list
    assert [type(t) for t in got] == [Trace]


# --- every place, every hostile value ---------------------------------------------------------


@pytest.mark.parametrize("path", list(paths(FULL)), ids=lambda p: ".".join(map(str, p)) or "root")
def test_a_hostile_value_anywhere_decodes_as_the_general_path_decodes_it(
    path: tuple[Any, ...],
) -> None:
    for value in HOSTILE:
        assert_same(body(replaced(FULL, path, value)))


@pytest.mark.parametrize("path", [p for p in paths(FULL) if isinstance(at(FULL, p), dict)], ids=str)
def test_each_key_repeated_dropped_or_escaped_decodes_as_before(path: tuple[Any, ...]) -> None:
    node = at(FULL, path)
    for key in node:
        for value in [Raw("NaN"), None, "x", 1.5, node[key]]:
            assert_same(body(replaced(FULL, path, Pairs([*node.items(), (key, value)]))))
            assert_same(body(replaced(FULL, path, Pairs([(key, value), *node.items()]))))
        assert_same(body(replaced(FULL, path, {k: v for k, v in node.items() if k != key})))
        escaped = Raw(json.dumps(key).replace("_", "\\u005f").replace("e", "\\u0065"))
        renamed = Pairs((escaped if k == key else k, v) for k, v in node.items())
        assert_same(body(replaced(FULL, path, renamed)))


# --- generated bodies ---------------------------------------------------------------------------

FUZZ = fuzz_settings(300)
JSON_VALUE = json_values(HOSTILE, text_size=12, key_size=8, width=3, leaves=8)
STYLES = st.sampled_from(
    [
        {},
        {"comma": ", ", "colon": ": "},
        {"comma": ",\n  ", "colon": " : "},
        {"ascii_only": False},
    ]
)


@FUZZ
@given(data=st.data(), base=st.sampled_from(BASES), style=STYLES)
def test_generated_variations_of_native_traces_decode_the_same_on_both_paths(
    data: st.DataObject, base: Any, style: dict[str, Any]
) -> None:
    document = base
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(paths(document))))
        document = replaced(document, path, data.draw(JSON_VALUE))
    objects = [p for p in paths(document) if isinstance(at(document, p), dict) and at(document, p)]
    repeat_a_key: bool = data.draw(st.booleans())
    if objects and repeat_a_key:  # a key written twice, the first value dropped
        path = data.draw(st.sampled_from(objects))
        node = at(document, path)
        key = data.draw(st.sampled_from(list(node)))
        document = replaced(document, path, Pairs([(key, data.draw(JSON_VALUE)), *node.items()]))
    assert_same(body(document, **style))


EDIT_BYTES = b'0123456789eE.-+"\\{}[],:nNaI \xff'
SMALL = body(replaced(FULL, ("spans",), FULL["spans"][1:]))


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(SMALL)), st.sampled_from(EDIT_BYTES)),
        min_size=1,
        max_size=4,
    ),
    how=st.sampled_from(["replace", "insert", "delete"]),
)
def test_byte_edits_of_a_native_trace_decode_the_same_on_both_paths(
    edits: list[tuple[int, int]], how: str
) -> None:
    data = bytearray(SMALL)
    for position, byte in edits:
        index = min(position, len(data) - 1)
        if how == "replace":
            data[index] = byte
        elif how == "insert":
            data.insert(index, byte)
        else:
            del data[index]
    assert_same(bytes(data))
