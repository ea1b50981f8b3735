"""Phone numbers in any format: international (``+44 20 7946 0958``, ``0049 30 ...``),
national with a trunk prefix (``030 563 83626``, ``01 60 73 66 25``, ``(02) 9876 5432``),
North American (``(212) 555-0142``, ``212.555.0142x801``) and, after words that say it is a
phone ("call me on", "tel", "mobile", "WhatsApp", "Handy", ...), any digit run of phone length.

libphonenumber decides where it can: a national number is read in each of the configured
default regions (``PROMOTE_REDACTION_PHONE_REGIONS``, eighteen by default) and the first
region where it is valid gives its national significant number, which numbers the placeholder
(the same phone written two ways is one placeholder). Where no region validates it, the shape
decides, failing toward redaction: an international number libphonenumber finds *possible*, a
separated number with a trunk prefix, a NANP-shaped number (generated and fictional ranges are
not "valid" but are still phones) and, in a phone context, any run of 7 to 15 digits.

What stays: bare digit runs with no phone context and no trunk prefix (order and item ids,
timestamps), dates (``2024-05-01``, ``01.02.2024``), dotted quads, versions, and digits glued
to letters (``SKU-20394-1182``).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator

import phonenumbers

from services.redaction.base import Detector, Finding, glued

DEFAULT_REGIONS = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "BR", "IN",
    "AU", "CA", "SG", "JP", "SE", "IE", "CH", "MX",
)  # fmt: skip
REGIONS_ENV = "PROMOTE_REDACTION_PHONE_REGIONS"


def configured_regions() -> tuple[str, ...]:
    raw = os.environ.get(REGIONS_ENV, "")
    chosen = tuple(r.strip().upper() for r in raw.split(",") if r.strip())
    known = phonenumbers.SUPPORTED_REGIONS
    return tuple(r for r in chosen if r in known) or DEFAULT_REGIONS


# A run of digits and the separators phone numbers are written with.
_RUN = re.compile(r"\+?\(?[0-9][0-9 ()./-]{5,24}[0-9]")
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|#)[ ]?[0-9]{1,6}\b", re.IGNORECASE)
_CONTEXT_WORDS = (
    r"phone|telephone|tel|call|calling|called|mobile|mob|cell|cellphone|fax|sms|text(?: me)?"
    r"|whatsapp|signal|dial|ring|reach(?: me)?|contact(?: number)?|my number|your number"
    r"|(?:his|her|their) number|landline|handy|telefon|t[ée]l[ée]phone|portable|tel[ée]fono"
    r"|m[óo]vil|cellulare|celular|telefone|numer telefonu|puhelin|ph"
)
_CONTEXT = re.compile(r"(?i)\b(?:" + _CONTEXT_WORDS + r")\b[^0-9\n]{0,16}$")
# The prefilter's side of it: a context word, then a digit within the same reach.
# Prefilters are matched on UTF-8 bytes, in ASCII: the accented letters are spelled as bytes.
_CONTEXT_WORDS_UTF8 = _CONTEXT_WORDS.replace("[ée]", r"(?:e|\xc3\xa9)").replace(
    "[óo]", r"(?:o|\xc3\xb3)"
)
CONTEXT_PREFILTER = r"(?:" + _CONTEXT_WORDS_UTF8 + r")[^0-9\n]{0,20}[0-9](?:[ ().-]{0,2}[0-9]){6}"
_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}|\b[0-9]{1,2}[./-][0-9]{1,2}[./-](?:19|20)?[0-9]{2}\b"
    r"|\b(?:19|20)[0-9]{2}[./-][0-9]{1,2}[./-][0-9]{1,2}\b"
)
_GROUPS = re.compile(r"[^0-9]+")
_SEPARATOR_RUN = re.compile(r"[ ().-]{3}")
_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_NANP = re.compile(
    r"(?:\+?1[ .-]?|001[ .-]?)?(?:\([0-9]{3}\) ?|[0-9]{3}([ .-]))[0-9]{3}[ .-][0-9]{4}"
)
_SSN_SHAPE = re.compile(r"[0-9]{3}([ .-])[0-9]{2}\1[0-9]{4}")  # the SSN detector's
_MAX_PIECES = 6
_IDD = frozenset(f"00{d}" for d in "123456789")  # "0049 30 ...": an international prefix


def in_phone_context(text: str, start: int) -> bool:
    return _CONTEXT.search(text, max(0, start - 48), start) is not None


class PhoneReader:
    """Reads phone numbers against a fixed list of default regions."""

    def __init__(self, regions: tuple[str, ...]) -> None:
        self.regions = regions
        # A national number without a trunk "0" can only be read in regions that dial
        # without one (ES, IT, PL, SG, MX) or in the NANP; with one, in those that use it.
        self._trunk_zero = tuple(r for r in regions if _national_prefix(r) == "0")
        self._no_trunk = tuple(r for r in regions if _national_prefix(r) in (None, "", "1"))

    def canonical(self, value: str) -> str:
        """E.164 when some region reads the number as valid, else its digits: a keyed phone
        and the same number in prose share one placeholder."""
        found = self._valid_e164(value.strip(), self.regions)
        return found or "".join(ch for ch in value if ch.isdigit()) or value.strip().casefold()

    def _valid_e164(self, candidate: str, regions: tuple[str, ...]) -> str | None:
        return _valid_e164(candidate, regions)

    def read(self, candidate: str, text: str, start: int, end: int, whole: bool) -> str | None:
        """The canonical value of the phone number ``text[start:end]``, or None."""
        if glued(text, start, end):
            return None
        body = candidate.replace("(0)", " ")
        groups = [g for g in _GROUPS.split(body.lstrip("+(")) if g]
        n = sum(len(g) for g in groups)
        if not 7 <= n <= 15 or len(groups) > 6 or sum(len(g) == 1 for g in groups) > 1:
            return None
        if _DATE.search(candidate) or _DOTTED_QUAD.fullmatch(candidate):
            return None
        if _SEPARATOR_RUN.search(candidate) or candidate.count("(") != candidate.count(")"):
            return None
        if candidate.count("/") > 1:  # "12/05/24", "1/2/3": a phone has one, after the area code
            return None
        context = in_phone_context(text, start)
        formatted = any(ch in candidate for ch in " ().-")
        digits = "".join(groups)
        if _SSN_SHAPE.fullmatch(candidate) and not context:
            return None
        if candidate.startswith("+"):
            # "+" and a possible length: fails toward redaction even unformatted.
            return self._international(candidate, digits, True)
        if candidate[:3] in _IDD and n >= 9:
            return self._international(candidate, digits, formatted or context)
        if _NANP.fullmatch(candidate):
            return self._valid_e164(candidate, ("US",)) or _nanp_e164(digits)
        if n < 8 and not context:
            return None
        if digits[0] == "0":
            if formatted or n >= 10:
                found = self._valid_e164(candidate, self._trunk_zero)
                if found:
                    return found
                if formatted and 9 <= n <= 12:
                    return digits[1:]
        elif formatted and whole:
            found = self._valid_e164(candidate, self._no_trunk)
            if found:
                return found
        if context:
            return self._valid_e164(candidate, self.regions) or digits
        return None

    def _international(self, candidate: str, digits: str, lenient: bool) -> str | None:
        return _international(candidate, digits, lenient)

    def findings(self, text: str) -> Iterator[Finding]:
        for m in _RUN.finditer(text):
            run, base, end = m.group(), m.start(), m.end()
            ext = _EXTENSION.match(text, end)
            if ext is not None:
                end = ext.end()
            value = self.read(run, text, base, end, whole=True)
            if value is not None:
                yield Finding(base, end, "PHONE", value)
                continue
            if " " not in run:
                continue
            yield from self._windows(run, text, base)

    def _windows(self, run: str, text: str, base: int) -> Iterator[Finding]:
        """ "order 12345 (212) 555-0142", "0301 234567 0301 765432": windows of whole
        space-separated pieces, left to right, longest first; only windows that start like
        a phone number (+, (, a trunk 0, a NANP shape) or follow a phone word are read."""
        spans: list[tuple[int, int]] = []
        pos = 0
        for part in run.split(" "):
            if part:
                spans.append((pos, pos + len(part)))
            pos += len(part) + 1
        i = 0
        while i < len(spans):
            for j in range(min(len(spans), i + _MAX_PIECES), i, -1):
                s, e = spans[i][0], spans[j - 1][1]
                window = run[s:e]
                n = sum(ch.isdigit() for ch in window)
                if not 7 <= n <= 15:
                    continue
                shaped = window[0] in "+(0" or _NANP.fullmatch(window) is not None
                if not shaped and not in_phone_context(text, base + s):
                    continue
                value = self.read(window, text, base + s, base + e, whole=False)
                if value is not None:
                    yield Finding(base + s, base + e, "PHONE", value)
                    i = j
                    break
            else:
                i += 1


# Cached: libphonenumber's parse costs ~10 us a region, and a trace repeats its customer's
# number (and a conversation its own); both are pure functions of their arguments.
@functools.lru_cache(maxsize=4096)
def _valid_e164(candidate: str, regions: tuple[str, ...]) -> str | None:
    international = candidate.startswith(("+", "00"))
    if international:
        regions = ("ZZ",)
        candidate = "+" + candidate.lstrip("+")[2:] if candidate.startswith("00") else candidate
    for region in regions:
        try:
            number = phonenumbers.parse(candidate, None if international else region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return _identity(number)
    return None


@functools.lru_cache(maxsize=4096)
def _international(candidate: str, digits: str, lenient: bool) -> str | None:
    try:
        number = (
            phonenumbers.parse("+" + candidate.lstrip("+")[2:], None)
            if (candidate.startswith("00"))
            else phonenumbers.parse(candidate, None)
        )
    except phonenumbers.NumberParseException:
        return digits if lenient else None
    e164 = _identity(number)
    if phonenumbers.is_valid_number(number):
        return e164
    if lenient and phonenumbers.is_possible_number(number):
        return e164
    return digits if lenient else None


def _national_prefix(region: str) -> str | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return metadata.national_prefix if metadata is not None else None


def _nanp_e164(digits: str) -> str:
    return digits[-10:]


def _identity(number: phonenumbers.PhoneNumber) -> str:
    """The national significant number: the same for "+49 30 56383626" and "030 563 83626"
    whichever default region validated the national form first (several often do)."""
    return str(phonenumbers.national_significant_number(number))


READER = PhoneReader(configured_regions())


def normalise_phone(value: str) -> str:
    return READER.canonical(value)


PHONE_DETECTOR = Detector(
    "phone",
    (
        # What ``read`` can accept outside a phone context: "+" or "00" and seven digits, a
        # trunk "0" and eight, or separated groups; a bare run of digits without a trunk "0"
        # (an order id, a timestamp) is never a phone there, so it does not fire.
        r"\+\(?[0-9](?:[ ().-]{0,2}[0-9]){6}",
        r"(?:^|[^0-9])00[1-9](?:[ ().-]{0,2}[0-9]){6}",
        r"(?:^|[^0-9])\(?0[0-9]{1,4}\)?[ ()./-]{0,2}[0-9](?:[ ().-]{0,2}[0-9]){5}",
        r"[0-9]{2,5}[ ().-]{1,2}[0-9]{2,5}[ ().-]{1,2}[0-9]{2,5}",
        r"[0-9]{3,5}\)?[ .-][0-9]{4,8}",
        CONTEXT_PREFILTER,
    ),
    READER.findings,
    caseless=True,
)
