"""Personal data found by format and confirmed by validation: emails, payment cards, IBANs,
US SSNs and IP addresses; with the national identifiers and phone numbers, the PII detectors.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

import re2

from services.redaction.base import Detector, Finding, luhn_ok
from services.redaction.base import after as _after
from services.redaction.base import before as _before
from services.redaction.base import glued as _glued
from services.redaction.base import is_word as _is_word
from services.redaction.identifiers import IDENTIFIER_DETECTORS
from services.redaction.phones import PHONE_DETECTOR

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
