"""What a key in structured data says about its value.

Keys are split into words ("billingAddress" / "billing-address" / "billing.address" all read
as billing, address) and matched on whole words, so "max_tokens" is not a token and
"service.name" is not a person.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

# Linear: a single character class each, no nesting.
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")

Action = Literal["pii", "secret", "name", "bare_address", "keylike"]


@dataclass(frozen=True, slots=True)
class KeyRule:
    action: Action
    kind: str


# Cached: keys are schema, and a stream repeats its schema (every dict's keys are read again
# for each of its siblings looking for a name: a third of redaction's time on real runs).
@functools.lru_cache(maxsize=65_536)
def key_words(key: str) -> tuple[str, ...]:
    return tuple(w for w in _SPLIT.split(_CAMEL.sub(r"\1_\2", key).lower()) if w)


_PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "passphrase", "passcode"})
_SECRET_LAST = _PASSWORD_WORDS | {
    "secret", "token", "authorization", "cookie", "apikey", "credential", "credentials",
    "sessionid", "cvv", "cvc", "pin", "otp", "privatekey", "secretkey", "accesskey",
}  # fmt: skip
_SECRET_PAIRS = frozenset(
    {
        ("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"),
        ("session", "key"), ("signing", "key"), ("encryption", "key"), ("master", "key"),
        ("session", "token"),
    }
)  # fmt: skip

GIVEN_NAME_KEYS = frozenset({"firstname", "givenname"})
FAMILY_NAME_KEYS = frozenset({"lastname", "familyname", "surname"})
_PERSON_COMPACT = GIVEN_NAME_KEYS | FAMILY_NAME_KEYS | {
    "fullname", "middlename", "displayname", "username", "cardholder", "cardholdername",
    "accountholder", "accountholdername", "holdername", "legalname", "maidenname",
    "personname", "customername", "contactname", "patientname", "recipientname",
    "sendername",
    # A bare value under these keys is a person (link and baggage attributes carry them).
    "caller", "callee", "callername", "requester", "requestor", "requestedby", "assignee",
    "reporter", "submitter", "submittedby", "speaker", "createdby", "updatedby",
}  # fmt: skip
_PERSON_PREFIX = frozenset(
    {
        "first", "last", "full", "given", "family", "middle", "display", "customer", "contact",
        "user", "patient", "recipient", "sender", "cardholder", "holder", "legal", "maiden",
        "employee", "person", "client", "guest", "passenger", "member", "buyer", "seller",
        "beneficiary", "applicant", "traveler", "traveller", "billing", "shipping",
    }
)  # fmt: skip
# An object under one of these keys describes a person, so its plain "name" is theirs.
PERSON_PARENTS = _PERSON_PREFIX | {"profile", "author", "owner", "payer", "payee", "account"}

_ADDRESS_LAST = frozenset(
    {"street", "streetaddress", "postcode", "postalcode", "zipcode", "zip", "city",
     "address1", "address2", "line1", "line2", "addressline1", "addressline2"}
)  # fmt: skip
_ADDRESS_PAIRS = frozenset(
    {("postal", "code"), ("zip", "code"), ("street", "address"), ("address", "line1"),
     ("address", "line2"), ("line", "1"), ("line", "2"), ("address", "1"), ("address", "2")}
)  # fmt: skip
_ADDRESS_PREFIX = frozenset(
    {"street", "billing", "shipping", "home", "mailing", "postal", "delivery", "residential",
     "physical", "customer", "contact", "work", "user", "patient", "office"}
)  # fmt: skip

_PHONE_LAST = frozenset(
    {"phone", "phones", "mobile", "telephone", "tel", "fax", "msisdn", "phonenumber"}
)
_PHONE_PAIRS = frozenset(
    {("phone", "number"), ("mobile", "number"), ("cell", "number"), ("contact", "number"),
     ("fax", "number"), ("telephone", "number"), ("phone", "numbers")}
)  # fmt: skip
_CARD_COMPACT = frozenset(
    {"cardnumber", "creditcard", "creditcardnumber", "ccnumber", "pan", "cardno",
     "debitcard", "debitcardnumber"}
)  # fmt: skip
_DOB_COMPACT = frozenset({"dob", "birthdate", "dateofbirth", "birthday"})
_KEYLIKE_WORDS = frozenset(
    {"key", "token", "secret", "auth", "credential", "credentials", "signature", "sig",
     "bearer", "apikey", "hmac"}
)  # fmt: skip


# Cached for the same reason as key_words: the rule is a pure function of the key.
@functools.lru_cache(maxsize=65_536)
def classify_key(key: str) -> KeyRule | None:
    words = key_words(key)
    if not words:
        return None
    last, last2, compact = words[-1], words[-2:], "".join(words)
    if last in _SECRET_LAST or last2 in _SECRET_PAIRS or compact in {"session", "privatekey"}:
        password = last in _PASSWORD_WORDS or "password" in compact
        return KeyRule("secret", "PASSWORD" if password else "SECRET")
    if last in ("email", "emails") or last2 == ("email", "address") or compact == "emailaddress":
        return KeyRule("pii", "EMAIL")
    if last in _PHONE_LAST or last2 in _PHONE_PAIRS:
        return KeyRule("pii", "PHONE")
    if last == "ssn" or compact in ("socialsecuritynumber", "socialsecurity"):
        return KeyRule("pii", "SSN")
    if last == "iban":
        return KeyRule("pii", "IBAN")
    if compact in _CARD_COMPACT or last2 == ("card", "number"):
        return KeyRule("pii", "CARD")
    if compact in _DOB_COMPACT or last2 in {("birth", "date"), ("of", "birth")}:
        return KeyRule("pii", "DOB")
    if last in _ADDRESS_LAST or last2 in _ADDRESS_PAIRS:
        return KeyRule("pii", "ADDRESS")
    if last in ("address", "addresses"):
        if len(words) == 1:
            return KeyRule("bare_address", "ADDRESS")
        if words[-2] in _ADDRESS_PREFIX:
            return KeyRule("pii", "ADDRESS")
    if compact in _PERSON_COMPACT or (
        last == "name" and len(words) >= 2 and words[-2] in _PERSON_PREFIX
    ):
        return KeyRule("pii", "PERSON")
    if words == ("name",):
        return KeyRule("name", "PERSON")
    if any(w in _KEYLIKE_WORDS for w in words) or last.endswith("key"):
        return KeyRule("keylike", "SECRET")
    return None


_NAME_PARTICLES = frozenset(
    {"van", "von", "der", "den", "de", "la", "le", "da", "del", "di", "du", "bin", "al", "y"}
)


_NAME_PUNCTUATION = "'\u2019.-"  # O'Brien, O\u2019Brien, J., Smith-Jones


def person_shaped(value: str) -> bool:
    """'Jane Doe', "sean o'brien", 'Ludwig van Beethoven'; not 'search_orders' or 'v2'.
    Only asked where the surroundings already say the object describes a person."""
    tokens = value.split()
    if not 1 <= len(tokens) <= 4 or len(value) > 80:
        return False
    return all(
        t[0].isalpha() and all(c.isalpha() or c in _NAME_PUNCTUATION for c in t) for t in tokens
    )


def name_parts(value: str) -> list[str]:
    return [t.strip(".,") for t in value.split() if t not in _NAME_PARTICLES]
