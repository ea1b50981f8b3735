"""Whether libphonenumber's matcher could find a valid phone number in a text at all: a
necessary condition, cheap to test, that lets the second pass skip the matcher on most text.

The matcher is pure Python and the second pass's costliest step: it tries to parse every
digit group in a text, twice (once per region), and text written by machines (scores,
versions, ids) is full of digit groups. But it only ever reads a candidate made of digits,
the punctuation numbers are written with and leading brackets or plus signs (its
``_PATTERN``; an extension after the number adds no digits to it), and it keeps only
numbers that are valid, which need a minimum of digits:

- written with a plus sign: the shortest country code plus that country's shortest
  national number (six digits today: +43 or +49 and four);
- written without one, read in a default region: that region's shortest national number,
  or an international prefix (one digit at least) before the shortest of the above.

So a text in which no run of those characters holds that many digits cannot hold a number
the matcher would report, and the second pass need not run it. The characters and the
minimums are read from the installed phonenumbers, so a new release moves them with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumbermatcher import _OPENING_PARENS
from phonenumbers.phonenumberutil import _PLUS_CHARS, _VALID_PUNCTUATION

_DIGIT = re.compile(r"\d")


def _shortest_national(metadata: PhoneMetadata | None) -> int | None:
    """The shortest national number a region has (a number of each type is one of the
    general description's lengths); None when it has no numbers."""
    if metadata is None or metadata.general_desc is None:
        return None
    lengths = [n for n in metadata.general_desc.possible_length if n > 0]
    return min(lengths) if lengths else None


def _everywhere() -> list[tuple[int, int]]:
    """(country code, shortest national number) of every region and non-geographic entity."""
    out: list[tuple[int, int]] = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region)
        shortest = _shortest_national(metadata)
        if metadata is not None and metadata.country_code is not None and shortest is not None:
            out.append((metadata.country_code, shortest))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        shortest = _shortest_national(PhoneMetadata.metadata_for_nongeo_region(code))
        if shortest is not None:
            out.append((code, shortest))
    return out


@dataclass(frozen=True)
class DigitFloors:
    with_plus: int
    without_plus: int


def digit_floors(regions: Iterable[str]) -> DigitFloors:
    """The fewest digits a valid number has, written with a plus sign or read in one of
    ``regions``."""
    everywhere = _everywhere()
    with_plus = min(len(str(code)) + shortest for code, shortest in everywhere)
    codes = {phonenumbers.country_code_for_region(r) for r in regions}
    sharing = [shortest for code, shortest in everywhere if code in codes]
    return DigitFloors(with_plus, min([*sharing, 1 + with_plus]))


class PhoneReach:
    def __init__(self, regions: Iterable[str]) -> None:
        self.floors = digit_floors(regions)
        # The matcher's own character classes, written into a class as it writes them (they
        # hold ranges, such as the dashes U+2010 to U+2015: escaping them would drop the
        # dashes inside), and case-insensitive as its patterns are ("x" is punctuation).
        # The punctuation first: it begins with a "-" that only the head of a class reads
        # as itself.
        written_with = _VALID_PUNCTUATION + _OPENING_PARENS + _PLUS_CHARS
        self._run = re.compile(rf"[{written_with}\d]+", re.IGNORECASE)
        self._plus = re.compile(f"[{_PLUS_CHARS}]")

    def may_hold_number(self, text: str) -> bool:
        floors = self.floors
        for run in self._run.finditer(text):
            chars = run.group()
            if len(chars) < floors.with_plus:
                continue
            digits = len(_DIGIT.findall(chars))
            if digits >= floors.without_plus or (
                digits >= floors.with_plus and self._plus.search(chars)
            ):
                return True
        return False
