"""The review web app over its in-memory store and a recording publisher: sign-in, the
refusals (no session, no CSRF token, a wrong key), untrusted trace content rendered as
text, and a verdict leaving as an event keyed by its pattern."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from services.review import logic
from services.review.store import FixtureSummary, FixtureVersion, MemoryReviewStore, ReviewStore
from services.review.verdicts import Publish
from services.review.web import create_app
from shared.events import CaseReviewed, Decision, Span, Verdict
from shared.features import started_at
from shared.trends import DayCount
from tests.support.builders import T0, refund_trace, scored

pytestmark = pytest.mark.wiring

KEY = "test-review-key"
PLANTED = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


def planted_case(trace_id: str = "c" * 32) -> logic.Case:
    trace = refund_trace(trace_id)
    spans: list[Span] = list(trace.spans)
    spans[1] = spans[1].model_copy(update={"tool_result": PLANTED})
    event = scored(trace.model_copy(update={"spans": tuple(spans)}), decision=Decision.HOLD)
    return logic.case_from(event)


@pytest.fixture
def published() -> list[tuple[bytes, bytes]]:
    return []


@pytest.fixture
def store() -> MemoryReviewStore:
    return MemoryReviewStore()


@pytest.fixture
def client(published: list[tuple[bytes, bytes]], store: MemoryReviewStore) -> Iterator[TestClient]:
    store.stored["c" * 32] = planted_case()
    fixture_id = "p1-abc:regression_case"
    store.fixtures.append(
        FixtureSummary(fixture_id, "regression_case", "p1-abc", 2, "active", "billing-agent")
    )
    store.versions[fixture_id] = [
        FixtureVersion(fixture_id, 1, {"expected_behaviour": ["refund"]}, T0, "p", "t1"),
        FixtureVersion(fixture_id, 2, {"expected_behaviour": [PLANTED]}, T0, "p", "t2"),
    ]

    async def publish(body: bytes, key: bytes) -> None:
        published.append((body, key))

    @asynccontextmanager
    async def deps() -> AsyncIterator[tuple[ReviewStore, Publish]]:
        yield store, publish

    with TestClient(create_app(KEY, deps), follow_redirects=False) as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "every form carries a CSRF token"
    return found.group(1)


def sign_in(client: TestClient) -> None:
    page = client.get("/login")
    answer = client.post(
        "/login", data={"csrf_token": csrf_of(page.text), "reviewer": "ana", "key": KEY}
    )
    assert answer.status_code == 303 and "review_session" in answer.cookies


def test_the_queue_sends_a_stranger_to_sign_in(client: TestClient) -> None:
    answer = client.get("/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_a_wrong_review_key_gets_the_refusal_page(client: TestClient) -> None:
    page = client.get("/login")
    answer = client.post(
        "/login", data={"csrf_token": csrf_of(page.text), "reviewer": "eve", "key": "guess"}
    )
    assert answer.status_code == 401 and "Access refused" in answer.text
    assert "review_session" not in answer.cookies


def test_a_form_without_its_csrf_token_is_refused(
    client: TestClient, published: list[tuple[bytes, bytes]]
) -> None:
    client.get("/login")
    answer = client.post("/login", data={"reviewer": "ana", "key": KEY})
    assert answer.status_code == 403 and "CSRF" in answer.text
    sign_in(client)
    form = {"verdict": "reject", "reason": "noise", "csrf_token": "forged"}
    answer = client.post(f"/cases/{'c' * 32}/verdict", data=form)
    assert answer.status_code == 403 and "Access refused" in answer.text
    assert published == []


def test_a_verdict_without_signing_in_is_refused(
    client: TestClient, published: list[tuple[bytes, bytes]]
) -> None:
    page = client.get("/login")
    form = {"verdict": "reject", "reason": "noise", "csrf_token": csrf_of(page.text)}
    answer = client.post(f"/cases/{'c' * 32}/verdict", data=form)
    assert answer.status_code == 403 and "Sign in" in answer.text
    assert published == []


def test_planted_markup_in_a_tool_result_renders_as_text(client: TestClient) -> None:
    sign_in(client)
    page = client.get(f"/cases/{'c' * 32}")
    assert page.status_code == 200
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page.text
    assert "<script>window.pwned" not in page.text and "<img src=x" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_a_promotion_leaves_as_an_event_keyed_by_pattern_and_clears_the_case(
    client: TestClient, published: list[tuple[bytes, bytes]]
) -> None:
    sign_in(client)
    page = client.get(f"/cases/{'c' * 32}")
    form = {
        "csrf_token": csrf_of(page.text),
        "verdict": "promote",
        "kinds": ["regression_case", "tool_use_assertion"],
        "answer": "Refund 40, the order total.",
        "tool_calls": "lookup_order\nissue_refund(amount=40)",
    }
    answer = client.post(f"/cases/{'c' * 32}/verdict", data=form)
    assert answer.status_code == 303
    [(body, key)] = published
    verdict = CaseReviewed.model_validate_json(body)
    assert key == b"p1-abc" and verdict.reviewer == "ana"
    assert verdict.expected is not None and verdict.expected.answer == "Refund 40, the order total."
    assert verdict.expected.tool_calls == ("lookup_order", "issue_refund(amount=40)")
    queue = client.get("/")
    assert "c" * 32 not in queue.text.split("Recent verdicts")[0], "the case left the queue"


def test_a_promotion_without_expected_behaviour_is_sent_back_with_the_reason(
    client: TestClient, published: list[tuple[bytes, bytes]]
) -> None:
    sign_in(client)
    page = client.get(f"/cases/{'c' * 32}")
    form = {"csrf_token": csrf_of(page.text), "verdict": "promote"}
    answer = client.post(f"/cases/{'c' * 32}/verdict", data=form)
    assert answer.status_code == 422 and "needs the expected behaviour" in answer.text
    assert published == []


def test_the_fixtures_browser_lists_fixtures_and_diffs_two_versions_as_text(
    client: TestClient,
) -> None:
    assert client.get("/fixtures").status_code == 303, "signed in only"
    sign_in(client)
    listing = client.get("/fixtures")
    assert "p1-abc:regression_case" in listing.text and "v2" in listing.text
    diff = client.get("/fixtures/p1-abc:regression_case?a=1&b=2")
    assert diff.status_code == 200
    assert '<span class="del">-  &#34;refund&#34;</span>' in diff.text
    assert "&lt;script&gt;" in diff.text and "<script>window.pwned" not in diff.text
    assert client.get("/fixtures/p1-abc:regression_case?a=1&b=9").status_code == 404


def test_retiring_a_fixture_by_hand_needs_a_reason_and_leaves_as_a_retire_verdict(
    client: TestClient, published: list[tuple[bytes, bytes]]
) -> None:
    sign_in(client)
    page = client.get("/fixtures/p1-abc:regression_case")
    assert "Retire fixture" in page.text
    token = csrf_of(page.text)
    no_reason = {"csrf_token": token, "fixture_id": "p1-abc:regression_case", "reason": " "}
    assert client.post("/retire", data=no_reason).status_code == 422
    assert client.post("/retire", data={**no_reason, "csrf_token": ""}).status_code == 403
    form = {**no_reason, "reason": "the refund rule changed"}
    answer = client.post("/retire", data=form)
    assert answer.status_code == 303
    [(body, key)] = published
    verdict = CaseReviewed.model_validate_json(body)
    assert key == b"p1-abc"
    assert (verdict.verdict, verdict.fixture_id, verdict.trace_ids) == (
        Verdict.RETIRE,
        "p1-abc:regression_case",
        ("t2",),  # the trace the current version came from
    )
    assert verdict.reason == "the refund rule changed" and verdict.reviewer == "ana"
    unknown = {**form, "fixture_id": "p9-none:regression_case"}
    assert client.post("/retire", data=unknown).status_code == 404


def test_a_case_of_a_degrading_pattern_says_what_changed_and_since_when(
    client: TestClient, store: MemoryReviewStore
) -> None:
    sign_in(client)
    case = store.stored["c" * 32]
    assert "Degrading" not in client.get(f"/cases/{'c' * 32}").text
    today = started_at(case.event.trace).date()
    counts = [1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1, 5, 6, 7]
    store.days[case.pattern_id] = [
        DayCount(today - timedelta(days=16 - i), n, 300) for i, n in enumerate(counts)
    ]
    page = client.get(f"/cases/{'c' * 32}").text
    assert "Degrading" in page and (today - timedelta(days=2)).isoformat() in page
    assert "share of the agent" in page
