"""Dedupe's functional core: pattern identity, near copies, and what to forward.

A lesson is what the user wanted plus how the run ended, not the surface path. Real runs
of one request differ in tool order, repeated lookups, detours and wording, while runs of
different requests often share a tool shape (look up the user, look up the order, act).
Fingerprint v3 therefore has two parts.

**Bucket**: the agent and the run's outcome (success, failure, unknown). It is also the
partition key of traces.normalized, so every trace that could join a pattern reaches one
dedupe instance, in one order, and N instances decide as one.

**Intent**: what the user asked for over the whole conversation (every user turn, see
``shared.conversation``), as a set of normalised words weighted by their rarity in
general English (``wordfreq``'s frequency lists, shipped inside the package: no model,
no download, and the same weights on every instance). Rare words carry the request
("lamp", "bottle", "utsuro-bune"); words every request shares ("order", "help", "need")
weigh little. Values (numbers, ids, emails, URLs, quoted strings), stopwords and
mid-sentence proper nouns (names: who asked is not what was asked) are dropped.

Within a bucket a trace joins the pattern whose remembered intents it resembles most by
weighted Jaccard similarity, if that reaches ``INTENT_THRESHOLD``; otherwise it founds a
new pattern named after its own intent. The threshold was chosen on one real corpus and
checked on another (EVALUATION.md). The store records the answer per trace id, so a
redelivery keeps its pattern.

The store never sees a word: an intent is a tuple of integer *codes*, each a digest of a
word in its upper bits and the word's quantised weight in its low ``WEIGHT_BITS`` bits, so
the weighted similarity can be computed from what the store keeps. The codes of an
intent's rarest words index it for candidate lookup.

Near copies: a content MinHash (request, tool calls with arguments and results, answer;
values templated) lets a pattern keep up to k diverse exemplars and skip traces that are
near copies of one it already has.

The thresholds, weights and sketch sizes are part of the identity, not settings: change
them and ``FINGERPRINT_VERSION`` must change too. The version is part of every pattern id,
so a new version never silently merges with patterns of an old one.

The words are read in normalisation.py, intents and content sketches made in sketches.py;
this module names buckets and patterns and decides.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from services.dedupe.normalisation import intent_words
from services.dedupe.sketches import (
    FINGERPRINT_VERSION,
    Intent,
    Sketch,
    code_weight,
    content_sketch,
    index_keys,
    intent_of,
    intent_similarity,
    intent_sketch,
    similarity,
    similarity_to,
    sketch,
    word_code,
    word_weight,
)
from services.dedupe.trajectory import tool_path
from shared.events import (
    AgentBaseline,
    FixtureIndexed,
    MetricBaseline,
    PatternInfo,
    Trace,
    TraceFeatures,
)
from shared.features import started_at
from shared.trends import DayCount, trend

# Re-exported: the store, the app, tests and tools read the identity through this module.
__all__ = [
    "FINGERPRINT_VERSION",
    "Intent",
    "Sketch",
    "code_weight",
    "intent_of",
    "intent_similarity",
    "intent_words",
    "similarity",
    "sketch",
    "word_code",
    "word_weight",
]

# Weighted Jaccard of two intents at or above which they are one request. Chosen on the
# tau2 retail runs and checked on the wiki research runs (EVALUATION.md, "Threshold
# choice").
INTENT_THRESHOLD = 0.35
# A pattern remembers up to this many wordings of its intent to compare new traces with.
MAX_INTENTS = 8
# An intent this close to one the pattern already remembers adds nothing to remember.
SAME_WORDING = 0.9
NEAR_COPY = 0.9
DEFAULT_EXEMPLARS = 3


@dataclass(frozen=True)
class SeriesPoint:
    """What one trace adds to its pattern's hourly and daily series."""

    agent_version: str
    failed: bool
    retries: int
    # People pulled in: human interventions, user corrections and an escalation.
    rescues: int
    escalated: bool
    latency_ms: float
    tokens: int

    @staticmethod
    def of(trace: Trace, features: TraceFeatures) -> SeriesPoint:
        return SeriesPoint(
            agent_version=trace.agent_version or "-",
            failed=features.outcome == "failure",
            retries=features.retries + features.loops,
            rescues=features.human_interventions
            + features.user_corrections
            + int(features.escalated),
            escalated=features.escalated,
            latency_ms=features.latency_ms,
            tokens=features.total_tokens,
        )


def series_starts(seen_at: datetime) -> tuple[tuple[str, datetime], ...]:
    """The hour and the day a trace falls in, in UTC."""
    hour = hour_of(seen_at)
    return (("hour", hour), ("day", hour.replace(hour=0)))


def hour_of(seen_at: datetime) -> datetime:
    """The start of the UTC hour ``seen_at`` falls in."""
    return seen_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# A pattern's recent counts are counted by the hour, from its hourly series: the hour of its
# last sighting and the 23 (or 167) before it. Counting sightings one by one over a sliding
# window meant reading every trace of the pattern's last week on every batch it could
# touch, which grows with its traffic (a pattern seen 50 times a second has 30 million).
DAY_HOURS = 24
WEEK_HOURS = 7 * 24


def first_counted_hour(last_seen: datetime, hours: int) -> datetime:
    """The first hour of the ``hours``-hour window that ends with the hour of ``last_seen``."""
    return hour_of(last_seen) - timedelta(hours=hours - 1)


def sightings_since(sightings: Mapping[datetime, int], first_hour: datetime) -> int:
    """How many sightings fall in ``first_hour`` or a later hour."""
    return sum(n for hour, n in sightings.items() if hour >= first_hour)


def with_trend(pattern: PatternInfo, days: Sequence[DayCount], today: date) -> PatternInfo:
    return pattern.model_copy(update={"trend": trend(days, today)})


def is_rising(pattern: PatternInfo) -> bool:
    return pattern.trend is not None and pattern.trend.rising


@dataclass(frozen=True)
class Observation:
    trace_id: str
    content_sha256: str
    # Digest of the structural fingerprint: patterns are assigned within it.
    bucket: str
    fingerprint: str
    fingerprint_version: int
    seen_at: datetime
    # (dimension, value) pairs counted as distinct per pattern; ids are digests.
    members: tuple[tuple[str, str], ...]
    intent: Intent
    content: Sketch
    point: SeriesPoint
    agent: str = "-"
    # (measure, log value) pairs the agent's baseline learns from.
    measures: tuple[tuple[str, float], ...] = ()
    # Tool names in call order: a reference path for the pattern's later runs.
    path: tuple[str, ...] = ()

    @functools.cached_property
    def intent_bands(self) -> tuple[int, ...]:
        # Cached: the store reads the keys to look candidates up and again to index them.
        return index_keys(self.intent)


@dataclass(frozen=True)
class Candidate:
    """A pattern of the observation's bucket with the intents it remembers, in order."""

    pattern_id: str
    intents: tuple[Intent, ...]


@dataclass(frozen=True)
class Assignment:
    pattern_id: str
    created: bool
    # Whether the trace's intent is a new wording the pattern should remember.
    remember_intent: bool


class Role(StrEnum):
    EXEMPLAR = "exemplar"  # kept as one of the pattern's diverse exemplars
    NEAR_COPY = "near_copy"  # counted, not forwarded
    SURPLUS = "surplus"  # not a near copy, but the pattern already has k exemplars


@dataclass(frozen=True)
class Recorded:
    pattern_id: str
    first_delivery: bool
    already_forwarded: bool
    near_copy: bool = False


# --- structure ---------------------------------------------------------------------


def structure(trace: Trace, features: TraceFeatures) -> dict[str, str]:
    """The bucket: agent and outcome. Paths, errors and side effects are left out on
    purpose: different paths to one failure must meet (see the module docstring)."""
    return {"agent": trace.agent_name or "-", "outcome": features.outcome}


def fingerprint(trace: Trace, features: TraceFeatures) -> str:
    """The structural part of the identity, as readable text."""
    return _fingerprint_text(structure(trace, features))


def _fingerprint_text(parts: Mapping[str, str]) -> str:
    return "\n".join([f"v{FINGERPRINT_VERSION}", *(f"{k}={v}" for k, v in parts.items())])


def success_bucket(agent: str) -> str:
    """The bucket of the agent's successful runs: where a run's reference paths live."""
    return bucket_of(_fingerprint_text({"agent": agent, "outcome": "success"}))


def bucket_of(fingerprint_text: str) -> str:
    return hashlib.sha256(fingerprint_text.encode()).hexdigest()[:20]


def _sketch_digest(s: Sketch) -> str:
    return hashlib.sha256(",".join(map(str, s)).encode()).hexdigest()


def pattern_id_of(bucket: str, founding_intent: Intent) -> str:
    """Named after the bucket and the founding trace's intent: two instances founding a
    pattern for the same intent during a rebalance name it alike."""
    return f"p{FINGERPRINT_VERSION}-{bucket[:12]}{_sketch_digest(founding_intent)[:8]}"


def pattern_fingerprint(fingerprint_text: str, founding_intent: Intent) -> str:
    return f"{fingerprint_text}\nintent={_sketch_digest(founding_intent)[:16]}"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def content_sha256(trace: Trace, event_json: bytes | None = None) -> str:
    """The digest of the trace's JSON: taken from the record it arrived in when that holds
    it as serialising the trace would write it (what every stage publishes), so the trace
    is not serialised again (15 % of dedupe's pure compute); serialised otherwise."""
    received = trace_json_in(event_json) if event_json is not None else None
    serialised = received if received is not None else trace.__pydantic_serializer__.to_json(trace)
    return hashlib.sha256(serialised).hexdigest()


_TRACE_OPENS = b'"trace":{'
_FEATURES_OPEN = b',"features":{'


def trace_json_in(event_json: bytes) -> bytes | None:
    """The ``trace`` object of a compact trace event's JSON, as written, or None when the
    event is laid out otherwise (spaced, reordered). A JSON string holds a quote only
    escaped, so the unescaped key ``"trace":`` first met is the event's own (its fields
    before it are a number, a string and stamps), and the last ``,"features":{`` is the
    key that follows it (no field inside the features is named so)."""
    start = event_json.find(_TRACE_OPENS)
    end = event_json.rfind(_FEATURES_OPEN)
    if start < 0 or end <= start:
        return None
    return event_json[start + len(_TRACE_OPENS) - 1 : end]


def measures(features: TraceFeatures) -> tuple[tuple[str, float], ...]:
    """The log of each cost measure a trace has: a missing or zero measure (no token
    counts recorded) teaches the baseline nothing."""
    values = {
        "latency_ms": features.latency_ms,
        "total_tokens": float(features.total_tokens),
        "cost_usd": features.cost_usd,
        "tool_calls": float(len(features.tool_calls)),
    }
    return tuple((name, math.log(v)) for name, v in values.items() if v > 0)


@dataclass(frozen=True)
class MeasureSums:
    """What the store keeps of a measure: count, sum and sum of squares of its logs."""

    traces: int
    total: float
    squares: float


# A spread below this (about ±10 %) is treated as this: an agent whose first traces
# happen to be alike would otherwise make every small difference look extreme.
MIN_LOG_SD = 0.1


def baseline_of(agent: str, sums: Mapping[str, MeasureSums]) -> AgentBaseline:
    out: dict[str, MetricBaseline] = {}
    for name, s in sorted(sums.items()):
        if s.traces <= 0:
            continue
        mean = s.total / s.traces
        variance = max(0.0, s.squares / s.traces - mean * mean)
        sd = max(
            MIN_LOG_SD, math.sqrt(variance * s.traces / (s.traces - 1)) if s.traces > 1 else 0.0
        )
        out[name] = MetricBaseline(traces=s.traces, log_mean=round(mean, 6), log_sd=round(sd, 6))
    return AgentBaseline(agent=agent, measures=out)


def observe(trace: Trace, features: TraceFeatures, event_json: bytes | None = None) -> Observation:
    """What the store compares and counts of one trace; ``event_json`` is the record the
    trace arrived in, when there is one (see ``content_sha256``)."""
    text = fingerprint(trace, features)
    seen_at = started_at(trace)
    members: list[tuple[str, str]] = [("day", seen_at.date().isoformat())]
    if trace.session_id:
        members.append(("session", digest(trace.session_id)))
    if trace.user_id:
        members.append(("user", digest(trace.user_id)))
    if trace.agent_version:
        members.append(("agent_version", trace.agent_version))
    return Observation(
        trace_id=trace.trace_id,
        content_sha256=content_sha256(trace, event_json),
        bucket=bucket_of(text),
        fingerprint=text,
        fingerprint_version=FINGERPRINT_VERSION,
        seen_at=seen_at,
        members=tuple(members),
        intent=intent_sketch(trace, features),
        content=content_sketch(trace, features),
        agent=trace.agent_name or "-",
        measures=measures(features),
        point=SeriesPoint.of(trace, features),
        path=tool_path(trace),
    )


# --- decisions ---------------------------------------------------------------------


def assign(
    obs: Observation,
    candidates: Sequence[Candidate],
    threshold: float = INTENT_THRESHOLD,
    max_intents: int = MAX_INTENTS,
) -> Assignment:
    """The pattern of a new trace among its bucket's patterns. The best match wins, ties
    go to the smaller pattern id, so the answer does not depend on the candidates' order."""
    best = best_match(obs.intent, candidates, threshold)
    if best is None:
        return Assignment(pattern_id_of(obs.bucket, obs.intent), created=True, remember_intent=True)
    closest, chosen = best
    return Assignment(
        chosen.pattern_id,
        created=False,
        remember_intent=closest < SAME_WORDING and len(chosen.intents) < max_intents,
    )


def best_match(
    intent: Intent, candidates: Sequence[Candidate], threshold: float = INTENT_THRESHOLD
) -> tuple[float, Candidate] | None:
    """The candidate whose remembered intents resemble ``intent`` most, at or above the
    threshold; ties go to the smaller pattern id."""
    best: tuple[float, Candidate] | None = None
    to_intent = similarity_to(intent)
    for c in candidates:
        if not c.intents:
            continue
        score = max(map(to_intent, c.intents))
        if score >= threshold and (
            best is None or (-score, c.pattern_id) < (-best[0], best[1].pattern_id)
        ):
            best = (score, c)
    return best


def exemplar_role(
    content: Sketch,
    exemplars: Sequence[Sketch],
    k: int = DEFAULT_EXEMPLARS,
    near_copy: float = NEAR_COPY,
) -> Role:
    if any(similarity(content, e) >= near_copy for e in exemplars):
        return Role.NEAR_COPY
    return Role.EXEMPLAR if len(exemplars) < k else Role.SURPLUS


def may_forward(recorded: Recorded) -> bool:
    """Whether the trace itself can still teach something, whatever its pattern: not a
    redelivery already passed on, not a near copy of an exemplar. Most traces of a busy
    pattern are neither, so this is asked before the pattern's statistics are gathered."""
    return not (recorded.already_forwarded or recorded.near_copy)


def should_forward(recorded: Recorded, covered: bool, rising: bool = False) -> bool:
    """Forward what can still teach something (``may_forward``), unless the suite already
    covers its pattern (its statistics are updated all the same) and it is not rising:
    covered but not protected."""
    if not may_forward(recorded):
        return False
    return not covered or rising


def covers(indexed: FixtureIndexed) -> bool:
    """A pattern whose fixtures a replay has all retired is uncovered again: its new traces
    are forwarded and judged as any uncovered pattern's."""
    return bool(indexed.fixture_ids)
