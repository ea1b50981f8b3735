"""Each stage's pure compute, in-process: what a stage's CPU does per trace with every I/O
left out (no Kafka, no database, no files), on the same input events as the per-stage runs.

Per stage, from the input record's bytes to the output record's bytes:

- ingest: decode the native JSON body, normalise (features, canonical form), fit to the
  size limit, serialise (the assembly buffer's waiting is not compute and is left out);
- dedupe: parse, ``observe`` (fingerprint, sketches, bucket), serialise the deduped event
  (the store's lookups and the trajectory against a stored reference are I/O-bound and
  left out);
- redaction: parse, ``redact_trace``, the features of the clean trace when redaction
  changed it, serialise;
- scoring: parse, the batch fold of scoring (``step.scored_batch``) over empty budget
  facts, serialise;
- fixture_writer: parse, build the fixtures, the privacy second pass over their strings
  (files not written, rows not recorded).

Caches the stages keep across traces (templating memo, second-pass verdicts) start empty
at every repetition, as in a freshly started stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from services.dedupe import logic as dedupe_logic
from services.fixture_writer import logic as fixture_logic
from services.ingest import logic as ingest_logic
from services.ingest.decode import decode_payload
from services.redaction import second_pass
from services.redaction import step as redaction_step
from services.scoring import logic as scoring_logic
from services.scoring import step as scoring_step
from services.scoring.policy import DEFAULT_POLICY_PATH, load_policy
from shared import __version__, templating
from shared.events import (
    TraceDeduped,
    TraceNormalized,
    TraceRedacted,
    TraceScored,
)
from shared.settings import Settings
from shared.stage import now, stamp, to_bytes_passing_trace
from tools.bench import stats
from tools.bench.context import Context
from tools.bench.events import StageInputs
from tools.bench.kafkautil import Message

STAGES = ("ingest", "dedupe", "redaction", "scoring", "fixture_writer")
WHAT = {
    "ingest": "decode + normalize + fit + serialise",
    "dedupe": "parse + observe + serialise",
    "redaction": "parse + redact_trace + features if changed + serialise",
    "scoring": "parse + scored_batch + serialise",
    "fixture_writer": "parse + build_fixtures + privacy second pass",
}


def _ingest(messages: list[Message], settings: Settings) -> Callable[[], object]:
    limit = ingest_logic.event_limit(settings.kafka_max_message_bytes)

    def run() -> None:
        traces = []
        for m in messages:
            traces += decode_payload(
                m.value, "application/json", max_bytes=settings.ingest_max_body_bytes
            )
        for event in ingest_logic.normalize(traces, stamp("ingest", __version__, now())):
            fitted, _encoded = ingest_logic.fit_encoded(event, limit)
            ingest_logic.partition_key(fitted)

    return run


def _dedupe(messages: list[Message], outputs: list[Message]) -> Callable[[], object]:
    # The deduped event's pattern statistics come from the store; its serialisation is
    # compute, so the pre-built output of the same trace is serialised again.
    forwarded = [TraceDeduped.model_validate_json(m.value) for m in outputs]

    def run() -> None:
        templating.template_text.cache_clear()
        for m, out in zip(messages, forwarded, strict=False):
            event = TraceNormalized.model_validate_json(m.value)
            dedupe_logic.observe(event.trace, event.features, m.value)
            # As the stage does: the forwarded event carries the parsed trace on.
            to_bytes_passing_trace(out.model_copy(update={"trace": event.trace}), event, m.value)

    return run


def _redaction(messages: list[Message]) -> Callable[[], object]:
    def run() -> None:
        at = stamp("redaction", __version__, now())
        for m in messages:
            event = TraceDeduped.model_validate_json(m.value)
            (out,) = redaction_step.redacted_events([event], at)
            # As the stage does: a trace left as it was goes on as the bytes it came in.
            to_bytes_passing_trace(out, event, m.value)

    return run


def _scoring(messages: list[Message], batch: int) -> Callable[[], object]:
    policy = load_policy(DEFAULT_POLICY_PATH)
    empty = scoring_logic.BudgetFacts(for_pattern={}, on_day={})

    def run() -> None:
        at = stamp("scoring", __version__, now())
        for lo in range(0, len(messages), batch):
            chunk = messages[lo : lo + batch]
            events = [TraceRedacted.model_validate_json(m.value) for m in chunk]
            decided = scoring_step.scored_batch(events, policy, empty, {}, at)
            for out, event, m in zip(decided, events, chunk, strict=True):
                to_bytes_passing_trace(out, event, m.value)

    return run


def _fixture_writer(messages: list[Message]) -> Callable[[], object]:
    def run() -> None:
        second_pass._VERDICTS.clear()
        for m in messages:
            event = TraceScored.model_validate_json(m.value)
            fixture_logic.privacy_checked(
                fixture_logic.build_fixtures(event), second_pass.find_leaks
            )

    return run


def pure_rates(ctx: Context, inputs: StageInputs) -> dict[str, Any]:
    """Traces/s of each stage's compute alone, single-threaded in this process."""
    settings = Settings()
    n = ctx.plan.compute_events
    work: dict[str, tuple[int, Callable[[], object]]] = {}
    raw, normalized = inputs.raw[:n], inputs.normalized[:n]
    work["ingest"] = (len(raw), _ingest(raw, settings))
    work["dedupe"] = (len(normalized), _dedupe(normalized, inputs.deduped[:n]))
    work["redaction"] = (len(inputs.deduped[:n]), _redaction(inputs.deduped[:n]))
    work["scoring"] = (
        len(inputs.redacted[:n]),
        _scoring(inputs.redacted[:n], settings.stage_batch_records),
    )
    work["fixture_writer"] = (len(inputs.promoted[:n]), _fixture_writer(inputs.promoted[:n]))
    out: dict[str, Any] = {}
    for stage in STAGES:
        count, run = work[stage]
        if not count:
            out[stage] = {"error": "no input events"}
            continue
        with ctx.reporter.task(f"{stage}: pure compute in-process ({count} events)") as task:
            run()  # untimed: imports, lazily built engines, compiled patterns
            rates = []
            for _ in range(ctx.plan.reps):
                started = time.perf_counter()
                run()
                rates.append(stats.rate(count, time.perf_counter() - started))
            task.done(f"{stats.median(rates):,.0f} traces/s")
        out[stage] = {
            "events": count,
            "what": WHAT[stage],
            "traces_per_s": stats.measurement(rates, "traces/s"),
            "cpu_ms_per_event": 1000.0 / stats.median(rates),
        }
    return out
