"""The review web app: held cases reach a person, and their verdicts leave as events.

A thin shell over services.review.logic (queue, conversation, verdicts) and auth (sessions,
CSRF). Server-rendered with Jinja2 (autoescaped: trace content is untrusted and is never
marked safe), plain forms, one small script for keyboard navigation, no build step.
Run by `promote up`, or alone: `uvicorn --factory services.review.web:from_settings`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.review import auth, logic
from services.review.store import PostgresReviewStore, ReviewStore
from services.review.verdicts import KafkaVerdicts, Publish, give, retirement
from shared.events import CRITERIA, Verdict
from shared.features import started_at
from shared.trends import describe, trend

HERE = Path(__file__).parent
SERIES_DAYS = 14
SECURITY_HEADERS = {
    # Nothing inline runs: a script that slipped past escaping would still be refused.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

Deps = Callable[[], AbstractAsyncContextManager[tuple[ReviewStore, Publish]]]


def _age(at: datetime, now: datetime) -> str:
    seconds = max((now - at).total_seconds(), 0)
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name: no content is trusted
        undefined=jinja2.StrictUndefined,
    )
    env.filters["age"] = _age
    return env


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


@dataclass
class Review:
    """The app's state: its secret, its store and how it publishes verdicts."""

    secret: bytes
    secure: bool
    store: ReviewStore | None = None
    publish: Publish | None = None

    def deps(self) -> tuple[ReviewStore, Publish]:
        assert self.store is not None and self.publish is not None, "app not started"
        return self.store, self.publish


async def pattern_trend(store: ReviewStore, case: logic.Case) -> tuple[str, str] | None:
    """(what changed, since when) when the case's pattern is degrading against its own
    past, as the release-gate report's "degrading patterns" section says it."""
    today = started_at(case.event.trace).date()
    found = trend(await store.pattern_days(case.pattern_id, case.agent, today), today)
    if found is None or not (found.rising or found.rescue_rising):
        return None
    return describe(found), found.since.isoformat()


def create_app(review_key: str, deps: Deps, *, secure_cookies: bool = False) -> Starlette:
    if not review_key:
        raise RuntimeError("no review key: the review app never runs open")
    env = _templates()
    state = Review(auth.secret_from_key(review_key), secure_cookies)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with deps() as (store, publish):
            state.store, state.publish = store, publish
            yield

    def nonce_of(request: Request) -> tuple[str, bool]:
        nonce = request.cookies.get(auth.CSRF_COOKIE)
        return (nonce, False) if nonce else (auth.new_nonce(), True)

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        nonce, fresh = nonce_of(request)
        reviewer = auth.reviewer_of(
            state.secret, request.cookies.get(auth.SESSION_COOKIE), time.time()
        )
        html = env.get_template(template).render(
            csrf=auth.csrf_token(state.secret, nonce),
            csrf_field=auth.CSRF_FIELD,
            reviewer=reviewer,
            now=datetime.now(UTC),
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        if fresh:
            set_cookie(response, auth.CSRF_COOKIE, nonce)
        return response

    def set_cookie(response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name, value, httponly=True, samesite="strict", secure=state.secure, path="/"
        )

    def refused(request: Request, reason: str, status: int = 403) -> HTMLResponse:
        return render(request, "refused.html", status=status, reason=reason)

    def signed_in(request: Request) -> str | None:
        cookie = request.cookies.get(auth.SESSION_COOKIE)
        return auth.reviewer_of(state.secret, cookie, time.time())

    async def checked_form(request: Request) -> tuple[FormData | None, HTMLResponse | None]:
        """The posted form, or the refusal: no session, or no valid CSRF token."""
        form = await request.form()
        token = form.get(auth.CSRF_FIELD)
        if not auth.csrf_ok(
            state.secret, request.cookies.get(auth.CSRF_COOKIE), str(token) if token else None
        ):
            return None, refused(
                request, "The form was posted without a valid CSRF token. Reload and retry."
            )
        return form, None

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)

    async def login_page(request: Request) -> Response:
        return render(request, "login.html", next=request.query_params.get("next", "/"))

    async def login(request: Request) -> Response:
        form, refusal = await checked_form(request)
        if refusal is not None or form is None:
            return refusal or refused(request, "no form")
        reviewer = str(form.get("reviewer", "")).strip()
        if not auth.key_matches(str(form.get("key", "")), review_key):
            return refused(request, "The review key was not accepted.", status=401)
        if not reviewer:
            return render(request, "login.html", status=422, next="/", error="Give your name.")
        target = str(form.get("next") or "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # never redirect off this site
        response = RedirectResponse(target, status_code=303)
        set_cookie(
            response, auth.SESSION_COOKIE, auth.new_session(state.secret, reviewer, time.time())
        )
        return response

    async def logout(request: Request) -> Response:
        _, refusal = await checked_form(request)
        if refusal is not None:
            return refusal
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return response

    def filters_of(request: Request) -> logic.Filters:
        q = request.query_params
        criterion = q.get("criterion") or None
        return logic.Filters(
            agent=q.get("agent") or None,
            criterion=criterion if criterion in CRITERIA else None,
            min_age_days=_float(q.get("min_age")),
            max_age_days=_float(q.get("max_age")),
        )

    async def queue_page(request: Request) -> Response:
        if not signed_in(request):
            return to_login(request)
        store, _ = state.deps()
        now = datetime.now(UTC)
        cases = await store.cases()
        filters = filters_of(request)
        groups = logic.queue(cases, filters, now)
        charts = {
            g.pattern_id: logic.sparkline(
                await store.daily_occurrences(g.pattern_id, SERIES_DAYS, now)
            )
            for g in groups
        }
        return render(
            request,
            "queue.html",
            groups=groups,
            charts=charts,
            filters=filters,
            agents=sorted({c.agent for c in cases if c.agent}),
            criteria=CRITERIA,
            open_count=sum(len(g.cases) for g in groups),
            done=request.query_params.get("done"),
            verdicts=await store.verdicts(10),
        )

    async def case_page(request: Request, error: str | None = None, status: int = 200) -> Response:
        if not signed_in(request):
            return to_login(request)
        store, _ = state.deps()
        case = await store.case(request.path_params["trace_id"])
        if case is None:
            return render(request, "refused.html", status=404, reason="No such case.")
        now = datetime.now(UTC)
        siblings = [
            c
            for c in await store.cases()
            if c.pattern_id == case.pattern_id and logic.open_now(c, now)
        ]
        return render(
            request,
            "case.html",
            status=status,
            case=case,
            turns=logic.conversation(case.event.trace),
            criteria=[(n, case.event.scores.get(n)) for n in CRITERIA],
            chart=logic.sparkline(await store.daily_occurrences(case.pattern_id, SERIES_DAYS, now)),
            trend=await pattern_trend(store, case),
            similar=await store.fixtures_of_agent(case.agent) if case.agent else [],
            siblings=siblings,
            kinds=logic.FIXTURE_KINDS,
            error=error,
        )

    async def give_verdict(request: Request) -> Response:
        reviewer = signed_in(request)
        if not reviewer:
            return refused(request, "Sign in before giving a verdict.")
        form, refusal = await checked_form(request)
        if refusal is not None or form is None:
            return refusal or refused(request, "no form")
        store, publish = state.deps()
        case = await store.case(request.path_params["trace_id"])
        if case is None:
            return refused(request, "No such case.", status=404)
        now = datetime.now(UTC)
        whole = form.get("whole_pattern") == "on"
        cases = [case]
        if whole:
            cases += [
                c
                for c in await store.cases()
                if c.pattern_id == case.pattern_id
                and c.trace_id != case.trace_id
                and logic.open_now(c, now)
            ]
        try:
            verdict = logic.build_verdict(
                cases,
                Verdict(str(form.get("verdict", ""))),
                reviewer,
                now,
                whole_pattern=whole,
                kinds=[str(k) for k in form.getlist("kinds")],
                answer=str(form.get("answer", "")),
                tool_calls=logic.lines(str(form.get("tool_calls", ""))),
                must_not=logic.lines(str(form.get("must_not", ""))),
                reason=str(form.get("reason", "")),
                snooze_days=_float(form.get("snooze_days")),
            )
        except ValueError as error:  # InvalidVerdict, or an unknown verdict name
            return await case_page(request, error=str(error), status=422)
        await give(store, publish, verdict)
        return RedirectResponse(f"/?{urlencode({'done': verdict.verdict.value})}", status_code=303)

    async def fixtures_page(request: Request) -> Response:
        if not signed_in(request):
            return to_login(request)
        store, _ = state.deps()
        return render(request, "fixtures.html", fixtures=await store.all_fixtures())

    async def fixture_page(request: Request) -> Response:
        """One fixture's versions, and the diff of two of them (default: the last two)."""
        if not signed_in(request):
            return to_login(request)
        store, _ = state.deps()
        fixture_id = request.path_params["fixture_id"]
        versions = {v.version: v for v in await store.fixture_versions(fixture_id)}
        if not versions:
            return render(request, "refused.html", status=404, reason="No such fixture.")
        numbers = sorted(versions)
        a = int(_float(request.query_params.get("a")) or numbers[max(len(numbers) - 2, 0)])
        b = int(_float(request.query_params.get("b")) or numbers[-1])
        if a not in versions or b not in versions:
            return render(request, "refused.html", status=404, reason="No such version.")
        diff = logic.body_diff(
            versions[a].body, versions[b].body, f"{fixture_id}@v{a}", f"{fixture_id}@v{b}"
        )
        summary = next((f for f in await store.all_fixtures() if f.fixture_id == fixture_id), None)
        return render(
            request,
            "fixture.html",
            fixture_id=fixture_id,
            fixture_status=summary.status if summary else "unknown",
            versions=[versions[n] for n in numbers],
            a=a,
            b=b,
            diff=diff,
            body=versions[b].body,
        )

    async def retire_fixture(request: Request) -> Response:
        """Take a fixture out of the suite by hand: a RETIRE verdict the fixture writer
        follows, with the reason in the release-gate log."""
        reviewer = signed_in(request)
        if not reviewer:
            return refused(request, "Sign in before retiring a fixture.")
        form, refusal = await checked_form(request)
        if refusal is not None or form is None:
            return refusal or refused(request, "no form")
        store, publish = state.deps()
        fixture_id = str(form.get("fixture_id", ""))
        reason = str(form.get("reason", ""))
        try:
            verdict = await retirement(store, fixture_id, reason, reviewer, datetime.now(UTC))
        except ValueError as error:
            return render(request, "refused.html", status=422, reason=str(error))
        if verdict is None:
            return refused(request, "No such fixture.", status=404)
        await give(store, publish, verdict)
        return RedirectResponse(f"/fixtures?{urlencode({'retired': fixture_id})}", status_code=303)

    async def health(_: Request) -> Response:
        return Response("ok")

    return Starlette(
        routes=[
            Route("/", queue_page),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/cases/{trace_id}", case_page, methods=["GET"]),
            Route("/cases/{trace_id}/verdict", give_verdict, methods=["POST"]),
            Route("/fixtures", fixtures_page, methods=["GET"]),
            Route("/retire", retire_fixture, methods=["POST"]),
            Route("/fixtures/{fixture_id:path}", fixture_page, methods=["GET"]),
            Route("/healthz", health),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        lifespan=lifespan,
    )


def from_settings() -> Starlette:
    """The deployed app: the review store in PostgreSQL, verdicts to Kafka."""
    from shared.db import open_store_pool
    from shared.settings import get_settings

    settings = get_settings()

    @asynccontextmanager
    async def deps() -> AsyncIterator[tuple[ReviewStore, Publish]]:
        pool = await open_store_pool(settings.dsn(), "review_http")
        verdicts = KafkaVerdicts(settings)
        await verdicts.start()
        try:
            yield PostgresReviewStore(pool), verdicts.publish
        finally:
            await verdicts.stop()
            await pool.close()

    from shared.ops import database_check, instrument_starlette

    app = create_app(settings.review_key or "", deps, secure_cookies=settings.review_secure_cookies)
    instrument_starlette(app, "review_http", [database_check(settings.dsn)])
    return app
