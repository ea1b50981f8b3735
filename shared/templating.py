"""Error-message templating: variable parts become typed placeholders, the way Sentry
groups events, so "timeout after 3012 ms for order 8812" and "timeout after 95 ms for
order 17" are one message. Versioned: change the rules, bump the version."""

from __future__ import annotations

import functools
import re

TEMPLATE_VERSION = 1

# Order matters: the most specific shapes first, so a UUID is not eaten as hex or number.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("<email>", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("<url>", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)),
    (
        "<uuid>",
        re.compile(
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE
        ),
    ),
    (
        "<date>",
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
    ),
    ("<ip>", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
    ("<path>", re.compile(r"(?<![\w/])(?:/[\w.-]+){2,}/?")),
    ("<quoted>", re.compile(r"'[^'\n]{1,200}'|\"[^\"\n]{1,200}\"")),
    (
        "<hex>",
        re.compile(
            r"\b(?:0x)?[0-9a-f]*[a-f][0-9a-f]*[0-9][0-9a-f]*\b|\b[0-9a-f]{12,}\b", re.IGNORECASE
        ),
    ),
    ("<id>", re.compile(r"\b[A-Za-z]+[-_]?\d[\w-]*\b")),
    ("<num>", re.compile(r"[-+]?\b\d+(?:[.,]\d+)*\b")),
)

_SPACES = re.compile(r"\s+")


# Pure, and called on every word of every trace dedupe sketches: words repeat across
# traces far more than they vary, so a bounded memo pays (profiling).
def template_message(message: str, max_chars: int = 500) -> str:
    # Cut before the memo: keyed by the whole message, 3,000 messages of 100 KB kept
    # 288 MB alive (issue 13). Keyed by the cut text, the memo holds at most
    # 65,536 x max_chars characters.
    return template_text(message[:max_chars])


@functools.lru_cache(maxsize=65_536)
def template_text(text: str) -> str:
    for placeholder, pattern in _RULES:
        text = pattern.sub(placeholder, text)
    return _SPACES.sub(" ", text).strip()
