"""Every Kafka topic the pipeline uses, in one place, with how it is created.

Retention is short where content is still raw (before redaction) and long from
traces.redacted on; fixtures.index is compacted because only the latest coverage
per pattern matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RAW = "traces.raw"
NORMALIZED = "traces.normalized"
DEDUPED = "traces.deduped"
REDACTED = "traces.redacted"
SCORED = "traces.scored"
PROMOTED = "traces.promoted"
FIXTURES_INDEX = "fixtures.index"
DLQ = "traces.dlq"
# People's verdicts on held cases, keyed by pattern id (services/review).
REVIEWED = "traces.reviewed"

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class TopicSpec:
    name: str
    retention_ms: int
    compacted: bool = False
    # Whether the retention is the "raw zone" one (may hold unredacted content).
    raw_zone: bool = False


def topic_specs(raw_retention_ms: int, kept_retention_ms: int) -> tuple[TopicSpec, ...]:
    return (
        TopicSpec(RAW, raw_retention_ms, raw_zone=True),
        TopicSpec(NORMALIZED, raw_retention_ms, raw_zone=True),
        TopicSpec(DEDUPED, raw_retention_ms, raw_zone=True),
        TopicSpec(REDACTED, kept_retention_ms),
        TopicSpec(SCORED, kept_retention_ms),
        TopicSpec(PROMOTED, kept_retention_ms),
        TopicSpec(FIXTURES_INDEX, -1, compacted=True),
        # Dead letters carry references, not payloads, so they may be kept long.
        TopicSpec(DLQ, kept_retention_ms),
        # Verdicts are replayed by scoring and the fixture writer: kept like the decisions.
        TopicSpec(REVIEWED, kept_retention_ms),
    )


# Main pipeline input of each stage (the one whose lag means "work left to do").
PIPELINE_INPUT: dict[str, str] = {
    "ingest": RAW,
    "dedupe": NORMALIZED,
    "redaction": DEDUPED,
    "scoring": REDACTED,
    "fixture_writer": PROMOTED,
}


def consumer_group(stage: str, purpose: str = "") -> str:
    """A stage's consumer group; a stage reading a second topic for another purpose does so
    in a group of its own, so each offset means one thing."""
    return f"trace-promoter.{stage}" + (f".{purpose}" if purpose else "")


COVERAGE = "coverage"  # dedupe follows fixtures.index
WITHDRAWALS = "withdrawals"  # the fixture writer follows replayed decisions on traces.scored
REVIEWS = "reviews"  # scoring and the fixture writer follow verdicts on traces.reviewed

# Every consumer group of each stage with the topics it reads: `promote wait` and
# `promote status` read lag from these.
STAGE_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "ingest": {consumer_group("ingest"): (RAW,)},
    "dedupe": {
        consumer_group("dedupe"): (NORMALIZED,),
        consumer_group("dedupe", COVERAGE): (FIXTURES_INDEX,),
    },
    "redaction": {consumer_group("redaction"): (DEDUPED,)},
    "scoring": {
        consumer_group("scoring"): (REDACTED,),
        consumer_group("scoring", REVIEWS): (REVIEWED,),
    },
    "fixture_writer": {
        consumer_group("fixture_writer"): (PROMOTED,),
        consumer_group("fixture_writer", WITHDRAWALS): (SCORED,),
        consumer_group("fixture_writer", REVIEWS): (REVIEWED,),
    },
    # The review stage keeps the held cases of traces.scored for people to judge.
    "review": {consumer_group("review"): (SCORED,)},
}

# Decisions on traces.scored and traces.promoted carry who made them: the live stage or a
# replay. Only a replay re-decides a trace, so only its decisions can withdraw a promotion.
DECIDED_BY_HEADER = "decided-by"
REPLAY_STAGE = "replay"


def replayed(headers: Mapping[str, str]) -> bool:
    """Whether a decision's record was published by a replay (its what-if), not the live
    scoring stage, which decides each trace once."""
    return headers.get(DECIDED_BY_HEADER) == REPLAY_STAGE
