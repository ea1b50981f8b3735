"""Capitalised names in prose, read where the words around them say a person is named;
and the cues after which a name is someone's own, so that its other mentions are seeded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import re2

from services.redaction.base import Detector, Finding
from services.redaction.prose_words import LOWER_LETTERS as _LOWER
from services.redaction.prose_words import NAME_PARTICLE as _PARTICLE
from services.redaction.prose_words import NOT_NAMES as _NOT_NAMES
from services.redaction.prose_words import UPPER_LETTERS as _UPPER
from services.redaction.prose_words import split_words as _words

_DASHES = "\u2013\u2014"
_NAME_WORD = (
    r"(?:(?:O'|D'|Mc|Mac)?[" + _UPPER + r"][" + _LOWER + r"]+(?:[-'][" + _UPPER + r"]?["
    + _LOWER + r"]+)?|[" + _UPPER + r"]\.)"
)  # fmt: skip
_NAME = _NAME_WORD + r"(?:[ \t](?:" + _PARTICLE + r"[ \t])?" + _NAME_WORD + r"){0,3}"

_INTRO = (
    r"my name is|my name's|name is|this is|i am|i'm|im|it's|it is|speaking with|you're"
    r" speaking to|you are speaking to|call me|known as|on behalf of|customer|client|user"
    r"|patient|passenger|cardholder|card holder|account holder|guest|member|recipient"
    r"|applicant|employee|contact|traveller|traveler|signed|sincerely|regards|kind regards"
    r"|best regards|best wishes|many thanks|thanks|thank you|cheers|dear|hi|hello|hey"
    r"|greetings|good morning|good afternoon|good evening|mr|mrs|ms|miss|mx|dr|prof|sir"
    r"|dame|lady|lord|herr|frau|mme|mlle|monsieur|madame|señor|señora|sr|sra|srta|sig"
    r"|sig\.ra|signor|signora|dott|ing|mnr|mevr|pan|pani|je m'appelle|me llamo|mi chiamo"
    r"|ich heiße|ich bin|name ist|je suis|soy|sono|meu nome é|mi nombre es"
)
_NAME_IN_PROSE = re2.compile(
    r"(?i:\b(?:" + _INTRO + r"))\b\.?,?(?:[ \t]+|[ \t]*\n[ \t]*)(?:[-" + _DASHES + r"][ \t]*)?"
    r"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Herr|Frau|Mme|Mlle|Sr|Sra|Sig)\.?[ \t]+)?"
    r"(" + _NAME + r")"
)


_TITLE_CUES = frozenset(
    _words(
        """
        mr mrs ms miss mx dr prof sir dame lady lord herr frau mme mlle monsieur madame señor
        señora sr sra srta sig signor signora dott ing mnr mevr pan pani
        """
    )
)


def _name_parts_ok(name: str) -> bool:
    words = [w for w in name.split() if len(w) > 1 or w.isalpha()]
    if not words:
        return False
    return words[0].casefold().rstrip(".,") not in _NOT_NAMES and not all(
        w.casefold().rstrip(".,") in _NOT_NAMES for w in words
    )


def person_names(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, name) of each name the words around it announce."""
    for m in _NAME_IN_PROSE.finditer(text):
        name = m.group(1)
        start = m.start(1)
        # Trailing words that are not names ("Jane Doe Order") are cut off.
        words = name.split()
        while words and words[-1].casefold().rstrip(".,") in _NOT_NAMES:
            words.pop()
        if not words:
            continue
        name = " ".join(words) if len(words) < len(name.split()) else name
        if name.endswith(".") and not re.fullmatch(r".*\b[A-Z]\.", name):
            name = name[:-1]
        if not _name_parts_ok(name):
            continue
        yield start, start + len(name), name


def _people(text: str) -> Iterator[Finding]:
    for start, end, name in person_names(text):
        yield Finding(start, end, "PERSON", " ".join(name.split()).casefold())


# The cues after which a name is someone's own, so that its other mentions in the trace are
# the same person's (the logic seeds them): introductions, the people a support trace is
# about, titles, salutations and sign-offs; not "known as", "member", "guest", "contact",
# "user", which in documents precede products and titles ("known as Xbox Game Studios").
_SEEDING_CUE = re.compile(
    r"(?i:\b(?:my name is|my name's|name is|this is|i am|i'm|im|it's|it is|speaking with|"
    r"speaking to|call me|on behalf of|customer|client|patient|passenger|cardholder"
    r"|card holder|account holder|applicant|traveller|traveler|recipient|signed|sincerely"
    r"|regards|dear|hi|hello|hey|greetings|thanks|thank you|many thanks|cheers|mr|mrs|ms"
    r"|miss|mx|dr|prof|herr|frau|mme|mlle|monsieur|madame|señor|señora|sr|sra|srta|sig"
    r"|signor|signora|dott|mnr|mevr|pan|pani|je m'appelle|me llamo|mi chiamo|ich heiße"
    r"|ich bin|name ist|je suis|soy|sono|meu nome é|mi nombre es))\b\.?,?[ \t]*\n?[ \t]*"
    r"(?:[-\u2013\u2014][ \t]*)?(?:(?i:mr|mrs|ms|miss|mx|dr|prof|herr|frau|mme|sr|sra|sig)"
    r"\.?[ \t]+)?$"
)


def seeds_other_mentions(text: str, start: int) -> bool:
    """Whether the name found at ``start`` came after a cue that says it is a person's own."""
    return _SEEDING_CUE.search(text, max(0, start - 40), start) is not None


# The prefilter is a necessary condition on ASCII bytes: a cue word.
_NAME_CUES_ASCII = (
    r"name|this is|i am|i'm|im |it's|it is|speaking|call me|known as|behalf|customer|client"
    r"|user|patient|passenger|holder|guest|member|recipient|applicant|employee|contact"
    r"|travel|signed|sincerely|regards|wishes|thank|cheers|best|dear|hi|hello|hey|greetings"
    r"|good |mr|mrs|ms|miss|mx|dr|prof|sir|dame|lady|lord|herr|frau|mme|mlle|monsieur"
    r"|madame|se\xc3\xb1or|sr|sig|dott|ing|mnr|mevr|pan|appelle|llamo|chiamo|hei\xc3\x9fe"
    r"|ich bin|je suis|soy|sono|nome"
)
PERSON_DETECTOR = Detector(
    "person_in_prose",
    (r"(?i:" + _NAME_CUES_ASCII + r")[^\n]{0,12}\s*[A-Z\xc3\xc4\xc5]",),
    _people,
    caseless=False,
)
