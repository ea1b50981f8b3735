"""National and financial identifiers, each found by its format and confirmed by its check
digits (python-stdnum's validators, or the published algorithm where stdnum has none), with a
context word required where the format alone is weak (a bare run of digits).

Strong formats, no context needed: UK NINO, ES NIF/NIE, IT codice fiscale, FR NIR, PL PESEL,
IN PAN, SG NRIC/FIN, BR CPF (dotted), CA SIN and AU Medicare (grouped), IN Aadhaar (grouped,
or Verhoeff-valid), SE personnummer, CH AHV, US ITIN, MAC addresses, Bitcoin addresses.
Weak formats, with their own words before them: UK NHS, DE tax id, AU TFN, NL BSN, US
passport and driver's licence, ABA routing and bank account numbers. And any id-shaped token
(letters and at least four digits) right after a label that says it identifies a person
("passport no.", "national id", "Steuer-ID", "DNI", "member id", ...) fails toward redaction
as ``NATIONAL_ID``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from stdnum import bitcoin
from stdnum.au import tfn
from stdnum.br import cpf
from stdnum.ch import ssn as ahv
from stdnum.de import idnr
from stdnum.es import nie, nif
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.se import personnummer
from stdnum.us import rtn

from services.redaction.base import Detector, Finding, glued, luhn_ok


def _nric_ok(value: str) -> bool:
    """Singapore NRIC/FIN check letter (weights 2,7,6,5,4,3,2; offsets by prefix)."""
    value = value.upper()
    prefix, digits, check = value[0], value[1:8], value[8]
    total = sum(int(d) * w for d, w in zip(digits, (2, 7, 6, 5, 4, 3, 2), strict=True))
    if prefix in "TG":
        total += 4
    elif prefix == "M":
        total += 3
    letters = "JZIHGFEDCBA" if prefix in "ST" else "XWUTRQPNMLK"
    if prefix == "M":
        letters = "KLJNPQRTUWX"
    return letters[total % 11] == check


def _medicare_ok(digits: str) -> bool:
    """Australian Medicare: first digit 2-6, check digit over the first eight."""
    if len(digits) not in (10, 11) or digits[0] not in "23456":
        return False
    weights = (1, 3, 7, 9, 1, 3, 7, 9)
    return sum(int(d) * w for d, w in zip(digits[:8], weights, strict=True)) % 10 == int(digits[8])


def _nino_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if compact[:2] in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        # ZZ is the administrative placeholder prefix, still written down as a person's.
        return compact[:2] == "ZZ"
    return compact[0] not in "DFIQUV" and compact[1] not in "DFIOQUV"


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _never(_: str) -> bool:
    return False


@dataclass(frozen=True)
class IdRule:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    # Words one of which must come shortly before a match; None: the format is enough.
    context: re.Pattern[str] | None = None
    # When set, a match that fails ``valid`` is still redacted after a context word.
    lenient_in_context: bool = False


_CONTEXT_WORDS: dict[str, str] = {}  # a context pattern's source -> its words (prefilters)


def _ctx(words: str) -> re.Pattern[str]:
    pattern = _ctx_pattern(words)
    _CONTEXT_WORDS[pattern.pattern] = words
    return pattern


def _ctx_pattern(words: str) -> re.Pattern[str]:
    return re.compile(
        r"(?i)\b(?:" + words + r")\b[^A-Za-z0-9\n]{0,6}(?:[a-z.#]+[^A-Za-z0-9\n]{1,3}){0,3}$"
    )


_C = re.compile
RULES: tuple[IdRule, ...] = (
    IdRule("UK_NINO", _C(r"\b[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b"), _nino_ok),
    IdRule("UK_NINO", _C(r"\b[A-Z]{2} [0-9]{2} [0-9]{2} [0-9]{2} [A-Z]\b"), lambda v: True),
    IdRule("ES_NIF", _C(r"\b[0-9]{8}-?[A-Z]\b"), nif.is_valid),
    IdRule("ES_NIE", _C(r"\b[XYZ]-?[0-9]{7}-?[A-Z]\b"), nie.is_valid),
    IdRule(
        "IT_FISCAL_CODE",
        _C(r"\b[A-Z]{6}[0-9LMNP-V]{2}[A-EHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]\b"),
        codicefiscale.is_valid,
    ),
    IdRule(
        "FR_NIR",
        _C(r"\b[12] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b"),
        lambda v: nir.is_valid(v.replace(" ", "")),
    ),
    IdRule("PL_PESEL", _C(r"\b[0-9]{11}\b"), pesel.is_valid),
    IdRule("IN_PAN", _C(r"\b[A-Z]{3}[ABCFGHJLPT][A-Z][0-9]{4}[A-Z]\b"), pan.is_valid),
    IdRule("SG_NRIC", _C(r"\b[STFGM][0-9]{7}[A-Z]\b", re.IGNORECASE), _nric_ok),
    IdRule("BR_CPF", _C(r"\b[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}\b"), cpf.is_valid),
    IdRule("BR_CPF", _C(r"\b[0-9]{11}\b"), cpf.is_valid, _ctx(r"cpf|cadastro de pessoas"), True),
    IdRule(
        "CA_SIN",
        _C(r"\b[0-9]{3}[ -][0-9]{3}[ -][0-9]{3}\b"),
        lambda v: luhn_ok(_digits(v)),
        _ctx(r"sin|social insurance|nas|assurance sociale"),
        True,
    ),
    IdRule(
        "IN_AADHAAR",
        # Grouped as printed on the card; a bare twelve-digit run needs its word (below).
        _C(r"\b[2-9][0-9]{3} [0-9]{4} [0-9]{4}\b"),
        lambda v: aadhaar.is_valid(v.replace(" ", "")),
        None,
    ),
    IdRule(
        "IN_AADHAAR",
        _C(r"\b[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}\b"),
        _never,
        _ctx(r"aadhaar|aadhar|uidai|uid"),
        True,
    ),
    IdRule(
        "AU_MEDICARE",
        _C(r"\b[2-6][0-9]{3} ?[0-9]{5} ?[0-9](?:[ /-]?[0-9])?\b"),
        lambda v: " " in v and _medicare_ok(_digits(v)),
        None,
    ),
    IdRule(
        "AU_MEDICARE",
        _C(r"\b[0-9]{4} ?[0-9]{5} ?[0-9](?:[ /-]?[0-9])?\b"),
        lambda v: _medicare_ok(_digits(v)),
        _ctx(r"medicare"),
        True,
    ),
    IdRule(
        "AU_TFN",
        _C(r"\b[0-9]{3} ?[0-9]{3} ?[0-9]{2,3}\b"),
        lambda v: tfn.is_valid(v.replace(" ", "")),
        _ctx(r"tfn|tax file(?: number)?"),
        True,
    ),
    IdRule(
        "UK_NHS",
        _C(r"\b[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}\b"),
        lambda v: nhs.is_valid(_digits(v)),
        _ctx(r"nhs|national health(?: service)?|health service|patient"),
        True,
    ),
    IdRule(
        "DE_TAX_ID",
        _C(r"\b[0-9]{2} ?[0-9]{3} ?[0-9]{3} ?[0-9]{3}\b"),
        lambda v: idnr.is_valid(_digits(v)),
        _ctx(
            r"steuer-?id|steueridentifikationsnummer|steuer-identifikationsnummer|idnr"
            r"|tax id|tax identification(?: number)?|identifikationsnummer|tin"
        ),
        True,
    ),
    IdRule("SE_PERSONNUMMER", _C(r"\b(?:19|20)?[0-9]{6}[-+][0-9]{4}\b"), personnummer.is_valid),
    IdRule("CH_AHV", _C(r"\b756\.[0-9]{4}\.[0-9]{4}\.[0-9]{2}\b"), ahv.is_valid),
    IdRule(
        "NL_BSN",
        _C(r"\b[0-9]{4}\.?[0-9]{2}\.?[0-9]{3}\b|\b[0-9]{9}\b"),
        bsn.is_valid,
        _ctx(r"bsn|burgerservicenummer|sofinummer"),
        True,
    ),
    IdRule(
        "US_ITIN",
        _C(r"\b9[0-9]{2}-(?:5[0-9]|6[0-5]|7[0-9]|8[0-8]|9[0-24-9])-[0-9]{4}\b"),
        lambda v: True,
    ),
    IdRule(
        "US_BANK_ROUTING",
        _C(r"\b[0-9]{9}\b"),
        rtn.is_valid,
        _ctx(r"aba|routing(?: number)?|routing no|transit number"),
        True,
    ),
    IdRule(
        "MAC",
        _C(r"\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b"),
        lambda v: v[2] == v[-3] and v.lower() not in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"),
    ),
    IdRule(
        "CRYPTO_WALLET",
        _C(r"\b(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|bc1[02-9ac-hj-np-z]{11,71})\b"),
        bitcoin.is_valid,
    ),
)

# Labels after which an id-shaped token is someone's identifier, whatever its format.
_LABELS_ANY_CASE = (
    r"passport(?: (?:no|number|#))?|driver'?s? licen[cs]e(?: (?:no|number|#))?"
    r"|driving licen[cs]e(?: (?:no|number))?|licen[cs]e (?:no|number|#)|dl (?:no|number|#)"
    r"|national (?:id|identity|insurance)(?: (?:no|number|card))?|id (?:no|number|card)"
    r"|identity (?:card|number|document)|tax (?:id|number|file number|reference)"
    r"|taxpayer id|social security(?: no| number)?|social insurance(?: number)?"
    r"|member(?:ship)? (?:id|no|number)|insurance (?:id|no|number)|policy (?:no|number)"
    r"|medicare(?: (?:no|number))?|nhs(?: (?:no|number))?|pesel|cpf|aadhaar|aadhar|nric"
    r"|codice fiscale|steuer-?id|steuernummer|personalausweis(?:nummer)?|reisepass(?:nummer)?"
    r"|pasaporte|passeport|passaporto|personnummer|burgerservicenummer|bsn|nino|ssn|itin"
    r"|tfn|voter id|(?:my|your|his|her|their) id|account (?:no|number|#)|bank account|iban"
    r"|routing number|npi|mbi"
)
_LABELS_UPPER = r"PAN|FIN|SIN|TIN|DNI|NIE|NIF|NIR|CF|DL"
_LABEL = re.compile(
    r"(?:(?i:\b(?:" + _LABELS_ANY_CASE + r"))|\b(?:" + _LABELS_UPPER + r"))"
    r"\b\.?(?: is| was| of)?[ \t]*[:#=]?[ \t]*(?:is[ \t]+)?"
)
_ID_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|[ .-](?=[A-Za-z0-9])){4,24}")
_MIN_ID_DIGITS = 4

LABEL_PREFILTER = r"(?:" + _LABELS_ANY_CASE + r"|" + _LABELS_UPPER + r")[^0-9\n]{0,16}[0-9]"


def _labelled_ids(text: str) -> Iterator[Finding]:
    for m in _LABEL.finditer(text):
        token = _ID_TOKEN.match(text, m.end())
        if token is None:
            continue
        value = token.group().rstrip(" .-")
        # "passport ABC1234 5 days" must not take "5": cut the token at its last space
        # before a piece with no digit.
        pieces = value.split(" ")
        while len(pieces) > 1 and not any(c.isdigit() for c in pieces[-1]):
            pieces.pop()
        value = " ".join(pieces)
        if sum(c.isdigit() for c in value) < _MIN_ID_DIGITS:
            continue
        start = token.start()
        yield Finding(start, start + len(value), "NATIONAL_ID", value.replace(" ", "").upper())


def _rule_findings(rule: IdRule, text: str) -> Iterator[Finding]:
    for m in rule.pattern.finditer(text):
        start, end = m.span()
        if glued(text, start, end, joiners="-./"):
            continue
        value = m.group()
        in_context = rule.context is not None and (
            rule.context.search(text, max(0, start - 48), start) is not None
        )
        if rule.context is not None and not in_context:
            continue
        if rule.valid(value) or (in_context and rule.lenient_in_context):
            yield Finding(start, end, rule.kind, value.replace(" ", "").upper())


def _detector(index: int, rule: IdRule) -> Detector:
    """One detector per rule, so the prefilter scan says which rules can match at all: a
    rule's own pattern, or, where it needs a context word, the word (hot path: most strings
    with a long number are ids, and only the rules that fired run)."""
    if rule.context is not None:
        words = _CONTEXT_WORDS[rule.context.pattern].replace("-?", "-?")
        prefilter = r"(?:" + words + r")"
        caseless = True
    else:
        prefilter = rule.pattern.pattern
        caseless = bool(rule.pattern.flags & re.IGNORECASE)

    def extract(text: str) -> Iterator[Finding]:
        return _rule_findings(rule, text)

    return Detector(f"id_{rule.kind.lower()}_{index}", (prefilter,), extract, caseless)


IDENTIFIER_DETECTORS: tuple[Detector, ...] = (
    *(_detector(i, rule) for i, rule in enumerate(RULES)),
    Detector("labelled_identifier", (LABEL_PREFILTER,), _labelled_ids, caseless=True),
)
