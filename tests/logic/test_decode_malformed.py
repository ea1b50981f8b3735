"""Hostile input: decode_payload returns Traces or raises InvalidPayload, never anything else."""

from __future__ import annotations

import copy
import gzip
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.ingest.decode import InvalidPayload, decode_payload
from shared.events import Trace
from tests.logic.test_otlp_encode import LITERAL
from tests.support.fuzz import fuzz_settings, json_values
from tools.corpus.otlp import CONVENTIONS, to_otlp_json, to_otlp_proto

pytestmark = pytest.mark.logic

CONTENT_TYPES = st.sampled_from(
    [None, "application/json", "application/x-protobuf", "application/x-ndjson", "text/plain"]
)
VALID_PROTO = [to_otlp_proto(LITERAL, c) for c in CONVENTIONS]
VALID_OTLP_JSON = [to_otlp_json(LITERAL, c) for c in CONVENTIONS]
VALID_NATIVE = json.loads(LITERAL.model_dump_json())
VALID_JSON_TEXT = [json.dumps(d) for d in [*VALID_OTLP_JSON, VALID_NATIVE]]

FUZZ = fuzz_settings(200)

JSON_VALUE = json_values(
    ["", "00" * 16, "zz", "0a" * 8, "NaN", "-1", "1e400", "AAAA"],
    text_size=20,
    key_size=12,
    width=4,
    leaves=12,
)


def decodes_or_refuses(payload: bytes, content_type: str | None, **limits: Any) -> None:
    try:
        traces = decode_payload(payload, content_type, **limits)
    except InvalidPayload as refused:
        assert refused.reason and isinstance(refused.reason, str)
        return
    assert isinstance(traces, list)
    assert all(isinstance(t, Trace) for t in traces)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    document = copy.deepcopy(document)
    node = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return document


@FUZZ
@given(payload=st.binary(max_size=512), content_type=CONTENT_TYPES)
@example(payload=b"\x1f\x8b", content_type=None)
@example(payload=b"\x0a", content_type=None)
@example(payload=b"\xef\xbb\xbf", content_type=None)
@example(payload=b'"\\"\\"\\"', content_type=None)
def test_random_bytes_decode_or_are_refused(payload: bytes, content_type: str | None) -> None:
    decodes_or_refuses(payload, content_type)


@FUZZ
@given(
    base=st.sampled_from(VALID_PROTO),
    edits=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from("rid")),
        min_size=1,
        max_size=6,
    ),
    cut=st.none() | st.integers(0, 10_000),
    content_type=CONTENT_TYPES,
)
def test_mutated_protobuf_decodes_or_is_refused(
    base: bytes,
    edits: list[tuple[int, int, str]],
    cut: int | None,
    content_type: str | None,
) -> None:
    data = bytearray(base)
    for position, byte, how in edits:
        at = position % (len(data) + 1)
        if how == "r" and at < len(data):
            data[at] = byte
        elif how == "i":
            data.insert(at, byte)
        elif how == "d" and at < len(data):
            del data[at]
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    decodes_or_refuses(bytes(data), content_type)


@FUZZ
@given(
    base=st.sampled_from(VALID_JSON_TEXT),
    edits=st.lists(
        st.tuples(st.integers(0, 100_000), st.characters(), st.sampled_from("rid")),
        min_size=1,
        max_size=6,
    ),
    content_type=CONTENT_TYPES,
)
def test_mutated_json_text_decodes_or_is_refused(
    base: str, edits: list[tuple[int, str, str]], content_type: str | None
) -> None:
    text = list(base)
    for position, char, how in edits:
        at = position % (len(text) + 1)
        if how == "r" and at < len(text):
            text[at] = char
        elif how == "i":
            text.insert(at, char)
        elif how == "d" and at < len(text):
            del text[at]
    decodes_or_refuses("".join(text).encode("utf-8", "surrogatepass"), content_type)


@FUZZ
@given(data=st.data(), base=st.sampled_from([*VALID_OTLP_JSON, VALID_NATIVE]), value=JSON_VALUE)
def test_valid_documents_with_a_value_of_the_wrong_type_decode_or_are_refused(
    data: st.DataObject, base: dict[str, Any], value: Any
) -> None:
    path = data.draw(st.sampled_from(paths(base)))
    document = replaced(base, path, value)
    decodes_or_refuses(json.dumps(document, allow_nan=True).encode(), "application/json")


@FUZZ
@given(document=JSON_VALUE, content_type=CONTENT_TYPES)
def test_arbitrary_json_documents_decode_or_are_refused(
    document: Any, content_type: str | None
) -> None:
    decodes_or_refuses(json.dumps(document).encode(), content_type)
    decodes_or_refuses(json.dumps({"resourceSpans": document}).encode(), content_type)
    decodes_or_refuses(json.dumps({"trace_id": "t", "spans": document}).encode(), content_type)


@FUZZ
@given(
    depth=st.integers(1, 3_000),
    opener=st.sampled_from(["[", '{"a":', '{"resourceSpans":[{"scopeSpans":[{"spans":[']),
    max_depth=st.integers(1, 200),
)
def test_deep_nesting_is_refused_before_any_parser_recurses(
    depth: int, opener: str, max_depth: int
) -> None:
    payload = (opener * depth + "1").encode()
    decodes_or_refuses(payload, None, max_depth=max_depth)


@FUZZ
@given(depth=st.integers(1, 100), max_depth=st.integers(1, 120))
def test_deeply_nested_attribute_values_decode_or_are_refused(depth: int, max_depth: int) -> None:
    value: Any = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    document = copy.deepcopy(VALID_OTLP_JSON[0])
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"].append({"key": "deep", "value": value})
    as_json = json.dumps(document).encode()
    decodes_or_refuses(as_json, "application/json", max_depth=max_depth)
    proto = decode_payload(as_json, "application/json", max_depth=10_000)
    decodes_or_refuses(to_otlp_proto(proto[0]), "application/x-protobuf", max_depth=max_depth)


@FUZZ
@given(
    digits=st.integers(1, 6_000),
    where=st.sampled_from(["intValue", "doubleValue", "startTimeUnixNano", "code"]),
)
def test_huge_numbers_decode_or_are_refused(digits: int, where: str) -> None:
    number = "9" * digits
    text = json.dumps(VALID_OTLP_JSON[0])
    if where == "intValue":
        text = text.replace('"intValue": "', f'"intValue": {number}, "x": "', 1)
    elif where == "doubleValue":
        text = text.replace('"doubleValue": ', f'"doubleValue": {number}e{digits}, "y": ', 1)
    elif where == "startTimeUnixNano":
        text = text.replace('"startTimeUnixNano": "', f'"startTimeUnixNano": "{number}", "z": "', 1)
    else:
        text = text.replace('"code": ', f'"code": {number}, "w": ', 1)
    decodes_or_refuses(text.encode(), "application/json")


@FUZZ
@given(payload=st.binary(max_size=256), prefix=st.sampled_from([b"", b"{", b'{"trace_id": "']))
def test_text_that_is_not_utf8_is_refused(payload: bytes, prefix: bytes) -> None:
    decodes_or_refuses(prefix + payload + b"\xff\xfe", "application/json")


@FUZZ
@given(
    inner=st.sampled_from([*VALID_PROTO, *(t.encode() for t in VALID_JSON_TEXT)]) | st.binary(),
    cut=st.none() | st.integers(0, 5_000),
    tail=st.binary(max_size=8),
    content_type=CONTENT_TYPES,
    max_bytes=st.sampled_from([64, 4_096, 8 * 1024 * 1024]),
)
def test_gzip_garbage_decodes_or_is_refused(
    inner: bytes, cut: int | None, tail: bytes, content_type: str | None, max_bytes: int
) -> None:
    packed = gzip.compress(inner)
    if cut is not None:
        packed = packed[: cut % (len(packed) + 1)]
    decodes_or_refuses(packed + tail, content_type, max_bytes=max_bytes)
