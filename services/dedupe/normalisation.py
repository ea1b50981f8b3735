"""Text normalisation for pattern identity: the words of a text that say what it is about,
and the tokens of its content with values templated.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from shared.templating import template_message

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
    # The chunk before this one, and the two before it joined by a space: a cue is one or
    # two words. (After a single chunk the pair is that chunk, which ``last`` tests too.)
    last = pair = ""
    naming = False
    for chunk in (text or "").split():
        folded, capitalised, chunk_words = _read_chunk(chunk)
        cue = pair in _IDENTITY_CUES or last in _IDENTITY_CUES
        pair = f"{last} {folded}" if pair else folded
        last = folded
        naming = capitalised and (cue or naming)
        if naming:
            continue  # "this is Ana Lima", "my name is Ana Lima": who, not what
        words += chunk_words
    return words


def _read_chunk(chunk: str) -> tuple[str, bool, tuple[str, ...]]:
    """What ``intent_words`` reads of one chunk, whatever surrounds it: the chunk as an
    identity cue, whether it is capitalised as a name is, and its words. Short chunks are
    memoised (words repeat across traces far more than they vary: profiling); a long one
    (a token, a blob) is read directly, so the memo stays small."""
    if len(chunk) > _MEMO_CHARS:
        return _chunk_reading(chunk)
    return _memo_chunk_reading(chunk)


_MEMO_CHARS = 100


def _chunk_reading(chunk: str) -> tuple[str, bool, tuple[str, ...]]:
    bare = chunk.strip(_WRAPPERS)
    folded = chunk.casefold().strip(",.;:!?")
    capitalised = bare[:1].isupper() and not bare.isupper()
    if not bare or template_message(bare) != bare:
        return folded, capitalised, ()  # a number, id, email, URL ...: a value, not intent
    words: list[str] = []
    for part in _LETTERS.findall(bare.replace("\u2019", "'")):
        if len(_CASE_FLIP.findall(part)) > 1:
            continue  # mixed case like "egdEiavbyUz": a token or key, not a word
        word = part.casefold()
        if len(word) > 1 and word not in STOPWORDS and stem(word) not in STOPWORDS:
            words.append(stem(word))
    return folded, capitalised, tuple(words)


_memo_chunk_reading = functools.lru_cache(maxsize=65_536)(_chunk_reading)


_CONTENT_TOKEN = re.compile(r"<\w+>|[^\W_]+")


def content_tokens(text: str | None) -> list[str]:
    """Words and typed placeholders of a text: two traces that differ only in values have
    the same tokens. Templated chunk by chunk: over a whole text, the quoted-value rule
    would swallow everything between two apostrophes ("I'd like ... I'm")."""
    tokens: list[str] = []
    for chunk in (text or "").split():
        # Keyed by what templating reads of the chunk (its first 500 characters), so the
        # memo stays as small as the templating one.
        tokens += _chunk_tokens(chunk[:_TEMPLATED_CHARS])
    return tokens


_TEMPLATED_CHARS = 500  # template_message's default cut


@functools.lru_cache(maxsize=65_536)
def _chunk_tokens(chunk: str) -> tuple[str, ...]:
    """Cached: chunks repeat across traces far more than they vary (profiling)."""
    return tuple(_CONTENT_TOKEN.findall(template_message(chunk, _TEMPLATED_CHARS).casefold()))


def _flatten(value: Any, key: str, out: list[str]) -> list[str]:
    # Appends to one list: nested generators cost a frame per level for every line (tool
    # results of real runs flatten to hundreds of lines).
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, str(k), out)
    elif isinstance(value, list):
        for v in value:
            _flatten(v, key, out)
    else:
        out.append(f"{key} {value}")
    return out


def structured_text(raw: str | None) -> list[str]:
    """JSON flattened to "key value" lines so each value is templated on its own;
    anything else as it is."""
    if not raw:
        return []
    try:
        return _flatten(json.loads(raw), "", [])
    except ValueError:
        return [raw]
