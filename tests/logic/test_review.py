"""Review's pure cores: the queue, the conversation, verdict events, the fixtures a
promotion writes, the exports' assertions, scoring following a rejection, sessions and
CSRF tokens."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from services.fixture_writer.exports import ExportRow, export
from services.fixture_writer.reviewed import render_verdicts, reviewed_drafts
from services.review import auth, logic
from services.scoring.verdicts import follow_verdict, pattern_verdict
from shared.events import CaseReviewed, CriterionScore, Decision, Verdict
from tests.support.builders import T0, refund_trace, scored

pytestmark = pytest.mark.logic


def held_case(
    trace_id: str, pattern_id: str = "p1", risk: float = 0.5, hours: float = 0
) -> logic.Case:
    event = scored(
        refund_trace(trace_id), pattern_id=pattern_id, decision=Decision.HOLD,
        at=T0 - timedelta(hours=hours),
    )  # fmt: skip
    scores = {**event.scores, "risk_bearing": CriterionScore(score=risk)}
    return logic.case_from(event.model_copy(update={"scores": scores}))


def promoted_verdict(answer: str = "Refund 40, the order total, and say so.") -> CaseReviewed:
    return logic.build_verdict(
        [held_case("a" * 32)], Verdict.PROMOTE, "ana", T0,
        kinds=("regression_case", "tool_use_assertion"), answer=answer,
        tool_calls=("issue_refund(amount=40)",), must_not=("refund more than the order total",),
    )  # fmt: skip


def test_only_held_decisions_become_cases() -> None:
    trace = refund_trace()
    assert logic.held(scored(trace, decision=Decision.HOLD))
    assert not logic.held(scored(trace, decision=Decision.PROMOTE))
    assert not logic.held(scored(trace, decision=Decision.REJECT))


def test_the_queue_groups_by_pattern_riskiest_first_then_oldest() -> None:
    now = T0 + timedelta(days=1)
    cases = [
        held_case("1" * 32, "calm-old", risk=0.2, hours=30),
        held_case("2" * 32, "risky-new", risk=0.9, hours=1),
        held_case("3" * 32, "risky-old", risk=0.9, hours=20),
        held_case("4" * 32, "risky-old", risk=0.4, hours=2),
    ]
    groups = logic.queue(cases, logic.Filters(), now)
    assert [g.pattern_id for g in groups] == ["risky-old", "risky-new", "calm-old"]
    assert [c.trace_id for c in groups[0].cases] == ["3" * 32, "4" * 32]


def test_filters_by_agent_criterion_and_age_and_hides_decided_and_snoozed_cases() -> None:
    now = T0 + timedelta(hours=1)
    old, new = held_case("1" * 32, hours=60), held_case("2" * 32, hours=1)
    judged = held_case("3" * 32)
    judged = logic.Case(**{**judged.__dict__, "status": "rejected"})
    sleeping = held_case("4" * 32)
    sleeping = logic.Case(
        **{**sleeping.__dict__, "status": "snoozed", "snoozed_until": now + timedelta(hours=1)}
    )

    def ids(f: logic.Filters) -> list[str]:
        groups = logic.queue([old, new, judged, sleeping], f, now)
        return [c.trace_id for g in groups for c in g.cases]

    assert set(ids(logic.Filters())) == {"1" * 32, "2" * 32}
    assert ids(logic.Filters(min_age_days=1)) == ["1" * 32]
    assert ids(logic.Filters(max_age_days=1)) == ["2" * 32]
    assert ids(logic.Filters(agent="another-agent")) == []
    assert ids(logic.Filters(criterion="enduring")) == []  # 0.3, under the floor
    assert len(ids(logic.Filters(criterion="patterned"))) == 2
    awake = logic.Case(**{**sleeping.__dict__, "snoozed_until": now - timedelta(hours=1)})
    back = logic.queue([awake], logic.Filters(), now)
    assert [c.trace_id for g in back for c in g.cases] == ["4" * 32], "a snooze that ended"


def test_the_conversation_interleaves_user_tool_and_assistant_turns() -> None:
    turns = logic.conversation(refund_trace())
    assert [t.role for t in turns] == ["user", "tool", "tool", "assistant"]
    refund = turns[2]
    assert refund.tool_name == "issue_refund" and refund.failed
    assert refund.arguments is not None and '"amount": 120' in refund.arguments


def test_a_verdict_id_is_the_same_for_the_same_verdict_given_twice() -> None:
    first, again = promoted_verdict(), promoted_verdict()
    assert first.verdict_id == again.verdict_id
    assert promoted_verdict("another answer").verdict_id != first.verdict_id


def test_a_promotion_needs_expected_behaviour_and_a_rejection_a_reason() -> None:
    case = held_case("a" * 32)
    with pytest.raises(logic.InvalidVerdict, match="expected behaviour"):
        logic.build_verdict([case], Verdict.PROMOTE, "ana", T0)
    with pytest.raises(logic.InvalidVerdict, match="reason"):
        logic.build_verdict([case], Verdict.REJECT, "ana", T0, reason="  ")
    with pytest.raises(logic.InvalidVerdict, match="kind"):
        logic.build_verdict([case], Verdict.PROMOTE, "ana", T0, answer="x", kinds=("poem",))
    with pytest.raises(logic.InvalidVerdict, match="one pattern"):
        logic.build_verdict(
            [case, held_case("b" * 32, "p2")], Verdict.REJECT, "ana", T0, reason="r"
        )


def test_a_promotion_carries_the_case_stamped_by_review() -> None:
    verdict = promoted_verdict()
    assert verdict.case is not None and verdict.case.stages[-1].stage == "review"
    assert verdict.case.stages[-1].at == T0 and verdict.pattern_id == "p1"


def test_reviewed_fixtures_carry_the_reviewers_behaviour_and_provenance() -> None:
    drafts = {d.kind.value: d for d in reviewed_drafts(promoted_verdict())}
    assert set(drafts) == {"regression_case", "tool_use_assertion"}
    body = drafts["regression_case"].body
    assert body["expected_behaviour"] == [
        "answer: Refund 40, the order total, and say so.",
        "call issue_refund(amount=40)",
    ]
    assert body["forbidden_behaviour"][0] == "refund more than the order total"
    assert body["review"]["reviewed_by"] == "ana"
    assert "promoted in review by ana" in body["reason"]
    assert drafts["tool_use_assertion"].body["tool_assertions"]["expected_tools"] == [
        "issue_refund"
    ]
    again = {d.kind.value: d.body_sha256 for d in reviewed_drafts(promoted_verdict())}
    assert again == {k: d.body_sha256 for k, d in drafts.items()}, "replay writes nothing new"


def test_the_reviewers_answer_is_the_assertion_in_every_export() -> None:
    answer = "Refund 40, the order total, and say so."
    rows = [
        ExportRow(d.fixture_id, d.kind.value, 1, d.body, T0)
        for d in reviewed_drafts(promoted_verdict(answer))
    ]
    pytest_module = export("pytest", rows)["test_promoted_fixtures.py"]
    assert "gives the answer the reviewer wrote" in pytest_module
    assert "Reviewed by ana" in pytest_module and answer in pytest_module
    promptfoo = export("promptfoo", rows)["promptfoo_tests.yaml"]
    assert "type: factuality" in promptfoo and answer in promptfoo
    goldens = json.loads(export("deepeval", rows)["deepeval_goldens.json"])
    assert {g["expected_output"] for g in goldens} == {answer}
    samples = [
        json.loads(x) for x in export("openai-evals", rows)["openai_evals.jsonl"].splitlines()
    ]
    assert {s["ideal"] for s in samples} == {answer}


def test_the_exported_pytest_check_fails_a_run_without_the_reviewed_answer() -> None:
    rows = [ExportRow(d.fixture_id, d.kind.value, 1, d.body, T0)
            for d in reviewed_drafts(promoted_verdict())]  # fmt: skip
    namespace: dict[str, object] = {}
    exec(export("pytest", rows)["test_promoted_fixtures.py"], namespace)
    fixture = next(iter(namespace["FIXTURES"].values()))  # type: ignore[attr-defined]

    class Run:
        steps = 1
        escalated = False

        def __init__(self, output: str) -> None:
            self.output = output
            self.tool_calls: list[object] = []

    violations = namespace["violations"]
    assert any("reviewer expects" in v for v in violations(Run("Refunded 120."), fixture))  # type: ignore[operator]
    good = Run("Sure: refund 40,  the order total, and say so.")
    assert not any("reviewer expects" in v for v in violations(good, fixture))  # type: ignore[operator]


def test_scoring_rejects_a_rejected_patterns_later_traces_with_the_reviewers_reason() -> None:
    rejection = logic.build_verdict(
        [held_case("a" * 32)], Verdict.REJECT, "ana", T0, reason="a test account"
    )
    later = scored(refund_trace("b" * 32), pattern_id="p1", decision=Decision.HOLD)
    followed = follow_verdict(later, pattern_verdict(rejection))
    assert followed.decision == Decision.REJECT
    assert "rejected in review by ana (a test account)" in followed.reason
    assert "would have decided hold" in followed.reason
    assert follow_verdict(later, None) == later
    snoozed = logic.build_verdict([held_case("a" * 32)], Verdict.SNOOZE, "ana", T0, snooze_days=1)
    assert follow_verdict(later, pattern_verdict(snoozed)) == later


def test_a_session_is_signed_expires_and_names_the_reviewer() -> None:
    secret = auth.secret_from_key("the-key")
    cookie = auth.new_session(secret, "ana", now_s=1000.0)
    assert auth.reviewer_of(secret, cookie, 1000.0) == "ana"
    assert auth.reviewer_of(secret, cookie, 1000.0 + auth.SESSION_SECONDS + 1) is None
    assert auth.reviewer_of(auth.secret_from_key("other-key"), cookie, 1000.0) is None
    _, mac = cookie.rsplit(".", 1)
    forged = auth.signed(b"guess", {"reviewer": "eve", "exp": 9e9}).rsplit(".", 1)[0]
    assert auth.reviewer_of(secret, f"{forged}.{mac}", 1000.0) is None


def test_a_csrf_token_is_bound_to_its_nonce_and_secret() -> None:
    secret = auth.secret_from_key("the-key")
    token = auth.csrf_token(secret, "nonce-1")
    assert auth.csrf_ok(secret, "nonce-1", token)
    assert not auth.csrf_ok(secret, "nonce-2", token)
    assert not auth.csrf_ok(secret, "nonce-1", None)
    assert not auth.csrf_ok(auth.secret_from_key("other"), "nonce-1", token)


def test_the_gate_reports_reviewed_section_lists_who_said_what() -> None:
    verdict = promoted_verdict("Refund 40 | not 120")
    rejection = logic.build_verdict(
        [held_case("b" * 32, "p2")], Verdict.REJECT, "bo", T0, reason="a test account"
    )
    rows = [
        {**v.model_dump(mode="python"), "verdict": v.verdict.value,
         "expected": v.expected.model_dump() if v.expected else None}
        for v in (verdict, rejection)
    ]  # fmt: skip
    lines = render_verdicts(rows)
    assert lines[1] == "## Reviewed"
    assert any("| promote | `p1` | 1 | ana | Refund 40 \\| not 120 |" in line for line in lines)
    assert any("| reject | `p2` | 1 | bo | a test account |" in line for line in lines)
    assert render_verdicts([]) == []
