"""Text detectors: each is a cheap prefilter plus an exact, validating extractor.

A detector's ``prefilters`` are *necessary conditions*: every string in which its extractor
can find something must match at least one of them. The scanner compiles all prefilters of all
detectors into one multi-pattern database, so a string without any hit costs one scan, and an
extractor only ever runs on strings where its prefilter fired.

ReDoS: no detector's pattern can take super-linear time. Prefilters run on Hyperscan (or an RE2
set): automata. Extraction patterns with an unbounded repeat (emails, keys, tokens, key=value)
run on RE2: automata again. Python's ``re`` is used only where every repeat is bounded by a
small constant (phones, cards, IBANs, SSNs, IPs: backtracking from one start position is then
bounded too, so a scan is linear), on inputs of bounded length (the 40 characters before a
match), or for single-class patterns anchored at a position. The reason for ``re`` at all is
cost: RE2's Python wrapper spends ~10 µs per match, and timestamps and ids make the phone and
IP extractors run on most strings. The Python validators only loop over a match.

The detectors live by kind: credentials.py, personal_data.py (with identifiers.py and
phones.py) and prose.py; this module orders them into the default set.
"""

from __future__ import annotations

from services.redaction.base import PLACEHOLDER, Detector, Finding, is_placeholder
from services.redaction.credentials import CREDENTIAL_DETECTORS, secret_like_value
from services.redaction.personal_data import PII_DETECTORS, ip_kept
from services.redaction.phones import normalise_phone
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

# Prose detectors come last: a finding of a specific detector wins a tie.
PROSE_DETECTORS: tuple[Detector, ...] = (
    *ADDRESS_DETECTORS,
    PERSON_DETECTOR,
    LOWERCASE_PERSON_DETECTOR,
)

DEFAULT_DETECTORS: tuple[Detector, ...] = CREDENTIAL_DETECTORS + PII_DETECTORS + PROSE_DETECTORS
