"""What the store compares: a trace's intent as integer word codes weighted by rarity, and
its content as a MinHash. The sizes and weights here are part of the pattern identity
(see logic.py): change them and ``FINGERPRINT_VERSION`` must change too.
"""

from __future__ import annotations

import functools
import hashlib
import operator
from collections.abc import Callable, Iterable

from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32
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


@functools.lru_cache(maxsize=65536)
def _shingle_hash(shingle: str) -> int:
    """datasketch's own default hash (SHA-1, 32 bits) of the shingle's UTF-8 bytes, so the
    sketch values are those of ``MinHash`` without a ``hashfunc``. Cached: shingles repeat
    across traces far more than they vary, and hashing them was over half of a content
    sketch's time (profiling)."""
    return int(sha1_hash32(shingle.encode()))


# One MinHash, cleared for each sketch: building one (its permutations drawn or checked
# and copied) cost as much as filling it (profiled). ``sketch`` never awaits, so no two
# calls share it.
_SKETCHER = MinHash(
    num_perm=NUM_PERM, seed=FINGERPRINT_VERSION, scheme="affine32", hashfunc=_shingle_hash
)


def sketch(shingles: Iterable[str]) -> Sketch:
    _SKETCHER.clear()
    # A set, unsorted: each value is a minimum over the shingles, whatever their order.
    _SKETCHER.update_batch(set(shingles))
    return tuple(_SKETCHER.hashvalues.tolist())


def similarity(a: Sketch, b: Sketch) -> float:
    """The MinHash estimate of the Jaccard similarity of the two shingle sets."""
    if len(a) != len(b):
        raise ValueError("sketches of different sizes cannot be compared")
    # Plain ints: two arrays built per call cost more than comparing 128 pairs.
    return sum(map(operator.eq, a, b)) / len(a)


_MASK = (1 << 63) - 1


@functools.lru_cache(maxsize=65536)
def word_weight(word: str) -> int:
    """A word's quantised rarity: the commoner the word, the less it says about the
    request. Cached: a stream repeats its vocabulary."""
    zipf = zipf_frequency(word, "en") or UNKNOWN_ZIPF
    quantised = round(max(0.0, ZIPF_CEILING - zipf) * WEIGHT_SCALE)
    return max(1, min(quantised, (1 << WEIGHT_BITS) - 1))


@functools.lru_cache(maxsize=65536)
def word_code(word: str) -> int:
    """Cached: a stream repeats its vocabulary, and a digest costs more than the lookup."""
    digest = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big") & _MASK
    code = (digest >> WEIGHT_BITS << WEIGHT_BITS) | word_weight(word)
    # Signed 64-bit: the codes go into int8 columns.
    return code - (1 << 63) if code >= 1 << 62 else code


_WEIGHT_MASK = (1 << WEIGHT_BITS) - 1


def code_weight(code: int) -> int:
    return code & _WEIGHT_MASK


def intent_of(texts: Iterable[str | None]) -> Intent:
    return tuple(sorted({word_code(w) for text in texts for w in intent_words(text)}))


@functools.lru_cache(maxsize=65536)
def _weighed(intent: Intent) -> tuple[frozenset[int], int]:
    """The intent's codes as a set, and their total weight. Cached: every trace of a
    bucket is compared with the same remembered intents."""
    return frozenset(intent), sum(code_weight(c) for c in intent)


def intent_similarity(a: Intent, b: Intent) -> float:
    """Weighted Jaccard: the weight of the words both share over the weight of all."""
    return similarity_to(a)(b)


def similarity_to(a: Intent) -> Callable[[Intent], float]:
    """``intent_similarity`` with ``a`` fixed: a trace is compared with every remembered
    intent of its candidates (over a hundred per trace on real runs), and ``a``'s set and
    weight are then looked up once, not once per comparison."""
    if not a:
        return lambda b: 0.0
    codes_a, weight_a = _weighed(a)

    def to(b: Intent) -> float:
        if not b:
            return 0.0
        codes_b, weight_b = _weighed(b)
        # code_weight, mapped: no generator frame per shared word.
        common = sum(map(_WEIGHT_MASK.__and__, codes_a & codes_b))
        return common / (weight_a + weight_b - common)

    return to


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
        if len(padded) < 3:
            shingles.add(" ".join(padded))
        else:
            # Word 3-grams: the shorter slices end the windows.
            windows = zip(padded, padded[1:], padded[2:], strict=False)
            shingles.update(map(" ".join, windows))
    return sketch(shingles)
