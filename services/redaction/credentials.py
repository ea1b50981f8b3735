"""Credentials: provider keys and tokens by their prefixes, private keys, JWTs, passwords in
connection URLs and key=value text, and random-looking tokens under secret-like names.

The rules were written for this project; gitleaks' MIT-licensed rule list informed the key
prefixes and lengths. Nothing here comes from AGPL rule sets (trufflehog).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator

import re2

from services.redaction.base import Detector, Finding, is_placeholder


def shannon_entropy(value: str) -> float:
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _simple(pattern: str, kind: str, group: int = 0) -> Callable[[str], Iterator[Finding]]:
    compiled = re2.compile(pattern)

    def extract(text: str) -> Iterator[Finding]:
        for m in compiled.finditer(text):
            yield Finding(m.start(group), m.end(group), kind, m.group(group))

    return extract


_PEM = re2.compile(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)"
    r"(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)"
)


def _private_keys(text: str) -> Iterator[Finding]:
    # A block cut off before its END line is redacted to the end of the string.
    for m in _PEM.finditer(text):
        body = "".join(m.group().replace("\\n", "\n").split())
        yield Finding(m.start(), m.end(), "PRIVATE_KEY", body)


_JWT = re2.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _b64url_json(part: str) -> object:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _jwts(text: str) -> Iterator[Finding]:
    for m in _JWT.finditer(text):
        try:
            header = _b64url_json(m.group().split(".", 1)[0])
        except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError
            continue
        if isinstance(header, dict) and "alg" in header:
            yield Finding(m.start(), m.end(), "JWT", m.group())


_OPENAI = re2.compile(r"\bsk-[A-Za-z0-9_-]{20,}")


def _openai_keys(text: str) -> Iterator[Finding]:
    for m in _OPENAI.finditer(text):
        key = m.group()
        if key.startswith("sk-ant-"):
            continue
        body = key.removeprefix("sk-")
        # Real keys are random base62; "sk-large-blue-widget-2024" is a product code.
        if (
            any(c.isdigit() for c in body)
            and any(c.isupper() for c in body)
            and any(c.islower() for c in body)
        ):
            yield Finding(m.start(), m.end(), "OPENAI_KEY", key)


_CONNECTION_URL = re2.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*:([^\s/?#]+)@")


def _masked(value: str) -> bool:
    return not value.strip("*xX•") or is_placeholder(value)


def _connection_passwords(text: str) -> Iterator[Finding]:
    for m in _CONNECTION_URL.finditer(text):
        password = m.group(1)
        if not _masked(password):
            yield Finding(m.start(1), m.end(1), "PASSWORD", password)


# "key=value" / "key: value" / "\"key\": \"value\"" in free text; the value is read by hand
# below (quotes, an auth scheme, a cookie header) rather than by a pattern with backrefs.
_KV_WORDS = (
    r"password|passwd|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key(?:[_-]?id)?"
    r"|private[_-]?key|authorization|cookie|sessionid|session|credentials?"
)
_KV_PREFILTER = r"(?:" + _KV_WORDS + r")(?:\\?[\"'])?[ \t]*[:=]"
_KV = re2.compile(r"(?i)([A-Za-z0-9_.-]*(?:" + _KV_WORDS + r"))(?:\\?[\"'])?[ \t]*[:=][ \t]*")
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "apikey", "negotiate"})
# Words that sit where a secret would and are not one: types, nulls, masks, states.
_NOT_SECRETS = frozenset(
    {
        "", "none", "null", "nil", "true", "false", "undefined", "str", "string", "int",
        "bool", "optional", "any", "required", "redacted", "hidden", "masked", "invalid",
        "expired", "missing", "empty", "provided", "present", "set", "unset", "yes", "no",
        "[redacted]", "[filtered]", "env", "secret", "password", "token",
    }
)  # fmt: skip


_QUOTED = {
    q: re.compile(r"(?:[^" + q + r"\n\\]|\\[^" + q + r"])*") for q in ('"', "'")
}  # each step is one character of one unambiguous alternative: linear
_COOKIE_VALUE = re.compile(r"[^\r\n\"']*")
_BARE_VALUE = re.compile(r"[^ \t\r\n\"',;&)}\]<>\\]*")


def _run_end(pattern: re.Pattern[str], text: str, i: int) -> int:
    m = pattern.match(text, i)  # a starred pattern: always matches, possibly empty
    return m.end() if m else i


def _read_value(text: str, i: int, key: str) -> tuple[int, int]:
    n = len(text)
    if text.startswith("\\", i) and i + 1 < n and text[i + 1] in "\"'":
        i += 1
    if i < n and text[i] in "\"'":
        # Ends at the closing quote, an escaped quote (JSON inside JSON) or the line's end.
        return i + 1, _run_end(_QUOTED[text[i]], text, i + 1)
    if key.endswith("cookie"):
        return i, _run_end(_COOKIE_VALUE, text, i)
    j = _run_end(_BARE_VALUE, text, i)
    if text[i:j].casefold() in _AUTH_SCHEMES and j < n and text[j] == " ":
        return _read_value(text, j + 1, "")
    return i, j


def _key_values(text: str) -> Iterator[Finding]:
    last_end = 0
    for m in _KV.finditer(text):
        # A key inside the previous value ("password=password=...") was already covered;
        # skipping it also keeps the scan linear.
        if m.start() < last_end:
            continue
        key = m.group(1).casefold()
        if text.startswith("=", m.end()):  # "token == None" is a comparison
            continue
        start, end = _read_value(text, m.end(), key)
        last_end = end
        value = text[start:end]
        scheme, space, credentials = value.partition(" ")
        if space and scheme.casefold() in _AUTH_SCHEMES:  # "Bearer xyz" written in quotes
            start += len(scheme) + 1
            value = credentials
        if value.casefold() in _NOT_SECRETS or _masked(value):
            continue
        password = "pass" in key or "pwd" in key
        if not password and not _looks_random(value, min_len=6):
            continue
        yield Finding(start, end, "PASSWORD" if password else "SECRET", value)


def _looks_random(value: str, min_len: int) -> bool:
    if len(value) < min_len:
        return False
    has_digit = any(c.isdigit() for c in value)
    mixed_case = any(c.isupper() for c in value) and any(c.islower() for c in value)
    return has_digit or mixed_case or len(value) >= 16


_TOKEN_CHARS = r"[A-Za-z0-9+/_.=~-]"
_ENTROPY_NAMES = r"(?:key|token|secret|auth|credential|signature|bearer|password|passwd|pwd)"
_ENTROPY_SEP = r"(?:\\?[\"'])?(?:[ \t]{0,3}(?:[:=]|=>)[ \t]{0,3}|[ \t]{1,3})(?:\\?[\"'])?"
_ENTROPY_CORE = _ENTROPY_NAMES + r"[A-Za-z_-]{0,12}" + _ENTROPY_SEP
_ENTROPY = re2.compile(r"(?i)" + _ENTROPY_CORE + r"(" + _TOKEN_CHARS + r"{20,})")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ENTROPY_THRESHOLD = 3.5  # bits per character; gitleaks' generic rule uses the same figure
ENTROPY_MIN_LENGTH = 20


def high_entropy_token(value: str) -> bool:
    """A random-looking credential rather than an id, a path or a word."""
    if len(value) < ENTROPY_MIN_LENGTH or _UUID.fullmatch(value) or is_placeholder(value):
        return False
    if value.startswith(("/", ".")) or "//" in value:
        return False
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    return shannon_entropy(value) >= ENTROPY_THRESHOLD


_WHOLE_TOKEN = re.compile(_TOKEN_CHARS + r"+")


def secret_like_value(value: str) -> bool:
    """A whole structured value that is one random-looking token (under a key-like name)."""
    return _WHOLE_TOKEN.fullmatch(value) is not None and high_entropy_token(value)


def _entropy_tokens(text: str) -> Iterator[Finding]:
    for m in _ENTROPY.finditer(text):
        value = m.group(1).rstrip(".")
        if high_entropy_token(value):
            yield Finding(m.start(1), m.start(1) + len(value), "SECRET", value)


# Real ids use base32 ([A-Z2-7]); any upper-case alphanumeric keeps synthetic keys caught too.
_AWS = r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"
_GITHUB = r"gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"
# Prefilters only need a necessary prefix; long bounded repeats would bloat the database.
_GITHUB_PREFILTER = r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22}"
_ANTHROPIC = r"sk-ant-[A-Za-z0-9_-]{20,}"
_SLACK = r"xox[baprs]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}"
_STRIPE = r"(?:sk|rk|pk)_(?:live|test|prod)_[A-Za-z0-9]{10,}"
_GOOGLE = r"AIza[0-9A-Za-z_-]{35}"

# Order is priority when two findings cover the same text: specific before generic.
CREDENTIAL_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        (r"-----BEGIN[ A-Z0-9]*PRIVATE KEY",),
        _private_keys,
    ),
    Detector("jwt", (r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.",), _jwts),
    Detector("aws_access_key", (_AWS,), _simple(r"\b(" + _AWS + r")\b", "AWS_KEY", 1)),
    Detector(
        "github_token",
        (_GITHUB_PREFILTER,),
        _simple(r"\b(?:" + _GITHUB + r")\b", "GITHUB_TOKEN"),
    ),
    Detector(
        "anthropic_key",
        (_ANTHROPIC,),
        _simple(r"\b" + _ANTHROPIC, "ANTHROPIC_KEY"),
    ),
    Detector("openai_key", (r"sk-[A-Za-z0-9_-]{20}",), _openai_keys),
    Detector("slack_token", (_SLACK,), _simple(r"\b(?:" + _SLACK + r")", "SLACK_TOKEN")),
    Detector(
        "stripe_key",
        (_STRIPE,),
        _simple(r"\b(?:" + _STRIPE + r")\b", "STRIPE_KEY"),
    ),
    Detector("google_api_key", (_GOOGLE,), _simple(r"\b" + _GOOGLE, "GOOGLE_API_KEY")),
    Detector(
        "connection_password",
        (r"://[^\s:/@?#]*:[^\s/?#]+@",),
        _connection_passwords,
    ),
    Detector("sensitive_key_value", (_KV_PREFILTER,), _key_values, caseless=True),
    Detector(
        "high_entropy_secret",
        (_ENTROPY_CORE + _TOKEN_CHARS + "{20}",),
        _entropy_tokens,
        caseless=True,
    ),
)
