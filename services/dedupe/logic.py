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
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import numpy as np
from datasketch import MinHash
from wordfreq import zipf_frequency

from services.dedupe.trajectory import tool_path
from shared.conversation import user_turns
from shared.events import (
    AgentBaseline,
    FixtureIndexed,
    MetricBaseline,
    PatternInfo,
    SpanKind,
    Trace,
    TraceFeatures,
)
from shared.features import root_span, started_at
from shared.templating import template_message
from shared.trends import DayCount, trend

FINGERPRINT_VERSION = 3

NUM_PERM = 128
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
# A word's weight is how much rarer than common words it is: 8 minus its Zipf frequency
# (Zipf 7 ≈ "the", 5.5 ≈ "order", 4 ≈ "lamp", 0 = not in the lists), quantised.
WEIGHT_BITS = 6
WEIGHT_SCALE = 4.0  # quantisation steps per unit of weight
ZIPF_CEILING = 8.0
# Words unknown to the frequency lists are often names, typos or tokens rather than the
# request: they count as rare, not as the rarest.
UNKNOWN_ZIPF = 1.5
# The rarest words of an intent index it: a trace is compared with the patterns of its
# bucket that share one of its rarest words.
INDEX_WORDS = 12

Sketch = tuple[int, ...]
# Codes of an intent's words: digest in the upper bits, quantised weight in the low bits.
Intent = tuple[int, ...]


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
    utc = seen_at.astimezone(UTC)
    hour = utc.replace(minute=0, second=0, microsecond=0)
    return (("hour", hour), ("day", hour.replace(hour=0)))


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
    agent: str = "-"
    # (measure, log value) pairs the agent's baseline learns from.
    measures: tuple[tuple[str, float], ...] = ()
    point: SeriesPoint | None = None
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


# --- text normalisation -------------------------------------------------------------

_STOPWORD_TEXT = """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each either few for
from further had has have having he her here hers him his how i if in into is it its itself
just let me more most must my myself no nor not now of off on once only or other our ours
out over own please same she should so some such than thank thanks that the their theirs
them then there these they this those through to too under until up very was we were what
when where which while who whom why will with would you your yours hi hello hey ok okay
don didn doesn isn aren wasn weren won wouldn shouldn couldn haven hasn hadn ve ll re
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_LETTERS = re.compile(r"[^\W\d_]+")
_SUFFIXES = ("ations", "ation", "ings", "ing", "edly", "ed", "ies", "es", "s", "ly", "ment", "er")
_CASE_FLIP = re.compile(r"[a-z][A-Z]")


def stem(word: str) -> str:
    """A deliberately small suffix stripper: enough to make "cancelled", "cancelling" and
    "cancel" one word, predictable enough to reason about in a test."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    # "arrived" and "arrive", "cancelled" and "cancel" must meet: a final e or double
    # consonant of a longer word goes, whether or not a suffix came off.
    if len(word) >= 5 and (word[-1] == "e" or (word[-1] == word[-2] and word[-1] not in "aeiou")):
        word = word[:-1]
    return word


# Words after which a capitalised word names the speaker or someone's account: who asked,
# not what was asked.
_IDENTITY_CUES = frozenset(
    {"name is", "i'm", "i am", "this is", "it's", "call me", "named", "name's", "am", "regards"}
)


# Punctuation and quotes around a word, typographic quotes included.
_WRAPPERS = "\"'()[]{}.,;:!?¿¡*\u2018\u2019\u201c\u201d"


def intent_words(text: str | None) -> list[str]:
    """The words of a text that say what it is about, normalised. Values (numbers, ids,
    emails, URLs), stopwords and the names people give for themselves are dropped; other
    proper nouns stay: a title, a place or a product is often what the request is about."""
    words: list[str] = []
    previous: list[str] = []
    naming = False
    for chunk in (text or "").split():
        bare = chunk.strip(_WRAPPERS)
        cue = " ".join(previous[-2:]) in _IDENTITY_CUES or "".join(previous[-1:]) in _IDENTITY_CUES
        previous = [*previous[-1:], chunk.casefold().strip(",.;:!?")]
        naming = bare[:1].isupper() and not bare.isupper() and (cue or naming)
        if naming:
            continue  # "this is Ana Lima", "my name is Ana Lima": who, not what
        if not bare or template_message(bare) != bare:
            continue  # a number, id, email, URL ...: a value, not intent
        for part in _LETTERS.findall(bare.replace("\u2019", "'")):
            if len(_CASE_FLIP.findall(part)) > 1:
                continue  # mixed case like "egdEiavbyUz": a token or key, not a word
            word = part.casefold()
            if len(word) > 1 and word not in STOPWORDS and stem(word) not in STOPWORDS:
                words.append(stem(word))
    return words


_CONTENT_TOKEN = re.compile(r"<\w+>|[^\W_]+")


def content_tokens(text: str | None) -> list[str]:
    """Words and typed placeholders of a text: two traces that differ only in values have
    the same tokens. Templated chunk by chunk: over a whole text, the quoted-value rule
    would swallow everything between two apostrophes ("I'd like ... I'm")."""
    tokens: list[str] = []
    for chunk in (text or "").split():
        tokens += _CONTENT_TOKEN.findall(template_message(chunk).casefold())
    return tokens


def _flatten(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _flatten(v, key)
    else:
        yield f"{key} {value}"


def structured_text(raw: str | None) -> list[str]:
    """JSON flattened to "key value" lines so each value is templated on its own;
    anything else as it is."""
    if not raw:
        return []
    try:
        return list(_flatten(json.loads(raw)))
    except ValueError:
        return [raw]


# --- sketches ----------------------------------------------------------------------

_PROTOTYPE = MinHash(num_perm=NUM_PERM, seed=FINGERPRINT_VERSION, scheme="affine32")


def sketch(shingles: Iterable[str]) -> Sketch:
    m = MinHash(
        num_perm=NUM_PERM,
        seed=FINGERPRINT_VERSION,
        scheme="affine32",
        permutations=_PROTOTYPE.permutations,
    )
    m.update_batch([s.encode() for s in sorted(set(shingles))])
    return tuple(int(v) for v in m.hashvalues)


def similarity(a: Sketch, b: Sketch) -> float:
    """The MinHash estimate of the Jaccard similarity of the two shingle sets."""
    if len(a) != len(b):
        raise ValueError("sketches of different sizes cannot be compared")
    return float(np.count_nonzero(np.asarray(a) == np.asarray(b))) / len(a)


_MASK = (1 << 63) - 1


@functools.lru_cache(maxsize=65536)
def word_weight(word: str) -> int:
    """A word's quantised rarity: the commoner the word, the less it says about the
    request. Cached: a stream repeats its vocabulary."""
    zipf = zipf_frequency(word, "en") or UNKNOWN_ZIPF
    quantised = round(max(0.0, ZIPF_CEILING - zipf) * WEIGHT_SCALE)
    return max(1, min(quantised, (1 << WEIGHT_BITS) - 1))


def word_code(word: str) -> int:
    digest = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big") & _MASK
    code = (digest >> WEIGHT_BITS << WEIGHT_BITS) | word_weight(word)
    # Signed 64-bit: the codes go into int8 columns.
    return code - (1 << 63) if code >= 1 << 62 else code


def code_weight(code: int) -> int:
    return code & ((1 << WEIGHT_BITS) - 1)


def intent_of(texts: Iterable[str | None]) -> Intent:
    return tuple(sorted({word_code(w) for text in texts for w in intent_words(text)}))


def intent_similarity(a: Intent, b: Intent) -> float:
    """Weighted Jaccard: the weight of the words both share over the weight of all."""
    if not a or not b:
        return 0.0
    shared = set(a) & set(b)
    common = sum(code_weight(c) for c in shared)
    union = sum(code_weight(c) for c in a) + sum(code_weight(c) for c in b) - common
    return common / union


def index_keys(intent: Intent, words: int = INDEX_WORDS) -> tuple[int, ...]:
    """The codes of the intent's rarest words (ties broken by code, so every instance
    picks the same)."""
    return tuple(sorted(sorted(intent, key=lambda c: (-code_weight(c), c))[:words]))


def intent_sketch(trace: Trace, features: TraceFeatures) -> Intent:
    """Every user turn. The agent's answers are left out: on real runs a wrong answer
    differs from run to run, and splits one lesson (measured in EVALUATION.md).

    An instrumentation that records no message content (some send it as log records, not
    on spans) leaves no user turn: then whatever text the model calls and tools carry
    stands in, so that such runs are not all merged into one pattern per bucket."""
    intent = intent_of(user_turns(trace) or [features.user_request])
    if intent:
        return intent
    spans = sorted(trace.spans, key=lambda s: (s.start_time, s.span_id))
    return intent_of(
        text
        for s in spans
        for text in (s.input, s.output, s.tool_name, s.tool_arguments)
        if s.kind in (SpanKind.LLM, SpanKind.AGENT, SpanKind.TOOL)
    )


def content_sketch(trace: Trace, features: TraceFeatures) -> Sketch:
    """Shingles (word 3-grams) of the request, each tool call and the final answer."""
    root = root_span(trace)
    parts: list[list[str]] = [content_tokens(features.user_request)]
    for span in sorted(trace.spans, key=lambda s: (s.start_time, s.span_id)):
        if span.kind != SpanKind.TOOL:
            continue
        tokens = [span.tool_name or span.name]
        for line in (*structured_text(span.tool_arguments), *structured_text(span.tool_result)):
            tokens += content_tokens(line)
        parts.append(tokens)
    parts.append(content_tokens(root.output if root is not None else None))
    shingles: set[str] = set()
    for n, tokens in enumerate(parts):
        padded = [f"#{n}", *tokens]  # where a part starts is content too
        shingles.update(" ".join(padded[i : i + 3]) for i in range(max(1, len(padded) - 2)))
    return sketch(shingles)


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


def content_sha256(trace: Trace) -> str:
    return hashlib.sha256(trace.model_dump_json().encode()).hexdigest()


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


def observe(trace: Trace, features: TraceFeatures) -> Observation:
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
        content_sha256=content_sha256(trace),
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
    for c in candidates:
        if not c.intents:
            continue
        score = max(intent_similarity(intent, i) for i in c.intents)
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


def should_forward(recorded: Recorded, covered: bool, rising: bool = False) -> bool:
    """Forward what can still teach something: not a redelivery already passed on, not a
    near copy of an exemplar, and not a pattern the suite already covers (its statistics
    are updated all the same) unless it keeps rising: covered but not protected."""
    if recorded.already_forwarded or recorded.near_copy:
        return False
    return not covered or rising


def covers(indexed: FixtureIndexed) -> bool:
    """A pattern whose fixtures a replay has all retired is uncovered again: its new traces
    are forwarded and judged as any uncovered pattern's."""
    return bool(indexed.fixture_ids)
