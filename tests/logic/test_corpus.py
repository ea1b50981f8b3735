"""The labelled demo corpus: reproducible, complete, and true to its own labels."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from shared.events import SpanKind, SpanStatus, Trace
from shared.features import derive_features, is_complete
from shared.templating import template_message
from tools.corpus.__main__ import write_corpus
from tools.corpus.generate import (
    BASE_TIME,
    FAMILIES,
    SAME_INTENT,
    SAME_SHAPE,
    LabelledTrace,
    generate,
    label_record,
)

pytestmark = pytest.mark.logic


@pytest.fixture(scope="module")
def corpus() -> list[LabelledTrace]:
    return generate(seed=7)


def originals(corpus: list[LabelledTrace]) -> list[LabelledTrace]:
    return [x for x in corpus if x.labels.duplicate_of is None]


def by_family(corpus: list[LabelledTrace], family: str) -> list[LabelledTrace]:
    return [x for x in corpus if x.labels.family == family]


def tool_sequence(trace: Trace) -> tuple[str, ...]:
    return tuple(s.tool_name or "" for s in trace.spans if s.kind == SpanKind.TOOL)


def serialised(corpus: list[LabelledTrace]) -> str:
    return "\n".join(x.trace.model_dump_json() + json.dumps(label_record(x)) for x in corpus)


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else sum(divmod(d * 2, 10)) for i, d in enumerate(digits))
    return total % 10 == 0


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    write_corpus(tmp_path / "a", seed=7)
    write_corpus(tmp_path / "b", seed=7)
    for name in ("traces.native.jsonl", "labels.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_the_files_hold_one_trace_and_one_label_line_per_corpus_item(tmp_path: Path) -> None:
    counts = write_corpus(tmp_path, seed=7)
    traces = (tmp_path / "traces.native.jsonl").read_text().splitlines()
    labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert len(traces) == len(labels) == sum(counts.values())
    for line, label in zip(traces, labels, strict=True):
        assert Trace.model_validate_json(line).trace_id == label["trace_id"]


def test_a_different_seed_gives_a_different_corpus(corpus: list[LabelledTrace]) -> None:
    assert serialised(generate(seed=8)) != serialised(corpus)


def test_every_family_is_present_and_scale_one_gives_150_to_250_traces(
    corpus: list[LabelledTrace],
) -> None:
    counts = Counter(x.labels.family for x in corpus)
    assert set(counts) == set(FAMILIES)
    assert 150 <= len(corpus) <= 250


def test_scale_multiplies_every_family(corpus: list[LabelledTrace]) -> None:
    single = Counter(x.labels.family for x in corpus)
    double = Counter(x.labels.family for x in generate(seed=7, scale=2))
    assert double == Counter({family: 2 * n for family, n in single.items()})


def test_every_trace_validates_and_non_noise_traces_have_10_to_20_spans(
    corpus: list[LabelledTrace],
) -> None:
    for item in corpus:
        trace = Trace.model_validate_json(item.trace.model_dump_json())
        low = 2 if item.labels.family == "one_off_noise" else 10
        assert low <= len(trace.spans) <= 20, item.labels


def test_ids_are_seeded_hex_of_the_right_length_and_unique(corpus: list[LabelledTrace]) -> None:
    hexdigits = set("0123456789abcdef")
    trace_ids = [x.trace.trace_id for x in originals(corpus)]
    assert len(set(trace_ids)) == len(trace_ids)
    for item in corpus:
        assert len(item.trace.trace_id) == 32 and set(item.trace.trace_id) <= hexdigits
        span_ids = [s.span_id for s in item.trace.spans]
        assert len(set(span_ids)) == len(span_ids)
        assert all(len(i) == 16 and set(i) <= hexdigits for i in span_ids)


def test_every_span_hangs_under_one_agent_root_within_the_ten_days(
    corpus: list[LabelledTrace],
) -> None:
    for item in corpus:
        root, *children = item.trace.spans
        assert root.kind == SpanKind.AGENT and root.parent_span_id is None
        assert all(s.parent_span_id == root.span_id for s in children)
        assert BASE_TIME <= root.start_time < BASE_TIME + timedelta(days=11)
        assert all(s.end_time is None or s.end_time >= s.start_time for s in item.trace.spans)


def test_every_trace_is_complete_except_the_one_cancelled_noise_run(
    corpus: list[LabelledTrace],
) -> None:
    incomplete = {x.labels.lesson_id for x in originals(corpus) if not is_complete(x.trace)}
    assert incomplete == {"noise-user-cancelled-midway"}


def test_traces_are_ordered_by_start_and_duplicates_follow_their_originals(
    corpus: list[LabelledTrace],
) -> None:
    starts = [x.trace.spans[0].start_time for x in originals(corpus)]
    assert starts == sorted(starts)
    position = {x.trace.trace_id: i for i, x in enumerate(corpus) if x.labels.duplicate_of is None}
    for i, item in enumerate(corpus):
        if item.labels.duplicate_of is not None:
            assert position[item.labels.duplicate_of] < i


def test_duplicates_equal_their_originals_and_carry_their_lesson(
    corpus: list[LabelledTrace],
) -> None:
    first = {x.trace.trace_id: x for x in originals(corpus)}
    duplicates = by_family(corpus, "exact_duplicates")
    assert duplicates
    for dup in duplicates:
        original = first[dup.labels.duplicate_of or ""]
        assert dup.trace == original.trace
        assert dup.trace.model_dump_json() == original.trace.model_dump_json()
        assert dup.labels.lesson_id == original.labels.lesson_id
        assert dup.labels.planted == original.labels.planted
        assert not dup.labels.should_promote


def test_recurring_lessons_span_days_users_sessions_and_agent_versions(
    corpus: list[LabelledTrace],
) -> None:
    recurring = {
        "wrong_side_effect",
        "retrieval_miss",
        "recovery_loop",
        "approval_pressure",
        "guardrail_hit",
        "slow_costly_success",
    }
    lessons: dict[str, list[Trace]] = defaultdict(list)
    for item in originals(corpus):
        if item.labels.family in recurring:
            lessons[item.labels.lesson_id].append(item.trace)
    assert len(lessons) >= 14
    for lesson_id, traces in lessons.items():
        assert len(traces) >= 4, lesson_id
        assert len({t.spans[0].start_time.date() for t in traces}) >= 3, lesson_id
        assert len({t.user_id for t in traces}) >= 3, lesson_id
        assert len({t.session_id for t in traces}) >= 3, lesson_id
        assert len({t.agent_version for t in traces}) == 2, lesson_id


def test_transient_outages_burst_within_one_hour_of_one_agent_version(
    corpus: list[LabelledTrace],
) -> None:
    bursts: dict[str, list[Trace]] = defaultdict(list)
    for item in by_family(originals(corpus), "transient_outage"):
        assert not item.labels.should_promote
        bursts[item.labels.lesson_id].append(item.trace)
    assert len(bursts) >= 2
    for traces in bursts.values():
        starts = [t.spans[0].start_time for t in traces]
        assert len(traces) >= 8
        assert max(starts) - min(starts) < timedelta(hours=1)
        assert len({t.agent_version for t in traces}) == 1
        assert len({derive_features(t).error_types for t in traces}) == 1


def test_one_off_noise_lessons_occur_once_and_are_not_promoted(
    corpus: list[LabelledTrace],
) -> None:
    noise = by_family(corpus, "one_off_noise")
    assert len(noise) >= 10
    lessons = Counter(x.labels.lesson_id for x in originals(corpus))
    assert all(lessons[x.labels.lesson_id] == 1 and not x.labels.should_promote for x in noise)


def test_promotion_labels_follow_the_family(corpus: list[LabelledTrace]) -> None:
    never = {"transient_outage", "one_off_noise", "exact_duplicates"}
    for item in corpus:
        if item.labels.family in never:
            assert not item.labels.should_promote
        else:
            assert item.labels.should_promote, item.labels


def test_recovery_loops_repeat_one_call_with_identical_arguments_3_to_5_times(
    corpus: list[LabelledTrace],
) -> None:
    for item in by_family(corpus, "recovery_loop"):
        retried = [s for s in item.trace.spans if s.retry_attempt]
        assert 3 <= len(retried) <= 5
        assert [s.retry_attempt for s in retried] == list(range(1, len(retried) + 1))
        assert len({(s.tool_name, s.tool_arguments) for s in retried}) == 1
        escalated = any(s.escalated for s in item.trace.spans)
        assert escalated == (item.trace.outcome == "failure")


def test_slow_costly_successes_cost_4_to_12_times_their_agents_median(
    corpus: list[LabelledTrace],
) -> None:
    baseline: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for item in originals(corpus):
        if item.labels.family not in {"slow_costly_success", "one_off_noise"}:
            f = derive_features(item.trace)
            baseline[item.trace.agent_name or ""].append((f.cost_usd, f.latency_ms))
    for item in by_family(corpus, "slow_costly_success"):
        f = derive_features(item.trace)
        cost, latency = (
            statistics.median(v) for v in zip(*baseline[item.trace.agent_name or ""], strict=True)
        )
        assert item.trace.outcome == "success"
        assert 4 <= f.cost_usd / cost <= 12
        assert 3.5 <= f.latency_ms / latency <= 12


def test_family_evidence_is_in_the_spans(corpus: list[LabelledTrace]) -> None:
    for item in originals(corpus):
        spans, family = item.trace.spans, item.labels.family
        if family == "approval_pressure":
            assert [s.approval for s in spans if s.approval] == ["requested", "denied"]
        if family == "guardrail_hit":
            assert any(s.guardrail_triggered for s in spans)
        if family == "retrieval_miss":
            assert any(s.kind == SpanKind.RETRIEVAL and s.documents for s in spans)
        if family == "wrong_side_effect":
            assert item.trace.outcome == "failure"
            calls = derive_features(item.trace).tool_calls
            assert any(call.side_effecting and call.ok for call in calls)
        if family == "transient_outage":
            assert spans[0].status == SpanStatus.ERROR


def test_approval_pressure_comes_back_within_the_same_session(
    corpus: list[LabelledTrace],
) -> None:
    pressured = by_family(originals(corpus), "approval_pressure")
    sessions = Counter(x.trace.session_id for x in pressured)
    assert max(sessions.values()) >= 2


def test_same_shape_traps_share_the_tool_sequence_but_not_the_lesson(
    corpus: list[LabelledTrace],
) -> None:
    trapped = [x for x in originals(corpus) if x.labels.trap == SAME_SHAPE]
    assert {tool_sequence(x.trace) for x in trapped} == {
        ("lookup_user", "lookup_order", "transfer_to_human")
    }
    requests: dict[str, set[str | None]] = defaultdict(set)
    for item in trapped:
        requests[item.labels.lesson_id].add(item.trace.spans[0].input)
    assert len(requests) >= 3
    assert sum(len(r) for r in requests.values()) == len(set().union(*requests.values()))


def test_same_intent_traps_share_the_lesson_and_error_but_vary_path_and_wording(
    corpus: list[LabelledTrace],
) -> None:
    trapped = [x for x in originals(corpus) if x.labels.trap == SAME_INTENT]
    assert len(trapped) >= 5
    assert len({x.labels.lesson_id for x in trapped}) == 1
    errors = {derive_features(x.trace).error_templates for x in trapped}
    assert len(errors) == 1 and next(iter(errors))
    messages = {s.error_message for x in trapped for s in x.trace.spans if s.error_message}
    assert len(messages) > 1 and len({template_message(m) for m in messages}) == 1
    assert len({tool_sequence(x.trace) for x in trapped}) >= 3
    assert len({x.trace.spans[0].input for x in trapped}) >= 3


def test_every_planted_value_occurs_in_its_traces_json(corpus: list[LabelledTrace]) -> None:
    pii = by_family(corpus, "pii_heavy")
    assert pii and all(x.labels.planted for x in pii)
    for item in pii:
        text = item.trace.model_dump_json()
        for kind, value in item.labels.planted:
            assert value in text, (kind, value)


def test_pii_heavy_traces_cover_every_kind_and_belong_to_a_promoted_lesson(
    corpus: list[LabelledTrace],
) -> None:
    pii = by_family(corpus, "pii_heavy")
    kinds = {kind for x in pii for kind, _ in x.labels.planted}
    assert kinds == {
        "person_name",
        "email",
        "address",
        "phone",
        "card",
        "iban",
        "ssn",
        "ipv4",
        "aws_key",
        "github_token",
        "jwt",
        "password",
    }
    lessons = {x.labels.lesson_id for x in originals(corpus) if x.labels.family != "pii_heavy"}
    assert all(x.labels.lesson_id in lessons and x.labels.should_promote for x in pii)


def test_planted_values_have_the_shapes_of_test_data(corpus: list[LabelledTrace]) -> None:
    planted = [p for x in by_family(corpus, "pii_heavy") for p in x.labels.planted]
    for kind, value in planted:
        if kind == "card":
            assert luhn_ok(value), value
        if kind == "email":
            assert value.endswith(("@example.com", "@example.org"))
        if kind == "ipv4":
            assert value.startswith(("192.0.2.", "198.51.100.", "203.0.113."))
        if kind == "aws_key":
            assert value.startswith("AKIA") and len(value) == 20
        if kind == "github_token":
            assert value.startswith("ghp_") and len(value) == 40
        if kind == "jwt":
            assert value.startswith("eyJ") and value.count(".") == 2


def test_traces_outside_the_pii_family_carry_no_planted_pii(corpus: list[LabelledTrace]) -> None:
    values = {v for x in by_family(corpus, "pii_heavy") for _, v in x.labels.planted}
    for item in originals(corpus):
        if item.labels.family != "pii_heavy":
            text = item.trace.model_dump_json()
            assert "@example." not in text and "AKIA" not in text
            assert not any(v in text for v in values)
