"""What every detector module shares: the Finding and Detector records and the small
character-level helpers (word boundaries, glued tokens, placeholders)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    start: int
    end: int
    kind: str
    # The identity used to number placeholders: the same person, card or key written two
    # ways must get one placeholder, so this is normalised (E.164, digits, lowercase ...).
    value: str


@dataclass(frozen=True)
class Detector:
    name: str
    prefilters: tuple[str, ...]
    extract: Callable[[str], Iterable[Finding]]
    caseless: bool = False


PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")


def is_placeholder(value: str) -> bool:
    value = value.strip()
    return len(value) <= 40 and PLACEHOLDER.fullmatch(value) is not None


def is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def before(text: str, i: int) -> str:
    return text[i - 1] if i > 0 else ""


def after(text: str, i: int) -> str:
    return text[i] if i < len(text) else ""


def glued(text: str, start: int, end: int, joiners: str = ".-") -> bool:
    """True when the match is one piece of a longer token (a UUID segment, a version, an id):
    a word character right next to it, or a joiner followed by a word character."""
    b, a = before(text, start), after(text, end)
    if (b and is_word(b)) or (a and is_word(a)):
        return True
    if b and b in joiners and is_word(before(text, start - 1)):
        return True
    return bool(a and a in joiners and is_word(after(text, end + 1)))


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of cards and several national ids."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
