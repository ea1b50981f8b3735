"""Text detectors: each is a cheap prefilter plus an exact, validating extractor.

A detector's ``prefilters`` are *necessary conditions*: every string in which its extractor
can find something must match at least one of them. The scanner compiles all prefilters of all
detectors into one multi-pattern database, so a string without any hit costs one scan, and an
extractor only ever runs on strings where its prefilter fired.

ReDoS: no pattern here can take super-linear time. Prefilters run on Hyperscan (or an RE2
set): automata. Extraction patterns with an unbounded repeat (emails, keys, tokens, key=value)
run on RE2: automata again. Python's ``re`` is used only where every repeat is bounded by a
small constant (phones, cards, IBANs, SSNs, IPs: backtracking from one start position is then
bounded too, so a scan is linear), on inputs of bounded length (the 40 characters before a
match), or for single-class patterns anchored at a position. The reason for ``re`` at all is
cost: RE2's Python wrapper spends ~10 µs per match, and timestamps and ids make the phone and
IP extractors run on most strings. The Python validators only loop over a match.

The credential rules were written for this project; gitleaks' MIT-licensed rule list informed
the key prefixes and lengths. Nothing here comes from AGPL rule sets (trufflehog).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator

import re2

from services.redaction.base import (
    PLACEHOLDER,
    Detector,
    Finding,
    is_placeholder,
    luhn_ok,
)
from services.redaction.base import after as _after
from services.redaction.base import before as _before
from services.redaction.base import glued as _glued
from services.redaction.base import is_word as _is_word
from services.redaction.identifiers import IDENTIFIER_DETECTORS
from services.redaction.phones import PHONE_DETECTOR, normalise_phone
from services.redaction.prose import (
    ADDRESS_DETECTORS,
    LOWERCASE_PERSON_DETECTOR,
    PERSON_DETECTOR,
)

# Re-exported: logic, the scanner and tests import these from here.
__all__ = [
    "CREDENTIAL_DETECTORS",
    "DEFAULT_DETECTORS",
    "PII_DETECTORS",
    "PLACEHOLDER",
    "Detector",
    "Finding",
    "ip_kept",
    "is_placeholder",
    "normalise_phone",
    "secret_like_value",
]


def shannon_entropy(value: str) -> float:
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


# ---------------------------------------------------------------------------------------
# Personal data
# ---------------------------------------------------------------------------------------

# "%40" too: addresses travel URL-encoded in query strings (http.url attributes).
_EMAIL = re2.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b")
# "icon@2x.png" has the shape of an address but is an asset name.
_FILE_SUFFIXES = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tiff"})


def _emails(text: str) -> Iterator[Finding]:
    for m in _EMAIL.finditer(text):
        start, end = m.span()
        value = m.group()
        stripped = value.lstrip(".")
        start += len(value) - len(stripped)
        local, _, domain = stripped.replace("%40", "@", 1).partition("@")
        if not local or local.endswith(".") or domain.rsplit(".", 1)[-1].lower() in _FILE_SUFFIXES:
            continue
        # scheme://user:password@host is a connection URL, not an address; the password
        # detector owns it.
        if _before(text, start) == ":":
            window = text[max(0, start - 256) : start]
            token = window[max(window.rfind(" "), window.rfind("\n")) + 1 :]
            if "://" in token:
                continue
        yield Finding(start, end, "EMAIL", f"{local}@{domain}".lower())


_CARD = re.compile(r"\b[0-9](?:[ -]?[0-9]){11,18}\b", re.ASCII)
_CARD_CONTEXT = re.compile(
    r"(?i)\b(?:card|credit|debit|maestro|visa|mastercard|cc)\b[^0-9\n]{0,20}$"
)


def _card_brand_ok(d: str) -> bool:
    """Issuer prefixes and lengths: a Luhn check alone passes one random number in ten."""
    n = len(d)
    p2, p3, p4, p6 = int(d[:2]), int(d[:3]), int(d[:4]), int(d[:6])
    if p4 in (1800, 2131):  # JCB's older fifteen-digit ranges
        return n == 15
    if d[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if 300 <= p3 <= 305 or p2 in (36, 38, 39) or p4 == 3095:
        return 14 <= n <= 19
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19
    if p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925 or p2 == 62:
        return 16 <= n <= 19
    # Maestro also issues twelve-digit cards; a twelve-digit Luhn run is far more often an id
    # (0.006 % of the tau2 tokens were tracking numbers read as cards).
    return (p2 == 50 or 56 <= p2 <= 69) and 13 <= n <= 19


_MAESTRO_12 = frozenset({"50", *(str(p) for p in range(56, 70))})


def _card_digits_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and _card_brand_ok(digits) and luhn_ok(digits)


def _cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        start, end = m.span()
        raw = m.group()
        digits = raw.replace(" ", "").replace("-", "")
        if _card_digits_ok(digits):
            yield Finding(start, end, "CARD", digits)
            continue
        # Twelve-digit Maestro cards, and Luhn-valid numbers of card length whose issuer
        # prefix is not known here: only after a card word (bare, they are ids).
        card_length = (len(digits) == 12 and digits[:2] in _MAESTRO_12) or 13 <= len(digits) <= 19
        if (
            card_length
            and luhn_ok(digits)
            and _CARD_CONTEXT.search(text, max(0, start - 40), start)
        ):
            yield Finding(start, end, "CARD", digits)
            continue
        # A grouped number glued to a neighbouring group ("ref 1234 4111 1111 1111 1111"):
        # try the runs of whole groups inside it, longest first.
        groups: list[tuple[int, int]] = []
        pos = 0
        for part in raw.replace("-", " ").split(" "):
            groups.append((pos, pos + len(part)))
            pos += len(part) + 1
        # Cards are printed in groups of 4 to 6 digits; "1 2 3 4 ..." is not worth the search.
        if len(groups) < 2 or any(e - s < 3 for s, e in groups):
            continue
        spans = sorted(
            ((i, j) for i in range(len(groups)) for j in range(i + 1, len(groups) + 1)),
            key=lambda ij: -(groups[ij[1] - 1][1] - groups[ij[0]][0]),
        )
        for i, j in spans:
            s, e = groups[i][0], groups[j - 1][1]
            digits = raw[s:e].replace(" ", "").replace("-", "")
            if _card_digits_ok(digits):
                yield Finding(start + s, start + e, "CARD", digits)
                break


# ISO 13616 registry lengths; a country not listed is not treated as an IBAN.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}", re.ASCII)


def iban_ok(compact: str) -> bool:
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        length = IBAN_LENGTHS.get(raw[:2])
        if length is None:
            continue
        # Cut at the registry length: the greedy match may have swallowed a following word.
        positions = [i for i, ch in enumerate(raw) if ch != " "]
        if len(positions) < length:
            continue
        cut = positions[length - 1] + 1
        end = m.start() + cut
        if _is_word(_after(text, end)):
            continue
        compact = raw[:cut].replace(" ", "")
        if iban_ok(compact):
            yield Finding(m.start(), end, "IBAN", compact)


_SSN = re.compile(r"\b([0-9]{3})([- .])([0-9]{2})([- .])([0-9]{4})\b", re.ASCII)
_SSN_CONTEXT = r"(?:ssn|social[ -]security(?:[ -]number)?)[^0-9A-Za-z]{0,5}"
_SSN_BARE = re.compile(_SSN_CONTEXT + r"([0-9]{9})\b", re.ASCII | re.IGNORECASE)


def ssn_ok(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return (
        area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and len(set(digits)) > 1
    )


def _ssns(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        if m.group(2) != m.group(4) or _glued(text, m.start(), m.end()):
            continue
        digits = m.group(1) + m.group(3) + m.group(5)
        if ssn_ok(digits):
            yield Finding(m.start(), m.end(), "SSN", digits)
    for m in _SSN_BARE.finditer(text):
        digits = m.group(1)
        if ssn_ok(digits):
            yield Finding(m.start(1), m.end(1), "SSN", digits)


_IPV4 = re.compile(r"\b[0-9]{1,3}(?:\.[0-9]{1,3}){3}\b", re.ASCII)
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|version|ver\.?)[ :=]*$")


def _keep_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Loopback, "any" and netmask-like reserved addresses describe no one and teach a lot.
    return ip.is_loopback or ip.is_unspecified or (ip.version == 4 and ip.is_reserved)


def ip_kept(text: str, start: int, end: int) -> bool:
    """The addresses both passes deliberately leave: loopback/any/reserved, and a dotted quad
    written as a version ("v1.2.3.4", "version 10.0.0.1")."""
    if _VERSION_BEFORE.search(text[max(0, start - 10) : start]):
        return True
    try:
        return _keep_ip(ipaddress.ip_address(text[start:end]))
    except ValueError:
        return False


def _ipv4s(text: str) -> Iterator[Finding]:
    for m in _IPV4.finditer(text):
        start, end = m.span()
        if _glued(text, start, end, joiners="."):
            continue
        if _VERSION_BEFORE.search(text[max(0, start - 10) : start]):
            continue
        try:
            ip = ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        if not _keep_ip(ip):
            yield Finding(start, end, "IP", str(ip))


_IPV6 = re.compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}")


def _ipv6s(text: str) -> Iterator[Finding]:
    for m in _IPV6.finditer(text):
        start, end = m.span()
        raw = m.group()
        b, a = _before(text, start), _after(text, end)
        # Rust/C++ paths (std::io), Python slices (x[::2]) and clock times are not addresses.
        if (b and (_is_word(b) or b in ":.")) or (a and (_is_word(a) or a == ":")):
            continue
        if a == "." and _is_word(_after(text, end + 1)):
            continue
        groups = [g for g in raw.split(":") if g]
        if len(groups) < 2 or max(len(g) for g in groups) < 3:
            continue
        try:
            ip = ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        if not _keep_ip(ip):
            yield Finding(start, end, "IP", ip.compressed)


# ---------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------


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

PII_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "email",
        (r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]+\.[A-Za-z0-9-]", r"[A-Za-z0-9._%+-]%40[A-Za-z0-9-]+\."),
        _emails,
    ),
    Detector("payment_card", (r"[0-9](?:[ -]?[0-9]){11}",), _cards),
    Detector("iban", (r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11}",), _ibans),
    Detector(
        "us_ssn",
        (r"[0-9]{3}[- .][0-9]{2}[- .][0-9]{4}", _SSN_CONTEXT + r"[0-9]{9}"),
        _ssns,
        caseless=True,
    ),
    *IDENTIFIER_DETECTORS,
    PHONE_DETECTOR,
    Detector("ipv4", (r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}",), _ipv4s),
    # Two colons and a group of three or more hex digits before, between or after them:
    # what _ipv6s requires, and what clock times ("10:30:00") lack.
    Detector(
        "ipv6",
        (
            r"[0-9A-Fa-f]{3}[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:",
            r":[0-9A-Fa-f:]*:[0-9A-Fa-f]{3}",
            r":[0-9A-Fa-f]{3,4}:",
        ),
        _ipv6s,
    ),
)

# Prose detectors come last: a finding of a specific detector wins a tie.
PROSE_DETECTORS: tuple[Detector, ...] = (
    *ADDRESS_DETECTORS,
    PERSON_DETECTOR,
    LOWERCASE_PERSON_DETECTOR,
)

DEFAULT_DETECTORS: tuple[Detector, ...] = CREDENTIAL_DETECTORS + PII_DETECTORS + PROSE_DETECTORS
