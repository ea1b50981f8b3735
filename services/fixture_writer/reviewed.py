"""Fixtures from a person's verdict: the held case, promoted with the behaviour the
reviewer wrote. Pure: the same verdict always yields the same bodies, so a replayed or
redelivered verdict writes nothing new."""

from __future__ import annotations

import re
from typing import Any

from services.fixture_writer.logic import FixtureDraft, FixtureKind, body_digest, build_fixtures
from shared.events import CaseReviewed, Decision, TraceScored, Verdict

_TOOL_NAME = re.compile(r"[\w.\-]+")


def tool_name(line: str) -> str:
    """The tool a reviewer's line names: "cancel_order(order_id=...)" → "cancel_order"."""
    found = _TOOL_NAME.match(line.strip())
    return found.group(0) if found else line.strip()


def reviewed_case(verdict: CaseReviewed) -> TraceScored:
    """The held case as the reviewer decided it: promoted, the reason saying by whom."""
    if verdict.verdict != Verdict.PROMOTE or verdict.case is None:
        raise ValueError("only a promotion carries a case to write")
    held = verdict.case
    reason = f"promoted in review by {verdict.reviewer} (verdict {verdict.verdict_id})"
    if verdict.whole_pattern:
        reason += f" for {len(verdict.trace_ids)} case(s) of the pattern"
    return held.model_copy(
        update={"decision": Decision.PROMOTE, "reason": f"{reason}; held because: {held.reason}"}
    )


def reviewed_drafts(verdict: CaseReviewed) -> list[FixtureDraft]:
    """The chosen kinds of fixture, each carrying the reviewer's expected behaviour (in
    place of the one derived from the trace) and their provenance."""
    case = reviewed_case(verdict)
    expected = verdict.expected
    assert expected is not None, "a promotion carries the expected behaviour"
    kinds = [FixtureKind(k) for k in verdict.kinds] or [FixtureKind.REGRESSION_CASE]
    behaviour = [
        *([f"answer: {expected.answer}"] if expected.answer else []),
        *(f"call {line}" for line in expected.tool_calls),
    ]
    drafts = []
    for draft in build_fixtures(case, kinds):
        body = dict(draft.body)
        body["expected_behaviour"] = behaviour or body["expected_behaviour"]
        body["forbidden_behaviour"] = [*expected.must_not, *body["forbidden_behaviour"]]
        body["review"] = {
            "reviewed_by": verdict.reviewer,
            "verdict_id": verdict.verdict_id,
            "answer": expected.answer,
            "tool_calls": list(expected.tool_calls),
            "must_not": list(expected.must_not),
        }
        if draft.kind == FixtureKind.TOOL_USE_ASSERTION and expected.tool_calls:
            assertions = dict(body["tool_assertions"])
            assertions["expected_tools"] = sorted({tool_name(t) for t in expected.tool_calls})
            body["tool_assertions"] = assertions
        drafts.append(
            FixtureDraft(
                fixture_id=draft.fixture_id,
                pattern_id=draft.pattern_id,
                kind=draft.kind,
                body=body,
                body_sha256=body_digest(body),
                criteria=draft.criteria,
            )
        )
    return drafts


def render_verdicts(verdicts: list[dict[str, Any]]) -> list[str]:
    """The release-gate report's "Reviewed" section: every verdict people gave, newest
    first, with who gave it and the answer or reason they wrote."""
    if not verdicts:
        return []
    lines = ["", "## Reviewed", "", "| when | verdict | pattern | cases | by | expected / reason |"]
    lines.append("|---|---|---|---|---|---|")
    for v in verdicts:
        expected = v.get("expected") or {}
        said = v["reason"] or expected.get("answer") or "; ".join(expected.get("tool_calls", []))
        said = re.sub(r"\s+", " ", said or "").replace("|", "\\|")
        lines.append(
            f"| {v['at']:%Y-%m-%d %H:%M UTC} | {v['verdict']} | `{v['pattern_id']}` |"
            f" {len(v['trace_ids'])} | {v['reviewer']} | {said} |"
        )
    return lines
