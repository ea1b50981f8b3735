"""The shortcuts that make redaction cheaper find exactly what the plain way finds: the
positions a cue can start at, the postcode families a text can hold, the scanner's memo,
the fields the walk leaves out."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.redaction import addresses, lowercase_names
from services.redaction.detectors import Finding
from services.redaction.logic import DEFAULT_SCANNER, redact_trace, redacts_nothing
from services.redaction.scanner import _Memo
from services.redaction.values import fields_of
from shared.events import Document, Span, Trace, Usage
from tests.support.builders import refund_trace

pytestmark = pytest.mark.logic

CUED = (
    (lowercase_names._LOWER_NAME, lowercase_names._LOWER_CUES, lowercase_names._LOWER_NAME_STARTS),
    (
        lowercase_names._LOWER_SIGN_OFF,
        lowercase_names._SIGN_OFF_CUES,
        lowercase_names._SIGN_OFF_STARTS,
    ),
    (
        lowercase_names._LOWER_GREETING_HERE,
        lowercase_names._GREETING_CUES,
        lowercase_names._GREETING_STARTS,
    ),
)


def _caseless_variants(chars: set[str]) -> dict[str, list[str]]:
    """Every code point each character matches as a case-insensitive literal."""
    either = re.compile("(?i:" + "|".join(map(re.escape, sorted(chars))) + ")").fullmatch
    found = [chr(cp) for cp in range(0x110000) if either(chr(cp))]
    return {c: [ch for ch in found if re.fullmatch("(?i:" + re.escape(c) + ")", ch)] for c in chars}


@pytest.mark.parametrize("pattern,cues,starts", CUED)
def test_every_way_of_writing_a_cue_opening_is_a_start(
    pattern: re.Pattern[str], cues: str, starts: re.Pattern[str]
) -> None:
    words = cues.split("|")
    variants = _caseless_variants({c for w in words for c in w[:2]})
    for w in words:
        for first in variants[w[0]]:
            for second in variants[w[1]]:
                assert starts.match(" " + first + second, 1), (w, first, second)


FRAGMENTS = [
    *"|".join(cues for _, cues, _ in CUED).split("|"),
    "mark", "jane doe", "ruby", "here", "speaking", "mr", "dr.", "o'brien", "and", "sorry",
    "Im", "\u0130", "\u0131", "\u017f", "\u212a", "é", "\u2019", "ok", "x",
    "SW1A 1AA", "GIR 0AA", "M5V 2T6", "D6W 1234", "A65 F4E2", "APO AE 09012", "USS Nimitz",
    "PSC 123, Box 45", "CA 94105", "NSW 2000", "TX. 75001-1234", "95748 Kulmbach",
    "1234 AB Amsterdam", "02-790 Lubin", "Hapur-163726", "Orai 828807", "cus_5MZ7NJB0",
    "#", "12", "123456",
]  # fmt: skip
SEPARATORS = ["", " ", "  ", ", ", ",", "\n", "\n ", "\t", ".", "!", ":", "-"]
TEXTS = st.lists(
    st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(SEPARATORS)), max_size=10
).map(lambda parts: "".join(a + b for a, b in parts))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_matching_from_the_cue_starts_is_finditer(text: str) -> None:
    for pattern, _, starts in CUED:
        plain = [(m.span(), m.groups()) for m in pattern.finditer(text)]
        fast = [(m.span(), m.groups()) for m in lowercase_names._matches(pattern, starts, text)]
        assert fast == plain


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_the_postcode_families_left_find_what_all_of_them_find(text: str) -> None:
    everything = addresses._postcode_alternation((True,) * len(addresses._POSTCODE_FAMILIES))
    assert everything is not None
    pruned = addresses._postcode_pattern(text)
    plain = [m.span() for m in everything.finditer(text)]
    assert ([m.span() for m in pruned.finditer(text)] if pruned is not None else []) == plain


def test_the_memo_keeps_recent_strings_and_stays_bounded() -> None:
    memo = _Memo(4)
    found = ((0, Finding(0, 1, "EMAIL", "a")),)
    for i in range(10):
        memo.put(f"s{i}", found)
    assert memo.get("s9") == found and memo.get("s0") is None
    assert len(memo._current) + len(memo._older) <= 8
    memo.put("hot", ())
    for i in range(3):
        memo.put(f"t{i}", ())  # "hot" moves to the older generation ...
    assert memo.get("hot") == ()  # ... and a hit carries it back into the current one
    for i in range(3):
        memo.put(f"u{i}", ())
    assert memo.get("hot") == ()


def test_a_memoised_scan_is_the_scan() -> None:
    session = DEFAULT_SCANNER.session()
    text = "call me on +44 20 7946 0958, I'm Jane Doe, SW1A 1AA"
    first = DEFAULT_SCANNER.findings(text, session)
    again = DEFAULT_SCANNER.findings(text, session)
    assert first == again == DEFAULT_SCANNER.findings(text, session, use_prefilter=False)
    again.clear()  # callers may extend the list they get; the memo's copy is theirs alone
    assert DEFAULT_SCANNER.findings(text, session) == first


def test_the_walk_leaves_out_only_fields_declared_as_times_numbers_flags_or_enumerations() -> None:
    skipped = set(Span.model_fields) - set(fields_of(Span)[0])
    assert skipped == {
        "kind",
        "start_time",
        "end_time",
        "status",
        "usage",
        "escalated",
        "retry_attempt",
        "guardrail_triggered",
    }
    assert fields_of(Usage)[0] == ()
    assert set(fields_of(Trace)[0]) == set(Trace.model_fields)  # every field holds text
    assert fields_of(Document)[0] == ("id", "content")


def test_a_trace_with_every_structural_field_set_is_redacted_as_before() -> None:
    base = refund_trace()
    spans = tuple(
        s.model_copy(
            update={
                "usage": Usage(input_tokens=4111111111111111, output_tokens=12, cost_usd=0.5),
                "retry_attempt": 4111111111111111,
                "escalated": True,
                "guardrail_triggered": False,
                "tool_result": "card 4111 1111 1111 1111 for Jane Doe, jane@example.org",
            }
        )
        for s in base.spans
    )
    clean, _ = redact_trace(base.model_copy(update={"spans": spans}))
    assert [s.usage for s in clean.spans] == [s.usage for s in spans]
    assert [s.retry_attempt for s in clean.spans] == [4111111111111111] * len(spans)
    assert all("4111" not in (s.tool_result or "") for s in clean.spans)
    assert all("jane@example.org" not in (s.tool_result or "") for s in clean.spans)


def test_a_trace_with_nothing_to_redact_comes_back_as_the_same_object() -> None:
    # The same text in several spans: the walk's memo of rewrites must hand back each
    # span's own string, or every span would look changed.
    base = refund_trace()
    spans = tuple(s.model_copy(update={"output": "Refund issued."}) for s in base.spans)
    trace = Trace.model_validate_json(base.model_copy(update={"spans": spans}).model_dump_json())
    clean, report = redact_trace(trace)
    assert clean is trace
    assert report.counts == {}


def test_a_trace_with_something_to_redact_is_a_new_object_with_only_that_changed() -> None:
    base = refund_trace()
    root = base.spans[0].model_copy(update={"input": "Refund please, I am jane@example.org"})
    trace = base.model_copy(update={"spans": (root, *base.spans[1:])})
    clean, report = redact_trace(trace)
    assert clean is not trace
    assert report.counts == {"EMAIL": 1}
    assert clean.spans[1:] == trace.spans[1:]


def test_redacts_nothing_is_true_only_of_texts_redaction_would_leave_as_they_are() -> None:
    assert redacts_nothing(["Refund my last order please", None, "", '{"order": "ORD-1"}'])
    assert not redacts_nothing(["Refund please", "call +44 20 7946 0958"])
    assert not redacts_nothing(['{"email": "jane@example.org"}'])
