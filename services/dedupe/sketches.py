"""What the store compares: a trace's intent as integer word codes weighted by rarity, and
its content as a MinHash. The sizes and weights here are part of the pattern identity
(see logic.py): change them and ``FINGERPRINT_VERSION`` must change too.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable

import numpy as np
from datasketch import MinHash
from wordfreq import zipf_frequency

from services.dedupe.normalisation import content_tokens, intent_words, structured_text
from shared.conversation import user_turns
from shared.events import SpanKind, Trace, TraceFeatures
from shared.features import root_span

FINGERPRINT_VERSION = 3

NUM_PERM = 128
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


@functools.lru_cache(maxsize=65536)
def _weighed(intent: Intent) -> tuple[frozenset[int], int]:
    """The intent's codes as a set, and their total weight. Cached: every trace of a
    bucket is compared with the same remembered intents."""
    return frozenset(intent), sum(code_weight(c) for c in intent)


def intent_similarity(a: Intent, b: Intent) -> float:
    """Weighted Jaccard: the weight of the words both share over the weight of all."""
    if not a or not b:
        return 0.0
    codes_a, weight_a = _weighed(a)
    codes_b, weight_b = _weighed(b)
    common = sum(code_weight(c) for c in codes_a & codes_b)
    return common / (weight_a + weight_b - common)


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
