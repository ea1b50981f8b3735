"""The benchmark's inputs, built in-process with the stages' own pure logic.

Every stage's input topic can be fed with realistic events without running the stages
before it: raw native JSON for ingest, TraceNormalized for dedupe (ingest's logic),
TraceDeduped (dedupe's logic over its in-memory store), TraceRedacted (redact_trace) and
the promoted TraceScored (scoring's logic with an in-memory budget).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.dedupe import logic as dedupe_logic
from services.dedupe.store import InMemoryPatternStore
from services.ingest import logic as ingest_logic
from services.redaction import step as redaction_step
from services.scoring import step as scoring_step
from services.scoring.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from services.scoring.store import InMemoryBudgetStore
from shared import __version__
from shared.events import (
    Decision,
    Trace,
    TraceDeduped,
    TraceNormalized,
    TraceRedacted,
    TraceScored,
    advance,
)
from shared.features import is_complete
from shared.stage import now, stamp, to_bytes
from tools.bench.kafkautil import Message
from tools.corpus.generate import LabelledTrace, generate

JSON_HEADERS = (("content-type", b"application/json"),)


def corpus(seed: int, scale: int) -> list[LabelledTrace]:
    """The generated corpus without its traces whose root never ends: those only measure
    the assembly's maximum wait (PROMOTE_ASSEMBLY_MAX_WAIT_MS), not throughput."""
    return [item for item in generate(seed=seed, scale=scale) if is_complete(item.trace)]


def native_bytes(trace: Trace) -> bytes:
    return trace.model_dump_json().encode()


def raw_messages(traces: list[Trace]) -> list[Message]:
    """What `promote send` publishes for native JSON: keyed by trace id."""
    return [
        Message(t.trace_id.encode(), native_bytes(t), JSON_HEADERS, trace_id=t.trace_id)
        for t in traces
    ]


@dataclass
class StageInputs:
    """Pre-built input messages of every stage, from one list of traces."""

    raw: list[Message]
    normalized: list[Message]
    deduped: list[Message]
    redacted: list[Message]
    promoted: list[Message]


def normalized_events(traces: list[Trace]) -> list[TraceNormalized]:
    return ingest_logic.normalize(traces, stamp("ingest", __version__, now()))


async def _deduped(events: list[TraceNormalized]) -> list[TraceDeduped]:
    store = InMemoryPatternStore()
    out = []
    for event in events:
        observation = dedupe_logic.observe(event.trace, event.features)
        recorded = await store.record(observation)
        pattern = await store.pattern(recorded.pattern_id)
        out.append(
            advance(event, TraceDeduped, stamp("dedupe", __version__, now()), pattern=pattern)
        )
    return out


def deduped_events(events: list[TraceNormalized]) -> list[TraceDeduped]:
    """Every trace forwarded (no fixture covers anything yet), with the pattern statistics
    dedupe would attach after seeing the traces before it."""
    return asyncio.run(_deduped(events))


def redacted_events(events: list[TraceDeduped]) -> list[TraceRedacted]:
    return redaction_step.redacted_events(events, stamp("redaction", __version__, now()))


async def _scored(events: list[TraceRedacted], policy: Policy) -> list[TraceScored]:
    """The scoring stage's own step, one batch."""
    return await scoring_step.decide(
        events, policy, InMemoryBudgetStore(), None, stamp("scoring", __version__, now())
    )


def scored_events(events: list[TraceRedacted], policy: Policy | None = None) -> list[TraceScored]:
    return asyncio.run(_scored(events, policy or load_policy(DEFAULT_POLICY_PATH)))


def _keyed(events: list[TraceDeduped] | list[TraceRedacted] | list[TraceScored]) -> list[Message]:
    return [
        Message(e.pattern.pattern_id.encode(), to_bytes(e), JSON_HEADERS, trace_id=e.trace_id)
        for e in events
    ]


def stage_inputs(traces: list[Trace], promoted_wanted: int) -> StageInputs:
    """Input messages for each stage. The fixture writer only ever sees promotions, so its
    input is the promoted share of the scored events under the default policy without its
    per-pattern budget (which lets only a few traces of each pattern through), at most
    ``promoted_wanted`` of them."""
    normalized = normalized_events(traces)
    deduped = deduped_events(normalized)
    redacted = redacted_events(deduped)
    scored = scored_events(redacted, _unbudgeted_policy())
    promoted = [e for e in scored if e.decision == Decision.PROMOTE]
    return StageInputs(
        raw=raw_messages(traces),
        normalized=[
            Message(
                ingest_logic.partition_key(e).encode(),
                to_bytes(e),
                JSON_HEADERS,
                trace_id=e.trace_id,
            )
            for e in normalized
        ],
        deduped=_keyed(deduped),
        redacted=_keyed(redacted),
        promoted=_keyed(promoted)[:promoted_wanted] if promoted else [],
    )


def _unbudgeted_policy() -> Policy:
    """The default policy with no per-pattern budget: every trace that earns promotion is
    promoted, so the fixture writer's input is large enough to time."""
    policy = load_policy(DEFAULT_POLICY_PATH)
    budgets = policy.budgets.model_copy(update={"per_pattern": 1_000_000_000, "daily": None})
    return policy.model_copy(update={"budgets": budgets})
