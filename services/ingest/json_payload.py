"""JSON payloads: one document, a JSON list, or JSONL; each OTLP JSON or a native Trace."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import accumulate
from typing import Any

from pydantic import ValidationError

from services.ingest.fragments import merge_by_trace_id
from services.ingest.invalid_payload import InvalidPayload, describe_validation
from services.ingest.otlp import decode_otlp_json
from shared.events import Trace

_ZERO = timedelta(0)
_UTF8_BOM = b"\xef\xbb\xbf"
# A complete JSON string, escapes included.
_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_A_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class _NonFiniteNumber(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFiniteNumber(f"number out of range: {text[:20]}")
    return value


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(f"{name} is not valid JSON")


# What json.loads(text, parse_float=..., parse_constant=...) builds again on every call.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    if text.startswith("\ufeff"):
        # json.loads refuses a BOM in a str itself (the decoder does not): its own words.
        return json.loads(text, parse_float=_finite_float, parse_constant=_reject_constant)
    return _DECODER.decode(text)


def _check_json_depth(text: str, max_depth: int) -> None:
    # json.loads recurses once per nesting level; measure bracket depth first so hostile
    # nesting is refused before the parser (or pydantic, or protobuf) recurses into it.
    # The regular expressions do the scanning in C: strings out, then all but brackets.
    opened = text.count("[") + text.count("{")
    if opened <= max_depth:
        return
    # Each adjacent empty pair ("documents": [], "attributes": {}: a few per span) closes
    # what it opened: with E of them, no point nests deeper than opened - E + 1 (the one
    # pair it may sit in). A bound, in or out of strings: the costly scan is for the rest.
    if opened - text.count("[]") - text.count("{}") < max_depth:
        return
    outside_strings = _JSON_STRING_RE.sub("", text)
    # A quote left is an unterminated string: the JSON is invalid and json.loads will say
    # where; only the brackets before it are counted.
    outside_strings = outside_strings.split('"', 1)[0]
    brackets = _NOT_A_BRACKET_RE.sub("", outside_strings)
    if max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > max_depth:
        raise InvalidPayload("too_deep", f"JSON nests deeper than {max_depth} levels")


def decode_json(data: bytes, max_depth: int) -> list[Trace]:
    text = _checked_text(data, max_depth)
    trace = _single_native_trace(data.removeprefix(_UTF8_BOM))
    if trace is not None:
        return [trace]
    return _decode_documents(text, max_depth)


def _checked_text(data: bytes, max_depth: int) -> str:
    # What is refused before any parser runs, on either path.
    data = data.removeprefix(_UTF8_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload("not_utf8", f"byte {exc.start} is not valid UTF-8") from None
    if not text.strip():
        raise InvalidPayload("invalid_json", "empty payload")
    _check_json_depth(text, max_depth)
    return text


# A body that may be one native trace: an object, not OTLP JSON (whose one key is this).
_MAYBE_NATIVE_RE = re.compile(rb'[ \t\r\n]*\{(?![ \t\r\n]*"resource(?:Spans|_spans)")')
# The bytes by class, to find numbers: a digit, or an exponent's "+", reads "0", e or E "e",
# what may end a number ",", and I "N", so that NaN and Infinity both start with N. Every
# other byte stays itself. Each pattern below has a literal start: the scans are quick.
_NUMBER_CLASSES = bytes.maketrans(b"0123456789+eE,}] \t\r\nI", b"00000000000ee,,,,,,,N")
_NAN_OR_INFINITY_RE = re.compile(rb"N(?:aN|nfinity)")
# An exponent of 3 digits or more where the number ends: 1e400, 1E+309 (and 1e+20, its "+"
# read as a digit). In a string, hex such as "3e400f" does not end there.
_BIG_EXPONENT_RE = re.compile(rb"e000+,")


def _single_native_trace(data: bytes) -> Trace | None:
    """The common body, one native trace, parsed and validated in one pass by pydantic's JSON
    parser (json.loads plus model_validate take nearly twice as long). None whenever the result
    might differ from _decode_documents', which then decides and alone words any refusal.
    """
    # A failed attempt is a parse wasted, and a dear one if the error holds a large input
    # (OTLP JSON fails as an extra field): skip what is plainly something else.
    if not _MAYBE_NATIVE_RE.match(data):
        return None
    try:
        trace = Trace.model_validate_json(data)
    except ValidationError:
        # JSONL, invalid JSON, a lone surrogate escape, any schema error, no trace_id (the
        # schema wants one, non-empty): the general path says what json.loads would.
        return None
    if _may_hold_non_finite(data):
        return None
    return _with_utc_times(trace)


def _may_hold_non_finite(data: bytes) -> bool:
    # json.loads, as the general path calls it, refuses NaN, Infinity and numbers past the
    # float range; pydantic's parser reads them as floats, which a float field or attributes
    # keep, and which a repeated key drops unseen: only the bytes tell. Past the range means
    # an exponent of 3+ digits or, with 2 at most, 200+ digits before the point. A string
    # that merely looks so (an order id "4XD0E127 ") costs the general path, nothing more.
    classes = data.translate(_NUMBER_CLASSES)
    return (
        _NAN_OR_INFINITY_RE.search(classes) is not None
        or _BIG_EXPONENT_RE.search(classes) is not None
        or b"0" * 200 in classes
    )


def _decode_documents(text: str, max_depth: int) -> list[Trace]:
    # The general path: any body _checked_text passed, whatever it holds.
    documents: list[Any]
    try:
        documents = [_loads(text)]
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise InvalidPayload("invalid_json", _json_error(exc)) from None
        documents = _loads_lines(text)
    except RecursionError:
        raise InvalidPayload("too_deep", "JSON nests too deeply to parse") from None
    except ValueError as exc:
        raise InvalidPayload("invalid_json", _value_error(exc)) from None
    if len(documents) == 1 and isinstance(documents[0], list):
        documents = documents[0]
    traces: list[Trace] = []
    for document in documents:
        traces.extend(_from_json_document(document, max_depth))
    return merge_by_trace_id(traces)


def _loads_lines(text: str) -> list[Any]:
    # Split on "\n" only: str.splitlines() also splits on U+2028 and friends, which JSON
    # allows raw inside strings.
    documents = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            documents.append(_loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidPayload("invalid_json", f"line {number}: {_json_error(exc)}") from None
        except RecursionError:
            raise InvalidPayload("too_deep", f"line {number} nests too deeply") from None
        except ValueError as exc:
            raise InvalidPayload("invalid_json", f"line {number}: {_value_error(exc)}") from None
    return documents


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}"


def _value_error(exc: ValueError) -> str:
    if isinstance(exc, _NonFiniteNumber):
        return str(exc)
    return "a number is out of range"


def _from_json_document(document: Any, max_depth: int) -> list[Trace]:
    if not isinstance(document, dict):
        raise InvalidPayload(
            "schema", f"expected a JSON object (a trace), got {_json_type(document)}"
        )
    if "resourceSpans" in document or "resource_spans" in document:
        return decode_otlp_json(document, max_depth)
    return [_native_trace(document)]


def _json_type(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "a list"
        case _:
            return type(value).__name__


def _native_trace(document: dict[str, Any]) -> Trace:
    trace_id = document.get("trace_id")
    if trace_id is None or trace_id == "":
        raise InvalidPayload("missing_trace_id", "native trace has no trace_id")
    try:
        trace = Trace.model_validate(document)
    except ValidationError as exc:
        raise InvalidPayload("schema", describe_validation(exc)) from None
    except RecursionError:
        raise InvalidPayload("too_deep", "native trace nests too deeply") from None
    return _with_utc_times(trace)


def _all_in_utc(trace: Trace) -> bool:
    # The times here were parsed by pydantic from JSON, which gives every time of one
    # offset the same tzinfo object, of a fixed offset: the offset is asked once per such
    # object, not once per time. A naive time's utcoffset() is None: not UTC.
    checked: tzinfo | None = UTC
    for span in trace.spans:
        for moment in (span.start_time, span.end_time):
            if moment is None or moment.tzinfo is checked:
                continue
            if moment.utcoffset() != _ZERO:
                return False
            checked = moment.tzinfo
    return True


def _with_utc_times(trace: Trace) -> Trace:
    # Downstream arithmetic mixes times from many sources; naive or offset datetimes would
    # raise or mislead there. Naive times are read as UTC.
    def utc(moment: datetime) -> datetime:
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        if moment.tzinfo is UTC or moment.utcoffset() == _ZERO:
            # pydantic parses "Z" to a UTC offset of its own: already UTC, nothing to copy.
            return moment
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise InvalidPayload("schema", "a span time is out of range in UTC") from None

    if _all_in_utc(trace):
        return trace  # what nearly every sender sends: nothing to convert, nothing to copy
    spans = []
    changed = False
    for span in trace.spans:
        start = utc(span.start_time)
        end = None if span.end_time is None else utc(span.end_time)
        if start is not span.start_time or end is not span.end_time:
            changed = True
            span = span.model_copy(update={"start_time": start, "end_time": end})
        spans.append(span)
    return trace.model_copy(update={"spans": tuple(spans)}) if changed else trace
