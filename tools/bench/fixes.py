"""What was done about the profiles, measured: each fix's code path against the path it
replaced, in this process, on the same inputs, in the same run.

- The fixture writer's privacy second pass keeps its verdict per string across promotions
  (before: every promotion analysed all of its strings afresh).
- Stages hand the raw body to pydantic (before: FastStream json-decoded every body first,
  and the result was thrown away).
- Dedupe memoises message templating of words (before: every word of every trace went
  through the ten templating regexes).
- The second pass runs the phone matcher only on text with a digit run long enough to be a
  valid number (before: on every string; both with the verdict cache emptied, so every
  string is analysed; the verdicts must be the same).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from services.dedupe import logic as dedupe_logic
from services.fixture_writer import logic as fixture_logic
from services.redaction import second_pass
from shared import templating
from shared.events import TraceNormalized, TraceScored
from tools.bench.context import Context
from tools.bench.events import StageInputs
from tools.bench.stats import measurement, ratio


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _compare(
    name: str,
    what: str,
    units: int,
    unit: str,
    before: Callable[[], object],
    after: Callable[[], object],
    reps: int,
) -> dict[str, Any]:
    # Untimed first pass of each: imports, lazily built engines and warm caches of the
    # libraries underneath are not part of either path.
    before()
    after()
    # Interleaved, so a change in the machine's load during the run falls on both alike.
    before_s, after_s = [], []
    for _ in range(reps):
        before_s.append(_timed(before))
        after_s.append(_timed(after))
    b = measurement([units / s for s in before_s], f"{unit}/s")
    a = measurement([units / s for s in after_s], f"{unit}/s")
    return {
        "fix": name,
        "what": what,
        "units": units,
        "unit": unit,
        "before": b,
        "after": a,
        "speedup": ratio(a["median"], b["median"]),
    }


def second_pass_verdicts(promoted: list[TraceScored], reps: int) -> dict[str, Any]:
    drafts = [fixture_logic.build_fixtures(e) for e in promoted]

    def per_promotion() -> None:
        for d in drafts:
            second_pass._VERDICTS.clear()
            fixture_logic.privacy_checked(d, second_pass.find_leaks)

    def across_promotions() -> None:
        second_pass._VERDICTS.clear()
        for d in drafts:
            fixture_logic.privacy_checked(d, second_pass.find_leaks)

    return _compare(
        "second pass keeps verdicts per string",
        "fixture writer's privacy check of each promotion's fixtures",
        len(drafts),
        "promotions",
        per_promotion,
        across_promotions,
        reps,
    )


def phone_reach(promoted: list[TraceScored], reps: int) -> dict[str, Any]:
    drafts = [fixture_logic.build_fixtures(e) for e in promoted]
    reaching = second_pass._get_analyzer()
    everywhere = second_pass._build_analyzer(phone_reach=False)
    verdicts: dict[str, list[Any]] = {}

    def check_all(analyzer: Any, name: str) -> Callable[[], object]:
        def run() -> None:
            second_pass._VERDICTS.clear()
            second_pass._analyzer = analyzer
            verdicts[name] = [
                fixture_logic.privacy_checked(d, second_pass.find_leaks) for d in drafts
            ]

        return run

    try:
        found = _compare(
            "phone matcher only where a number fits",
            "fixture writer's privacy check, every string analysed",
            len(drafts),
            "promotions",
            check_all(everywhere, "before"),
            check_all(reaching, "after"),
            reps,
        )
    finally:
        second_pass._analyzer = reaching
        second_pass._VERDICTS.clear()
    if verdicts["before"] != verdicts["after"]:
        raise AssertionError("the phone matcher's bound changed a verdict of the second pass")
    return found


def raw_body_decoding(bodies: list[bytes], reps: int) -> dict[str, Any]:
    def json_then_pydantic() -> None:
        for b in bodies:
            json.loads(b)
            TraceNormalized.model_validate_json(b)

    def pydantic_only() -> None:
        for b in bodies:
            TraceNormalized.model_validate_json(b)

    return _compare(
        "raw body straight to pydantic",
        "decoding dedupe's input events (traces.normalized)",
        len(bodies),
        "events",
        json_then_pydantic,
        pydantic_only,
        reps,
    )


def memoised_templating(normalized: list[TraceNormalized], reps: int) -> dict[str, Any]:
    def memo_per_trace() -> None:
        # A memo emptied for every trace keeps only the repeats within one trace: the
        # "before" is flattered a little, so the speedup shown is a lower bound.
        for e in normalized:
            templating.template_text.cache_clear()
            dedupe_logic.observe(e.trace, e.features)

    def memo_across_traces() -> None:
        templating.template_text.cache_clear()
        for e in normalized:
            dedupe_logic.observe(e.trace, e.features)

    return _compare(
        "memoised templating of words",
        "dedupe's fingerprint and sketches (observe) per trace",
        len(normalized),
        "traces",
        memo_per_trace,
        memo_across_traces,
        reps,
    )


def profiling_fixes(ctx: Context, inputs: StageInputs) -> list[dict[str, Any]]:
    reps = ctx.plan.reps
    events = ctx.plan.profile_events
    with ctx.reporter.task("profiling fixes: before and after, in-process") as task:
        promoted = [TraceScored.model_validate_json(m.value) for m in inputs.promoted[:events]]
        bodies = [m.value for m in inputs.normalized[:events]]
        normalized = [TraceNormalized.model_validate_json(b) for b in bodies]
        found = [
            second_pass_verdicts(promoted, reps),
            phone_reach(promoted, reps),
            raw_body_decoding(bodies, reps),
            memoised_templating(normalized, reps),
        ]
        task.done(", ".join(f"{f['fix']} {f['speedup']:.2f}x" for f in found if f["speedup"]))
    return found
