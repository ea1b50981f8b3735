"""A canary set built from someone else's knowledge of the formats: Faker's locale providers
(names, addresses with their postcodes, phone numbers and national identifiers of 18 locales),
python-stdnum's check-digit rules where Faker has no provider, set in the sentences real
traffic carries them in (a user introducing themselves, in capitals or not, a tool error, a
signature, a name with no cue word that the same trace gave away elsewhere, a postal address
over several lines). Seeded: the same set every run. No real personal data: every value is
generated here, at run time."""

from __future__ import annotations

import base64
import functools
import json
import random
import re
import string
from dataclasses import dataclass

from faker import Faker

LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pl_PL", "pt_BR", "en_IN",
    "en_AU", "nl_NL", "en_CA", "sv_SE", "en_IE", "en_NZ", "de_AT", "pt_PT", "da_DK",
)  # fmt: skip
REGIONS = {loc: loc.split("_")[1] for loc in LOCALES}


@dataclass(frozen=True)
class Canary:
    kind: str  # the entity type planted
    value: str  # the planted value, exactly as it appears in ``text``
    text: str  # the sentence carrying it
    locale: str
    # Other strings of the same trace (another span's input): a name given away there, with
    # a cue word, must be replaced in ``text`` too, where nothing announces it.
    context: tuple[str, ...] = ()


_NAME_TEMPLATES = (
    "Hi, this is {v}. I need help with my order.",
    "My name is {v} and I was charged twice.",
    "Tool error: customer {v} not found in CRM",
    "Thanks for your help!\nRegards,\n{v}",
    "Hello {v}, your refund has been processed.",
    "Dear {v}, we could not deliver your parcel.",
)
# Lower case, as people type in chat.
_LOWER_NAME_TEMPLATES = (
    "hi, i'm {v} and my parcel never arrived",
    "hello this is {v}, i need to change my booking",
    "my name is {v}",
)
# No cue word in the text itself; the trace names the person elsewhere (a tool result's
# prose, the user's introduction).
_MENTION_TEMPLATES = (
    ("{v} asked us to cancel the booking.", "Hi, this is {v}. Can you help?"),
    ("Refund approved; {v} will get an e-mail.", "Tool error: customer {v} not found"),
    ("Reservation for {v} confirmed, seat 14C.", "Dear {v}, your ticket is attached."),
    ("Escalated: {first} is still waiting for a callback.", "My name is {v}."),
)
_PHONE_TEMPLATES = (
    "You can call me on {v} after 5pm.",
    "My mobile is {v}.",
    "lookup_customer failed: no account for tel {v}",
    "Please ring me back at {v} tomorrow.",
)
_ADDRESS_TEMPLATES = (
    "I moved to {v} last month.",
    "Ship it to {v}, please.",
    "address_validation error: {v} is not deliverable",
)
_POSTAL_TEMPLATES = (
    "Please send the replacement to:\n{v}",
    "address_validation error: '{v}' is not deliverable",
)
_ID_LABELS = {
    "US_SSN": "my social security number is {v}",
    "UK_NINO": "My national insurance number is {v}.",
    "UK_NHS": "My NHS number is {v}.",
    "ES_NIF": "Mi DNI es {v}.",
    "ES_NIE": "My NIE is {v}.",
    "IT_FISCAL_CODE": "Il mio codice fiscale è {v}.",
    "FR_NIR": "Mon numéro de sécurité sociale est {v}.",
    "DE_TAX_ID": "Meine Steuer-ID ist {v}.",
    "PL_PESEL": "Mój PESEL to {v}.",
    "IN_PAN": "My PAN is {v}.",
    "IN_AADHAAR": "My Aadhaar number is {v}.",
    "AU_TFN": "My TFN is {v}.",
    "AU_MEDICARE": "Medicare card number {v}",
    "SG_NRIC": "NRIC {v} for the booking",
    "BR_CPF": "Meu CPF é {v}.",
    "US_PASSPORT": "passport number {v}",
    "US_DRIVER_LICENSE": "driver's license {v}",
    "CA_SIN": "my SIN is {v}",
    "NL_BSN": "mijn BSN is {v}",
    "SE_PERSONNUMMER": "mitt personnummer är {v}",
}


def _check_digit_ids(rng: random.Random) -> list[tuple[str, str]]:
    """Identifiers Faker has no provider for, made valid with the published check rules."""
    from stdnum.au import tfn
    from stdnum.de import idnr
    from stdnum.gb import nhs

    out: list[tuple[str, str]] = []
    while len([k for k, _ in out if k == "UK_NHS"]) < 4:
        digits = "".join(rng.choice(string.digits) for _ in range(10))
        if nhs.is_valid(digits):
            out.append(("UK_NHS", f"{digits[:3]} {digits[3:6]} {digits[6:]}"))
    while len([k for k, _ in out if k == "DE_TAX_ID"]) < 4:
        digits = str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(10))
        if idnr.is_valid(digits):
            out.append(("DE_TAX_ID", digits))
    while len([k for k, _ in out if k == "AU_TFN"]) < 4:
        digits = "".join(rng.choice(string.digits) for _ in range(9))
        if tfn.is_valid(digits):
            out.append(("AU_TFN", f"{digits[:3]} {digits[3:6]} {digits[6:]}"))
    for _ in range(4):
        # Medicare: weights 1,3,7,9 over eight digits, the ninth is the check digit.
        head = str(rng.randint(2, 6)) + "".join(rng.choice(string.digits) for _ in range(7))
        check = sum(int(d) * w for d, w in zip(head, (1, 3, 7, 9, 1, 3, 7, 9), strict=True)) % 10
        out.append(("AU_MEDICARE", f"{head[:4]} {head[4:]}{check} {rng.randint(1, 9)}"))
        # NRIC: weights 2,7,6,5,4,3,2, letters JZIHGFEDCBA for S.
        body = "".join(rng.choice(string.digits) for _ in range(7))
        total = sum(int(d) * w for d, w in zip(body, (2, 7, 6, 5, 4, 3, 2), strict=True))
        out.append(("SG_NRIC", f"S{body}{'JZIHGFEDCBA'[total % 11]}"))
        out.append(("US_PASSPORT", "".join(rng.choice(string.digits) for _ in range(9))))
        letter = rng.choice(string.ascii_uppercase)
        out.append(("US_DRIVER_LICENSE", letter + str(rng.randint(1000000, 9999999))))
    return out


def _secrets(rng: random.Random) -> list[tuple[str, str, str]]:
    alnum = string.ascii_letters + string.digits

    def r(alphabet: str, n: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    jwt = ".".join(
        base64.urlsafe_b64encode(p).rstrip(b"=").decode()
        for p in (b'{"alg":"HS256","typ":"JWT"}', f'{{"sub":"{r(alnum, 8)}"}}'.encode(), b"sig")
    )
    return [
        ("AWS_KEY", "AKIA" + r(string.ascii_uppercase + "234567", 16), "aws key {v} leaked"),
        ("GITHUB_TOKEN", "ghp" + "_" + r(alnum, 36), "export GH_TOKEN={v}"),
        ("OPENAI_KEY", "sk-" + "proj-" + r(alnum, 20) + "T3" + r(alnum, 20), "client(api={v})"),
        ("SLACK_TOKEN", "xox" + "b-1234567890-" + r(alnum, 24), "slack: {v}"),
        ("STRIPE_KEY", "sk_" + "live_" + r(alnum, 24), "stripe.api_key = '{v}'"),
        ("JWT", jwt, "Authorization: Bearer {v}"),
        ("PASSWORD", r(alnum, 14), "db password={v} rejected"),
        ("SECRET", r(alnum, 40), "the signing secret: {v}"),
    ]


def spellings(value: str) -> set[str]:
    """The ways a planted value can appear: whole, without blanks, each line of a postal
    address, JSON-escaped (as in a topic or a dump)."""
    forms = {value}
    compact = value.replace(" ", "")
    if len(compact) >= 6:
        forms.add(compact)
    forms.update(line for line in value.splitlines() if len(line) >= 4)
    forms.add(json.dumps(value)[1:-1])
    return {f for f in forms if len(f) >= 4}


_STRUCTURED_NUMBER = re.compile(
    r'(?<=":)\s*-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
    r"|(?:^|(?<=\t))-?[0-9]+(?:\.[0-9]+)?(?=\t|$)",
    re.MULTILINE,
)
# A UUID (a Kafka member id in a log line) is one token: its groups of four hex digits
# are not numbers, though a group may read as a postcode ("...-4165-8388-1cbb...").
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def found_in(value: str, text: str) -> str | None:
    """The first spelling of ``value`` found in ``text`` as a token of its own (not inside a
    longer run of letters and digits: a hash, a timestamp, another number, the decimals of
    a measured figure such as a z-score of -1.2588), or None."""
    if value.strip().isdigit():
        # A bare number (a postcode) is only a leak where text can carry it: not as a
        # measured value of a JSON member ("tokens": 1523) or a numeric column of a dump.
        text = _without_measured_numbers(text)
    for form in sorted(spellings(value), key=len, reverse=True):
        if _stands_alone(form, text):
            return form
    return None


@functools.lru_cache(maxsize=32)
def _without_measured_numbers(text: str) -> str:
    # One zone (a topic, the logs, a dump) runs to megabytes and is searched for every
    # planted number: rewriting it once per zone, not once per canary, keeps the sweep linear.
    return _UUID.sub(" ", _STRUCTURED_NUMBER.sub(" ", text))


@functools.lru_cache(maxsize=4096)
def _alone(form: str) -> re.Pattern[str]:
    return re.compile(
        r"(?<![0-9A-Za-z])(?<![0-9]\.)" + re.escape(form) + r"(?![0-9A-Za-z])(?!\.[0-9])"
    )


def _stands_alone(form: str, text: str) -> bool:
    # Only where the form occurs is its neighbourhood read: a regex search from the start
    # would try the lookbehinds at every position of a long text.
    pattern = _alone(form)
    at = text.find(form)
    while at != -1:
        if pattern.match(text, at):
            return True
        at = text.find(form, at + 1)
    return False


def canaries(seed: int = 12, per_locale: int = 4) -> list[Canary]:
    rng = random.Random(seed)
    out: list[Canary] = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed)
        for i in range(per_locale):
            name = fake.name()
            out.append(Canary("PERSON", name, _NAME_TEMPLATES[i % 6].format(v=name), locale))
            phone = fake.phone_number()
            out.append(Canary("PHONE", phone, _PHONE_TEMPLATES[i % 4].format(v=phone), locale))
            street = fake.street_address()
            out.append(
                Canary("ADDRESS", street, _ADDRESS_TEMPLATES[i % 3].format(v=street), locale)
            )
            email = fake.email()
            out.append(Canary("EMAIL", email, f"reach me at {email} please", locale))
            lower = fake.name().lower()
            template = _LOWER_NAME_TEMPLATES[i % len(_LOWER_NAME_TEMPLATES)]
            out.append(Canary("PERSON_LOWERCASE", lower, template.format(v=lower), locale))
            first = fake.first_name()
            full = f"{first} {fake.last_name()}"
            text, context = _MENTION_TEMPLATES[i % len(_MENTION_TEMPLATES)]
            value = first if "{first}" in text else full
            out.append(
                Canary(
                    "PERSON_MENTIONED_ELSEWHERE",
                    value,
                    text.format(v=full, first=first),
                    locale,
                    (context.format(v=full),),
                )
            )
        for _ in range(per_locale // 2):
            address, postcode = _postal_address(fake)
            template = _POSTAL_TEMPLATES[len(out) % len(_POSTAL_TEMPLATES)]
            text = template.format(v=address)
            lines = address.split("\n")
            out.append(Canary("ADDRESS_POSTAL", lines[0], text, locale))
            if len(lines) >= 3 and (postcode is None or postcode not in lines[1]):
                # "Flat 35s\nJones Walks\n...": the second line is the street (or the
                # neighbourhood under it), still part of the address.
                out.append(Canary("ADDRESS_POSTAL", lines[1], text, locale))
            if postcode and locale != "en_US":
                out.append(Canary("POSTCODE", postcode, text, locale))
        for _ in range(per_locale // 2):
            intl = _international_phone(fake)
            if intl is not None:
                out.append(Canary("PHONE_INTERNATIONAL", intl, f"WhatsApp: {intl}", locale))
                out.append(
                    Canary("PHONE_INTERNATIONAL", intl, f"the booking lists {intl} only", locale)
                )
        for kind, value in _faker_ids(fake, locale, per_locale):
            out.append(Canary(kind, value, _ID_LABELS[kind].format(v=value), locale))
        iban = fake.iban()
        out.append(Canary("IBAN", iban, f"refund to IBAN {iban}", locale))
    card_fake = Faker("en_US")
    card_fake.seed_instance(seed)
    for _ in range(8):
        card = card_fake.credit_card_number()
        out.append(Canary("CARD", card, f"card {card} was declined", "en_US"))
    for kind, value in _check_digit_ids(rng):
        out.append(Canary(kind, value, _ID_LABELS[kind].format(v=value), "-"))
    for _ in range(4):
        for kind, value, template in _secrets(rng):
            out.append(Canary(kind, value, template.format(v=value), "-"))
    return out


_POSTCODE_FORMATTERS = ("postcode", "postalcode", "zipcode", "postcode_in_state")


def _postal_address(fake: Faker) -> tuple[str, str | None]:
    """A whole postal address as the locale writes it (lines, postcode, town) and the postcode
    Faker put in it (caught on its way in: Faker's address formats call its postcode
    formatter)."""
    generator = fake._factories[0]
    seen: list[str] = []
    originals = {}
    for name in _POSTCODE_FORMATTERS:
        if hasattr(generator, name):
            original = getattr(generator, name)
            originals[name] = original

            def capture(*args: object, _original: object = original, **kwargs: object) -> str:
                value = str(_original(*args, **kwargs))  # type: ignore[operator]
                seen.append(value)
                return value

            generator.set_formatter(name, capture)
    try:
        address = fake.address()
    finally:
        for name, original in originals.items():
            generator.set_formatter(name, original)
    postcode = next((p for p in reversed(seen) if p in address), None)
    return address, postcode


def _international_phone(fake: Faker) -> str | None:
    """A number the locale's own formats write with its country code (+44 ..., 0049 ...)."""
    for _ in range(40):
        phone = str(fake.phone_number())
        if phone.startswith(("+", "(+")):
            return phone
    return None


def _faker_ids(fake: Faker, locale: str, n: int) -> list[tuple[str, str]]:
    providers = {
        "en_US": (("US_SSN", "ssn"),),
        "en_GB": (("UK_NINO", "ssn"),),
        "es_ES": (("ES_NIF", "nif"), ("ES_NIE", "nie")),
        "it_IT": (("IT_FISCAL_CODE", "ssn"),),
        "fr_FR": (("FR_NIR", "ssn"),),
        "pl_PL": (("PL_PESEL", "pesel"),),
        "pt_BR": (("BR_CPF", "cpf"),),
        "en_IN": (("IN_PAN", "pan"), ("IN_AADHAAR", "aadhaar_id")),
        "en_CA": (("CA_SIN", "ssn"),),
        "nl_NL": (("NL_BSN", "ssn"),),
        "sv_SE": (("SE_PERSONNUMMER", "ssn"),),
    }
    out = []
    for kind, method in providers.get(locale, ()):
        for _ in range(n):
            out.append((kind, str(getattr(fake, method)())))
    return out
