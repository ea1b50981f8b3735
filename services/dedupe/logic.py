"""Dedupe's functional core: pattern identity, near copies, and what to forward.

Fingerprint v2 has two parts.

**Structure** (hashed into the *bucket*): agent, outcome, error types, templated error
messages, the steps that failed, the side-effecting tools the run called, whether it
retrieved, which guardrails fired, the approval states it went through, and whether it
escalated. Read-only lookups and the order and repetition of steps are left out on
purpose: runs of one failing request fetch their context in different orders, repeat a
lookup or add one (the corpus's "same intent, different path" trap does exactly that),
whereas what a run *changed* and where it *broke* is the lesson. Every part of the bucket
is also a part of the partition key or finer, so dedupe only ever refines that key.

**Intent** (a MinHash over normalised words): what the run was about, from the user's
request and the agent's final answer. Structure alone merges different requests that
happen to share a tool shape (the "same shape, different intent" trap: look up user →
look up order → transfer to a human). The request alone splits one lesson by wording
("pause my plan" / "freeze billing" / "suspend my membership" share no word); the agent's
answer to one kind of request is far more stable than users' wording, so both together
keep rewordings together and different requests apart. Words are lowercased, variable
parts (numbers, ids, emails, URLs, ...) removed via ``shared.templating``, mid-sentence
proper nouns (names, plans, places: values, not intent) and stopwords dropped, suffixes
stripped.

Within one bucket a trace joins the pattern whose stored intent signatures it resembles
most, if that Jaccard estimate reaches ``INTENT_THRESHOLD``; otherwise it founds a new
pattern named after its own intent. The store does the lookup and records the answer per
trace id, so a redelivery keeps its pattern; one bucket lives on one partition of
traces.normalized, so N instances see its traces in the same order one would.

Near copies: a content MinHash (request, tool calls with arguments and results, answer;
values templated) lets a pattern keep up to k diverse exemplars and skip traces that are
near copies of one it already has.

The thresholds and sketch sizes are part of the identity, not settings: change them and
``FINGERPRINT_VERSION`` must change too. The version is part of every pattern id, so a new
version never silently merges with patterns of an old one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
from datasketch import MinHash

from shared.events import FixtureIndexed, SpanKind, SpanStatus, Trace, TraceFeatures
from shared.features import root_span, started_at
from shared.templating import template_message

FINGERPRINT_VERSION = 2

NUM_PERM = 128
# The largest cross-lesson intent similarity inside one bucket of the corpus is about
# 0.15, the typical similarity of two wordings of one lesson 0.3-0.6: 0.25 leaves room on
# both sides for the MinHash estimate's noise (about ±0.04 at 128 permutations).
INTENT_THRESHOLD = 0.25
# A pattern remembers up to this many wordings of its intent to compare new traces with.
MAX_INTENTS = 8
# An intent this close to one the pattern already remembers adds nothing to remember.
SAME_WORDING = 0.9
NEAR_COPY = 0.9
DEFAULT_EXEMPLARS = 3
# LSH bands over the intent sketch narrow the candidates a store must compare: with 2 rows
# per band and 64 bands, a pattern at Jaccard 0.25 shares a band with probability > 0.98.
BAND_ROWS = 2

Sketch = tuple[int, ...]


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
    intent: Sketch
    content: Sketch

    @functools.cached_property
    def intent_bands(self) -> tuple[int, ...]:
        # Cached: the store reads the bands to look candidates up and again to index them.
        return bands(self.intent)


@dataclass(frozen=True)
class Candidate:
    """A pattern of the observation's bucket with the intents it remembers, in order."""

    pattern_id: str
    intents: tuple[Sketch, ...]


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
_SENTENCE_END = (".", "?", "!", ":", ";")
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


def intent_words(text: str | None) -> list[str]:
    """The words of a text that say what it is about, normalised; values removed."""
    words: list[str] = []
    sentence_start = True
    for chunk in (text or "").split():
        starts = sentence_start
        sentence_start = chunk.endswith(_SENTENCE_END)
        if template_message(chunk) != chunk:
            continue  # a number, id, email, URL, quoted value ...: a value, not intent
        bare = chunk.strip("\"'()[]{}.,;:!?¿¡*")
        if not starts and bare[:1].isupper() and not bare.isupper():
            continue  # a proper noun mid-sentence: a name, plan or place
        for part in _LETTERS.findall(chunk.replace("\u2019", "'")):
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


def bands(s: Sketch) -> tuple[int, ...]:
    """LSH band keys of a sketch, as signed 64-bit integers (they go into int8 columns)."""
    keys = []
    for i in range(0, len(s), BAND_ROWS):
        basis = f"{i}:" + ",".join(map(str, s[i : i + BAND_ROWS]))
        keys.append(int.from_bytes(hashlib.sha256(basis.encode()).digest()[:8], "big", signed=True))
    return tuple(keys)


def intent_sketch(trace: Trace, features: TraceFeatures) -> Sketch:
    root = root_span(trace)
    answer = root.output if root is not None else None
    return sketch([*intent_words(features.user_request), *intent_words(answer)])


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
    spans = trace.spans
    root = root_span(trace)
    failing: set[str] = set()
    for s in spans:
        if s.status != SpanStatus.ERROR or s is root:
            continue
        failing.add(f"tool:{s.tool_name or s.name}" if s.kind == SpanKind.TOOL else s.kind.value)
    return {
        "agent": trace.agent_name or "-",
        "outcome": features.outcome,
        "errors": ",".join(features.error_types),
        "messages": "|".join(features.error_templates),
        "failing": ",".join(sorted(failing)),
        "effects": ",".join(sorted({c.name for c in features.tool_calls if c.side_effecting})),
        "retrieval": str(any(s.kind == SpanKind.RETRIEVAL for s in spans)),
        "guardrails": ",".join(
            sorted({template_message(s.name) for s in spans if s.guardrail_triggered})
        ),
        "approval": ",".join(sorted({s.approval for s in spans if s.approval is not None})),
        "escalated": str(features.escalated),
    }


def fingerprint(trace: Trace, features: TraceFeatures) -> str:
    """The structural part of the identity, as readable text."""
    return "\n".join(
        [f"v{FINGERPRINT_VERSION}", *(f"{k}={v}" for k, v in structure(trace, features).items())]
    )


def bucket_of(fingerprint_text: str) -> str:
    return hashlib.sha256(fingerprint_text.encode()).hexdigest()[:20]


def _sketch_digest(s: Sketch) -> str:
    return hashlib.sha256(",".join(map(str, s)).encode()).hexdigest()


def pattern_id_of(bucket: str, founding_intent: Sketch) -> str:
    """Named after the bucket and the founding trace's intent: two instances founding a
    pattern for the same intent during a rebalance name it alike."""
    return f"p{FINGERPRINT_VERSION}-{bucket[:12]}{_sketch_digest(founding_intent)[:8]}"


def pattern_fingerprint(fingerprint_text: str, founding_intent: Sketch) -> str:
    return f"{fingerprint_text}\nintent={_sketch_digest(founding_intent)[:16]}"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def content_sha256(trace: Trace) -> str:
    return hashlib.sha256(trace.model_dump_json().encode()).hexdigest()


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
    best: tuple[float, str] | None = None
    closest = 0.0
    remembered = 0
    for c in candidates:
        if not c.intents:
            continue
        score = max(similarity(obs.intent, i) for i in c.intents)
        if score >= threshold and (best is None or (-score, c.pattern_id) < (-best[0], best[1])):
            best, closest, remembered = (score, c.pattern_id), score, len(c.intents)
    if best is None:
        return Assignment(pattern_id_of(obs.bucket, obs.intent), created=True, remember_intent=True)
    return Assignment(
        best[1], created=False, remember_intent=closest < SAME_WORDING and remembered < max_intents
    )


def exemplar_role(
    content: Sketch,
    exemplars: Sequence[Sketch],
    k: int = DEFAULT_EXEMPLARS,
    near_copy: float = NEAR_COPY,
) -> Role:
    if any(similarity(content, e) >= near_copy for e in exemplars):
        return Role.NEAR_COPY
    return Role.EXEMPLAR if len(exemplars) < k else Role.SURPLUS


def should_forward(recorded: Recorded, covered: bool) -> bool:
    """Forward what can still teach something: not a redelivery already passed on, not a
    near copy of an exemplar, and not a pattern the suite already covers (its statistics
    are updated all the same)."""
    if recorded.already_forwarded or recorded.near_copy:
        return False
    return not covered


def covers(indexed: FixtureIndexed) -> bool:
    """A pattern whose fixtures a replay has all retired is uncovered again: its new traces
    are forwarded and judged as any uncovered pattern's."""
    return bool(indexed.fixture_ids)
