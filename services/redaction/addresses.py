"""Street addresses and postcodes in prose, read by their shape per country family."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

import re2

from services.redaction import street_words
from services.redaction.base import Detector, Finding
from services.redaction.prose_words import FUNCTION_EN as _FUNCTION_EN
from services.redaction.prose_words import LOWER_LETTERS as _LOWER
from services.redaction.prose_words import NAME_PARTICLES as _LOWER_PARTICLES
from services.redaction.prose_words import NOT_NAMES as _NOT_NAMES
from services.redaction.prose_words import RIGHT_SINGLE_QUOTE as _RSQ
from services.redaction.prose_words import UPPER_LETTERS as _UPPER
from services.redaction.prose_words import utf8_prefilter as _utf8

_NAMEW = r"[" + _UPPER + r"][" + _UPPER + _LOWER + r"'" + _RSQ + r".-]*"  # McLean-Hickey, O'Mahoney
_NAMEW_OR_NUM = r"(?:[0-9]{1,3}(?i:st|nd|rd|th)\b|" + _NAMEW + r")"  # "5th Avenue", "Baker"
_NUM = r"[0-9]{1,6}[A-Za-z]?(?:[ \t]?[-/][ \t]?[0-9]{1,5}[A-Za-z]?)?"
_YEAR_AT_END = re.compile(r"(?:^|[ \t])(?:19|20)[0-9]{2}$")
_LINE_BREAK = r"(?:,?[ \t]+|,?[ \t]*\n[ \t]*)"  # the street may start on the next line
_ROMANCE_PARTICLES = (
    r"de|del|de la|de las|de los|dos|das|da|do|di|della|dei|delle|degli|des|du|de l'|d'|la|le"
    r"|les|al|el"
)


def _alternation(words: list[str] | tuple[str, ...]) -> str:
    """Longest first, so that "avenue" is tried before "av"; escaped."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


_SUFFIXES = _alternation([w for ws in street_words.SUFFIX_WORDS.values() for w in ws])
_PREFIXES = _alternation([w for ws in street_words.PREFIX_WORDS.values() for w in ws])
_SEPARATE_TYPES = _alternation(street_words.PREFIX_WORDS["nl_de_sep"])
_COMPOUNDS = _alternation(street_words.COMPOUND_ENDINGS)
_UNITS = _alternation(street_words.UNIT_WORDS)
_UNITS_ALPHA = _alternation([w for w in street_words.UNIT_WORDS if w[0].isalpha()])
# A unit before the street line: "Flat 6, ", "Apt. 647 ", "Level 3\n", "H.No. 803\n".
_UNIT_BEFORE = (
    r"(?:(?:\b(?i:" + _UNITS_ALPHA + r")|#)[ \t]*(?:[0-9A-Za-z][0-9A-Za-z/-]{0,5}"
    + _LINE_BREAK + r")?)?"
)  # fmt: skip
_UNIT_AFTER = (
    r"(?i:,?[ \t]+(?:apt\.?|apartment|suite|ste\.?|unit|flat|floor|fl\.?|room|rm\.?|#)[ \t]*"
    r"[0-9A-Za-z-]{1,6})?"
)
# Number first, the street type after the name: English-speaking countries, India.
_NUMBER_FIRST = (
    _UNIT_BEFORE + r"\b" + _NUM + _LINE_BREAK + r"(?:[NSEW]\.?[ \t]+)?" + _NAMEW_OR_NUM
    + r"(?:[ \t]+" + _NAMEW + r"){0,3}[ \t]+(?i:(?:" + _SUFFIXES + r"))\b\.?" + _UNIT_AFTER
)  # fmt: skip
# The type first, then the name, then the number (Romance and Slavic languages); "s/n" is
# "no number".
_PREFIX_LIST = [w for ws in street_words.PREFIX_WORDS.values() for w in ws]
_PREFIXES_GLUED = _alternation([w for w in _PREFIX_LIST if w.endswith((".", "/"))])
_PREFIXES_SPACED = _alternation([w for w in _PREFIX_LIST if not w.endswith((".", "/"))])
_TYPE_FIRST = (
    r"\b(?:(?i:" + _PREFIXES_GLUED + r")[ \t]*|(?:(?i:" + _PREFIXES_SPACED + r")|V[ií]a)"
    r"[ \t]+)(?:(?:" + _ROMANCE_PARTICLES + r")[ \t]*){0,2}" + _NAMEW + r"(?:[ \t]+(?:(?:"
    + _ROMANCE_PARTICLES + r")[ \t]+)?" + _NAMEW + r"){0,4},?[ \t]*(?:n[º°o.]?[ \t]*)?(?:"
    + _NUM + r"|[sS]/[nN]|s\.n\.)\b"
)  # fmt: skip
# Types unambiguous enough to mark a street with no number: "rue Xavier Marchal",
# "Praça de Carvalho". Capitalised (except French "rue", always lower case), then names.
_TYPE_FIRST_BARE = (
    r"(?:\b(?:rue|Rue|Rua|Praça|Avenida|Avda\.|Calle|Carrer|Passeig|Piazza|Piazzale|Viale"
    r"|avenue|boulevard|allée|impasse|chemin|quai"
    r"|Corso|Vicolo|Travessa|Alameda|Ladeira|Boulevard|Chemin|Impasse|Allée|Faubourg|Quai"
    r"|Ulica|Aleja)|(?<![A-Za-z])(?:ul\.|al\.))[ \t]*(?:(?:" + _ROMANCE_PARTICLES
    + r")[ \t]*)?" + _NAMEW + r"(?:[ \t]+(?:(?:" + _ROMANCE_PARTICLES + r")[ \t]+)?"
    + _NAMEW + r"){0,3}"
)  # fmt: skip
# Number first, then a French/Belgian type: "85, rue de Lelièvre", "12 bis avenue Foch".
_FRENCH_NUMBER_FIRST = (
    r"\b[0-9]{1,4}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?i:rue|avenue|av\.|boulevard|bd|place|chemin"
    r"|allée|impasse|quai|route|cours|square|passage|faubourg|voie|sentier|ruelle)[ \t]+(?:(?:"
    + _ROMANCE_PARTICLES + r")[ \t]*)?" + _NAMEW + r"(?:[ \t]+" + _NAMEW + r"){0,3}"
)  # fmt: skip
# One-word names ending in a street type, then a number: "Lindenstraße 12", "Nørrestræde 1",
# "Corneliadreef 16", with up to two names before ("Arne Jacobsensstræde 5").
# RE2's \b is ASCII only: a street starting with "Ø" or "Ä" after a line break or a quote
# is matched with the character before it, stripped again by the extractor.
_LEAD = r"(?:^|\b|[ \t\n,;:'\"(/])"
_COMPOUND_ADDRESS = (
    _LEAD + r"(?:[" + _UPPER + r"][" + _LOWER + r"]+[ \t-]){0,2}[" + _UPPER + r"][" + _LOWER
    + r"-]*(?i:" + _COMPOUNDS + r")[ \t]+" + _NUM
)  # fmt: skip
_COMPOUND_SEPARATE = (
    r"\b(?:[" + _UPPER + r"][" + _LOWER + r"-]+[ \t-]){1,3}(?i:" + _SEPARATE_TYPES + r")[ \t]+"
    + _NUM
)  # fmt: skip
_POSTCODES = (
    # UK
    r"(?<!#)\b(?:GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?[0-9][0-9A-HJKMNPR-Y]? ?[0-9][ABD-HJLNP-UW-Z]{2})\b"
    # Canada
    r"|\b[ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z] ?[0-9][ABCEGHJ-NPRSTV-Z][0-9]\b"
    # Ireland (Eircode): a routing key (a letter and two digits, or D6W), four characters.
    r"|\b(?:[AC-FHKNPRTV-Y][0-9]{2}|D6W) ?(?=[0-9]{0,3}[AC-FHKNPRTV-Y])[0-9AC-FHKNPRTV-Y]{4}\b"
)
_POSTCODE_BEFORE_TOWN = (
    # DE/FR/ES/IT/SE/FI "95748 Kulmbach", NL "7999 PK", PL "02-790 Lubin", BR "85957-489",
    # PT "1452-308 Elvas", CZ "507 48", CH/AT/AU/DK four digits before a town, after a comma
    # or a line break.
    r"(?:(?<=[^0-9],)|(?<=\n)|(?<=[^0-9], )|(?<=\n ))[ \t]*"
    r"(?:[0-9]{5}|[0-9]{4}(?:[ \t]?[A-Z]{2}\b)?|[0-9]{2}-[0-9]{3}|[0-9]{5}-[0-9]{3}"
    r"|[0-9]{4}-[0-9]{3}|[0-9]{3}[ \t][0-9]{2})[ \t]+["
    + _UPPER + r"][" + _LOWER + r"]+(?:-[" + _UPPER + _LOWER + r"]+)*"
)  # fmt: skip
# India Post PIN after the town: "Hapur-163726", ", Orai 828807".
_PIN_AFTER_TOWN = (
    r"(?:(?<=[^0-9],)|(?<=\n)|(?<=[^0-9], )|(?<=\n ))[ \t]*[" + _UPPER + r"][" + _LOWER
    + r"]+(?:[ \t]+[" + _UPPER + r"][" + _LOWER + r"]+)?(?:[ \t]?-[ \t]?|[ \t]+)[1-9][0-9]{5}\b"
)  # fmt: skip
# USPS military mail: the unit or ship line and "APO AE 09012" / "FPO AP 96601-1234".
_MILITARY = (
    r"(?:\b(?:(?:USNS|USNV|USS|USCGC)[ \t]+[A-Z][A-Za-z'-]+(?:[ \t]+[A-Z][A-Za-z'-]+)?|(?:PSC|CMR"
    r"|Unit)[ \t]+[0-9]{1,5}(?:,?[ \t]+Box[ \t]+[0-9]{1,5})?)(?:,?[ \t]*\n?[ \t]*))?\b(?:APO|FPO"
    r"|DPO)[ \t]+(?:AA|AE|AP)[ \t]+[0-9]{5}(?:-[0-9]{4})?\b"
)
_US_STATE_ZIP = (
    r"\b(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI"
    r"|S[CD]|T[NX]|UT|V[AT]|W[AIVY]|NSW|VIC|QLD|WA|SA|TAS|ACT|NT|ON|QC|BC|AB|MB|SK|NS|NB|NL"
    r"|PE)\.?,?[ \t]+[0-9]{4,5}(?:-[0-9]{4})?\b"
)

# The rest of a postal address after its street line: up to three more segments (a
# neighbourhood, a town, a postcode), each on its own line or after a comma, made of
# capitalised words, particles and codes; taken through the last one holding a digit.
_SEGMENT_TOKEN = (
    r"(?:[" + _UPPER + r"0-9][^\s,;:!?\"'<>()\[\]{}]{0,24}|(?:" + _ROMANCE_PARTICLES
    + r"|am|im|an|der|sur|upon|on|en|el)(?=[ \t])|/|-)"
)  # fmt: skip
_SEGMENT = re.compile(
    r"(?:,[ \t]*\n?|[ \t]*\n)[ \t]*(" + _SEGMENT_TOKEN + r"(?:[ \t]+" + _SEGMENT_TOKEN
    + r"){0,5})(?=[ \t]*(?:[,\n.;:!?)\]'\"]|$))"
)  # fmt: skip
_MAX_SEGMENTS = 3


_UNIT_TAIL = re.compile(r"[ \t]+(?i:" + _UNITS + r")[ \t]*[0-9A-Za-z-]{1,6}\b")


# A delivery route or box on the next segment: NZ/AU "RD 8", US/CA "RR 2", "PO Box 12",
# French "BP 45", Portuguese/Spanish "CP 123", "Apartado 7", German "Postfach 10".
_ROUTE_TAIL = re.compile(
    r"(?:,[ \t]*\n?|[ \t]*\n)[ \t]*(?:RD|R\.D\.|RR|R\.R\.|PO Box|P\.O\. Box|Box|BP|CP"
    r"|Caixa Postal|Apartado|Postfach)[ \t]*[0-9]{1,6}\b"
)


def _address_rest(text: str, end: int) -> int:
    unit = _UNIT_TAIL.match(text, end)  # "... 9 Puerta 0", "..., Apt. 4"
    best = pos = unit.end() if unit is not None else end
    route = _ROUTE_TAIL.match(text, pos)  # "...Square\nRD 8 last month"
    if route is not None:
        best = pos = route.end()
    for _ in range(_MAX_SEGMENTS):
        m = _SEGMENT.match(text, pos)
        if m is None:
            break
        words = m.group(1).split()
        common = [w[0].isupper() and w.casefold() in _NOT_NAMES for w in words]
        holds_digit = any(ch.isdigit() for ch in m.group(1))
        if all(common) or (common[0] and holds_digit):
            break
        pos = m.end()
        if any(ch.isdigit() for ch in m.group(1)):
            best = pos
    return best


_LEADING = " \t,\n;:'\"(/"


_BLOCK_TOKEN = re.compile(_SEGMENT_TOKEN)
_BLOCK_OPENERS = ":'\"(["
_MAX_BACK_SEGMENTS = 3


def _address_start(text: str, start: int) -> int:
    """A postcode line's address upwards: up to three earlier segments (a street, a house
    number, a locality: "537\nAgarwal\nHapur-163726", "'057\nVarughese, Orai 828807"),
    each after a line break or a comma, made of capitalised words, particles and codes."""
    for _ in range(_MAX_BACK_SEGMENTS):
        head = text[:start].rstrip(" \t")
        if not head.endswith((",", "\n")):
            break
        head = head[:-1].rstrip(" \t")
        cut = max(head.rfind(c) for c in ",\n" + _BLOCK_OPENERS)
        segment = head[cut + 1 :]
        words = segment.split()
        if (
            not words
            or len(segment) > 50
            or len(words) > 6
            or not all(_BLOCK_TOKEN.fullmatch(w) or w in _LOWER_PARTICLES for w in words)
            or all(w.casefold() in _NOT_NAMES or w in _LOWER_PARTICLES for w in words)
            or (words[0].casefold() in _NOT_NAMES and any(c.isdigit() for c in segment))
        ):
            break
        start = cut + 1 + (len(segment) - len(segment.lstrip()))
        if cut >= 0 and head[cut] in _BLOCK_OPENERS:
            break
    return start


def _address_extractor(
    pattern: str | Callable[[str], Any],
    *,
    need_digit: bool = True,
    rest: bool = True,
    back: bool = False,
    linear: bool = False,
    no_year: bool = False,
) -> Callable[[str], Iterator[Finding]]:
    """``linear``: the pattern has no lookaround and runs on RE2 (the hot path: these run on
    most strings with a number); ``no_year``: a match ending in a year ("Spring 2024") is
    not an address. ``pattern`` may also be a function of the text giving the compiled
    pattern to run on it (None: nothing to find)."""
    compiled: Any = None
    if isinstance(pattern, str):
        compiled = re2.compile(pattern) if linear else re.compile(pattern)
    pattern_for = None if isinstance(pattern, str) else pattern

    def extract(text: str) -> Iterator[Finding]:
        regex = compiled if pattern_for is None else pattern_for(text)
        if regex is None:
            return
        for m in regex.finditer(text):
            raw = m.group()
            value = raw.lstrip(_LEADING).rstrip(" \t,\n")
            if not value or (need_digit and not any(c.isdigit() for c in value)):
                continue
            if no_year and _YEAR_AT_END.search(value):
                continue
            start = m.start() + (len(raw) - len(raw.lstrip(_LEADING)))
            end = start + len(value)
            if rest:
                end = _address_rest(text, end)
            if back:
                start = _address_start(text, start)
            canonical = " ".join(text[start:end].split()).casefold()
            yield Finding(start, end, "ADDRESS", canonical)

    return extract


# The postcode families, each with a necessary condition of its own: a literal piece of its
# pattern that every match contains (the lookbehind's comma or line break included). A
# family whose condition is nowhere in the text cannot match anywhere in it, and dropping an
# alternative that never matches from a top-level alternation leaves every match of the
# others as it was; most strings reaching this detector (ids such as "cus_5MZ7NJB0") leave
# only the UK/Canada/Ireland family, and the Python regex runs at twice the speed.
_POSTCODE_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (_MILITARY, re.compile(r"PO")),
    (_POSTCODES, re.compile(r"[A-Z][A-Z ]?[0-9]")),
    (_US_STATE_ZIP, re.compile(r"[A-Z]\.?,?[ \t]+[0-9]{4}")),
    (_POSTCODE_BEFORE_TOWN, re.compile(r"[,\n][ \t]*[0-9]{2}")),
    (_PIN_AFTER_TOWN, re.compile(r"[1-9][0-9]{5}")),
)


@functools.lru_cache(maxsize=32)
def _postcode_alternation(present: tuple[bool, ...]) -> re.Pattern[str] | None:
    families = [p for (p, _), keep in zip(_POSTCODE_FAMILIES, present, strict=True) if keep]
    return re.compile("|".join("(?:" + p + ")" for p in families)) if families else None


def _postcode_pattern(text: str) -> re.Pattern[str] | None:
    return _postcode_alternation(
        tuple(needed.search(text) is not None for _, needed in _POSTCODE_FAMILIES)
    )


# A house number with its building or plot ("16/96", "12/345B"), a comma, then the street or
# locality by name alone, as Indian addresses write it ("16/96, Singh", "4/12, Gandhi
# Nagar"). A day and month ("12/05, Paris") and a score ("4/5, Great") are not.
# A labelled house, plot or door number ("H.No. 18, Bhasin Zila") needs no slash.
_HOUSE_SLASH = re.compile(
    r"(?<![0-9/.-])\b(?:((?i:H\.?[ \t]?No|House[ \t]No|Plot[ \t]No|Door[ \t]No|Flat[ \t]No)\.?"
    r"[ \t]*)?([0-9]{1,4})(?:/([0-9]{1,4}))?)[A-Za-z]?(?:,[ \t]*\n?|[ \t]*\n)[ \t]*(" + _NAMEW
    + r"(?:[ \t]+"
    + _NAMEW + r"){0,3})"
)  # fmt: skip
# A post-office box is a postal address of its own: "PO Box 307", "Private Bag 9", "Postfach
# 1234", "Caixa Postal 55", "Apartado de Correos 12", "GPO Box 4".
_PO_BOX = (
    r"\b(?:(?:G\.?P\.?O\.?|P\.?[ \t]?O\.?)[ \t]*Box|Private[ \t]Bag|Postfach|Caixa[ \t]Postal"
    r"|Apartado(?:[ \t]de[ \t]Correos)?|Postbus|Boîte[ \t]Postale|Casella[ \t]Postale)[ \t]*"
    r"[0-9]{1,6}\b"
)


_NOT_STREET_NAMES = _FUNCTION_EN | _NOT_NAMES


def _house_number_slash(text: str) -> Iterator[Finding]:
    for m in _HOUSE_SLASH.finditer(text):
        labelled = m.group(1) is not None
        if m.group(3) is None and not labelled:
            continue
        if not labelled:
            a, b = int(m.group(2)), int(m.group(3))
            if (a <= 31 and 1 <= b <= 12) or (a <= 12 and 1 <= b <= 31) or b == 0:
                continue
        words = m.group(4).split()
        if words[0].casefold().rstrip(".") in _NOT_STREET_NAMES:
            continue
        start = m.start()
        end = _address_rest(text, m.end())
        yield Finding(start, end, "ADDRESS", " ".join(text[start:end].split()).casefold())


# The prefilters are necessary conditions on ASCII bytes: a digit next to a word for
# addresses and postcodes (almost every string with a number, so the address extractor
# must stay one regex pass).
_FRENCH_WORDS = (
    r"rue|avenue|av\.|boulevard|bd|place|chemin|all\xc3\xa9e|impasse|quai|route|cours|square"
    r"|passage|faubourg|voie|sentier|ruelle"
)
# One detector per address family, each behind a prefilter of its own necessary words or
# shapes: only the families whose prefilter fired run their (Python) pattern.
ADDRESS_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "address_street_number_first",
        (_utf8(r"[0-9][^\n]*\n?[^\n]*\b(?:" + _SUFFIXES + r")\b"),),
        _address_extractor(_NUMBER_FIRST, linear=True),
        caseless=True,
    ),
    Detector(
        "address_compound_street",
        (
            _utf8(r"(?:" + _COMPOUNDS + r")[ \t]+[0-9]"),
            _utf8(r"(?:" + _SEPARATE_TYPES + r")[ \t]+[0-9]"),
        ),
        _address_extractor(
            "(?:" + _COMPOUND_SEPARATE + ")|(?:" + _COMPOUND_ADDRESS + ")",
            linear=True,
            no_year=True,
        ),
        caseless=True,
    ),
    Detector(
        "address_street_type_first",
        (
            _utf8(r"(?:" + _PREFIXES + r"|via|v\xc3\xada)[ \t]*[^\n]*[0-9]"),
            # "sem número": "R. de Tavares, S/N", "Calle Mayor s/n"
            _utf8(r"(?:" + _PREFIXES + r"|via|v\xc3\xada)[ \t]*[^\n]*(?:s/n|s\.n\.)"),
        ),
        _address_extractor(_TYPE_FIRST, linear=True, need_digit=False),
        caseless=True,
    ),
    Detector(
        "address_house_number_slash",
        (
            r"[0-9]/[0-9]{1,4}[A-Za-z]?,[ \t]*[A-Z\xc3-\xc5]",
            r"(?i:h\.?[ \t]?no|house[ \t]no|plot[ \t]no|door[ \t]no|flat[ \t]no)\.?[ \t]*[0-9]",
        ),
        _house_number_slash,
    ),
    Detector(
        "address_po_box",
        (r"(?i:box|private bag|postfach|caixa postal|apartado|postbus|postale)[ \t]*[0-9]",),
        _address_extractor(_PO_BOX),
    ),
    Detector(
        "address_street_type_first_no_number",
        (
            _utf8(
                r"(?:rue|Rue|Rua|Pra\xc3\xa7a|Avenida|Avda\.|Calle|Carrer|Passeig|Piazza|Viale"
                r"|avenue|boulevard|all\xc3\xa9e|impasse|chemin|quai"
                r"|Corso|Vicolo|Travessa|Alameda|Ladeira|Boulevard|Chemin|Impasse|All\xc3\xa9e"
                r"|Faubourg|Quai|Ulica|Aleja|ul\.|al\.)[ \t]+(?:[a-z']{1,3}[ \t]+)?"
                r"(?:[A-Z]|\xc3[\x80-\x9e]|\xc4|\xc5)"
            ),
        ),
        _address_extractor(_TYPE_FIRST_BARE, need_digit=False),
    ),
    Detector(
        "address_french",
        (_utf8(r"[0-9][ \t,]{1,3}(?:bis |ter )?(?:" + _FRENCH_WORDS + r")[ \t]"),),
        _address_extractor(_FRENCH_NUMBER_FIRST),
        caseless=True,
    ),
    Detector(
        "postcode",
        (
            r"[A-Z][A-Z0-9]{1,3} ?[0-9][A-Z]{2}",
            r"[A-Z][0-9][A-Z] ?[0-9][A-Z][0-9]",
            r"[A-Z][0-9]{2} ?[0-9A-Z]{4}",
            r"D6W ?[0-9A-Z]{4}",
            r"[A-Z]{2,3}\.?,?[ \t]+[0-9]{4,5}",
            r"[,\n][ \t]*[0-9]{2,5}",
            r"[a-z][ \t-][1-9][0-9]{5}",
            r"[AFD]PO[ \t]+A[AEP][ \t]+[0-9]",
        ),
        _address_extractor(_postcode_pattern, rest=False, back=True),
    ),
)
