"""Review in a real browser (Playwright driving the system's Chromium) against the real
stack: held cases from the committed slice of real runs reach the queue; a reviewer signs
in, works by keyboard, promotes a case with an expected answer and rejects a pattern; the
answer is found in the exported pytest and promptfoo files, the rejection in scoring's
state. Planted markup in a tool result renders as text; forms posted without the CSRF
token or without signing in are refused. Screenshots go to out/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from promoter.kafka_local import REPO_ROOT
from promoter.supervisor import REVIEW, REVIEW_HTTP, Endpoints, Stack
from shared import topics
from shared.events import Span, SpanKind, SpanStatus, TraceScored
from shared.kafka import group_lag
from tools.corpus.real.slice import DATA_DIR, read_slice
from tools.corpus.real.stack import send_documents, wait_until_idle

pytestmark = pytest.mark.e2e

SHOTS = REPO_ROOT / "out" / "screenshots"
PLANTED = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
WAIT_S = 240.0
T = TypeVar("T")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is not installed: `make setup` installs it")
    return found


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 90.0) -> T:
    """The probe's first truthy answer, polled until the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to completion on a thread of its own: Playwright's sync API keeps
    an event loop running in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def rows(dsn: str, query: str, *args: object) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [dict(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return in_thread(run())


def publish_scored(bootstrap: str, event: TraceScored) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            body = event.model_dump_json().encode()
            await producer.send_and_wait(topics.SCORED, body, key=event.pattern.pattern_id.encode())
        finally:
            await producer.stop()

    in_thread(run())


def planted(held: TraceScored) -> TraceScored:
    """A copy of a real held case, under a pattern of its own, whose tool returned markup."""
    root = held.trace.spans[0]
    tool = Span(
        span_id="feedfacefeedface",
        parent_span_id=root.span_id,
        name="lookup_note",
        kind=SpanKind.TOOL,
        start_time=root.start_time,
        end_time=root.start_time,
        status=SpanStatus.OK,
        tool_name="lookup_note",
        tool_arguments='{"note": "<b>bold</b>"}',
        tool_result=PLANTED,
    )
    trace_id = uuid.uuid4().hex
    trace = held.trace.model_copy(update={"trace_id": trace_id, "spans": (*held.trace.spans, tool)})
    pattern = held.pattern.model_copy(update={"pattern_id": f"planted-{trace_id[:8]}"})
    return held.model_copy(update={"trace_id": trace_id, "trace": trace, "pattern": pattern})


@pytest.fixture(scope="module")
def review(stack: Stack, pipeline: Endpoints) -> Iterator[tuple[Endpoints, list[str]]]:
    """The review stage and web app beside the pipeline, after the real slice went through:
    (endpoints, the slice's held trace ids)."""
    stack.start_stage(REVIEW, pipeline)
    stack.start_stage(REVIEW_HTTP, pipeline)
    committed = read_slice(DATA_DIR)
    ours = [label["trace_id"] for _, label in committed]
    send_documents(pipeline.kafka_bootstrap_servers, [document for document, _ in committed])
    idle, gone = wait_until_idle(pipeline.kafka_bootstrap_servers, WAIT_S)
    assert idle, f"the pipeline caught up (exited: {gone})"

    def caught_up() -> bool:
        lag = asyncio.run(
            group_lag(
                pipeline.kafka_bootstrap_servers, topics.consumer_group(REVIEW), [topics.SCORED]
            )
        )
        return sum(lag.values()) == 0

    eventually(caught_up, "the review stage to read traces.scored", WAIT_S)
    held = [
        r["trace_id"]
        for r in rows(
            pipeline.database_url,
            "SELECT trace_id FROM review_cases WHERE trace_id = ANY($1::text[])",
            ours,
        )
    ]
    assert held, "the real slice yields held cases"
    yield pipeline, held
    stack.stop_stage(REVIEW_HTTP)
    stack.stop_stage(REVIEW)


def test_a_reviewer_clears_real_held_cases_in_the_browser_and_the_answer_reaches_the_exports(
    review: tuple[Endpoints, list[str]], stack: Stack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import Dialog, expect, sync_playwright

    endpoints, held = review
    base = (endpoints.review_http or "").rstrip("/")
    dsn = endpoints.database_url
    [first] = rows(dsn, "SELECT event FROM review_cases WHERE trace_id = $1", held[0])
    xss = planted(TraceScored.model_validate_json(first["event"]))
    answer = f"Reviewed answer {uuid.uuid4().hex[:8]}: cancel only the pending order, then confirm."
    SHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        dialogs: list[str] = []

        def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)

        # A stranger is sent to sign in; a wrong key gets the refusal page.
        page.goto(base + "/")
        expect(page).to_have_url(f"{base}/login?next=%2F")
        page.get_by_label("Your name").fill("ana")
        page.get_by_label("Review key").fill("not-the-key")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Access refused")).to_be_visible()

        # Signing in by keyboard alone.
        page.goto(base + "/login")
        page.get_by_label("Your name").focus()
        page.keyboard.type("ana")
        page.keyboard.press("Tab")
        page.keyboard.type(stack.review_key())
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Held cases")).to_be_visible()
        page.screenshot(path=SHOTS / "review-queue.png", full_page=True)

        # A held case whose tool result is markup (published as scoring would).
        publish_scored(endpoints.kafka_bootstrap_servers, xss)
        eventually(
            lambda: rows(dsn, "SELECT 1 FROM review_cases WHERE trace_id = $1", xss.trace_id),
            "the planted case in the queue",
        )

        # j moves to the first case, Enter opens it.
        page.keyboard.press("j")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Why it was held")).to_be_visible()

        # Untrusted content: the planted markup is shown, never run or parsed.
        page.goto(f"{base}/cases/{xss.trace_id}")
        page.locator("summary", has_text="lookup_note").click()
        expect(page.locator("details[open] pre.result")).to_have_text(PLANTED)
        assert page.evaluate("typeof window.pwned") == "undefined"
        assert page.locator("img[src='x']").count() == 0 and not dialogs
        page.screenshot(path=SHOTS / "review-untrusted-content.png", full_page=True)

        # Forms without the CSRF token, or without a session, are refused.
        form: dict[str, str | float | bool] = {"verdict": "reject", "reason": "forged"}
        forged = page.request.post(f"{base}/cases/{held[0]}/verdict", form=form)
        assert forged.status == 403 and "Access refused" in forged.text()
        stranger = browser.new_context().request
        nosession = stranger.post(f"{base}/cases/{held[0]}/verdict", form=form)
        assert nosession.status == 403 and "Sign in" in nosession.text()

        # Promote a real held case with the expected answer, by keyboard.
        page.goto(f"{base}/cases/{held[0]}")
        page.get_by_label("Expected answer").fill(answer)
        page.get_by_label("tool_use_assertion").check()
        page.locator("#promote-button").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_have_text("Verdict recorded: promote.")

        # Reject the planted pattern as a whole.
        page.goto(f"{base}/cases/{xss.trace_id}")
        page.get_by_label("Reason for rejecting").fill("planted markup, not a lesson")
        page.get_by_label("every open case of this pattern (later traces").check()
        page.locator("#reject-button").click()
        expect(page.get_by_role("status")).to_have_text("Verdict recorded: reject.")
        page.screenshot(path=SHOTS / "review-after-verdicts.png", full_page=True)
        assert held[0] not in page.locator("#queue").inner_text()
        browser.close()

    # The verdict became a fixture carrying the answer, within seconds.
    fixtures = eventually(
        lambda: rows(
            dsn,
            """SELECT f.fixture_id, v.body FROM fixtures f JOIN fixture_versions v
                 ON v.fixture_id = f.fixture_id AND v.version = f.current_version
               WHERE v.body -> 'review' ->> 'answer' = $1""",
            answer,
        ),
        "the reviewed fixtures",
        timeout_s=60,
    )
    assert {json.loads(f["body"])["review"]["reviewed_by"] for f in fixtures} == {"ana"}
    # Each chosen kind was written, or refused by the write-time privacy check (on real runs
    # it flags some ids as phone numbers), which records why.
    written = {f["fixture_id"].rsplit(":", 1)[1] for f in fixtures}
    blocked = rows(
        dsn, "SELECT fixture_id FROM blocked_fixtures WHERE source_trace_id = $1", held[0]
    )
    refused = {b["fixture_id"].rsplit(":", 1)[1] for b in blocked}
    assert written | refused >= {"regression_case", "tool_use_assertion"}
    for fmt, name in (
        ("pytest", "test_promoted_fixtures.py"),
        ("promptfoo", "promptfoo_tests.yaml"),
    ):
        out = tmp_path / fmt
        subprocess.run(
            [str(REPO_ROOT / ".venv/bin/promote"), "export", "--format", fmt, "--out", str(out)],
            env=cli_env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        assert answer in (out / name).read_text(), f"the answer is in the {fmt} export"

    # The same from a script: the CLI lists the open cases and rejects one.
    promote = [str(REPO_ROOT / ".venv/bin/promote")]
    listed = subprocess.run(
        [*promote, "review", "list", "--json"],
        env=cli_env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    still_open = [c["trace_id"] for g in json.loads(listed.stdout) for c in g["cases"]]
    assert held[0] not in still_open and xss.trace_id not in still_open
    if still_open:
        subprocess.run(
            [*promote, "review", "reject", still_open[0], "--reason", "scripted",
             "--reviewer", "ci"],
            env=cli_env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        assert rows(dsn, "SELECT 1 FROM review_verdicts WHERE reviewer = 'ci'")
    report = subprocess.run(
        [*promote, "report"], env=cli_env, check=True, capture_output=True, text=True, timeout=120
    )
    assert "## Reviewed" in report.stdout and answer in report.stdout

    # Scoring follows the rejection.
    eventually(
        lambda: rows(
            dsn,
            "SELECT 1 FROM scoring_pattern_verdicts WHERE pattern_id = $1 AND verdict = 'reject'",
            xss.pattern.pattern_id,
        ),
        "scoring to record the rejection",
        timeout_s=60,
    )
