"""A canary set built from someone else's knowledge of the formats: Faker's locale providers
(names, addresses, phone numbers and national identifiers of 14 locales), python-stdnum's
check-digit rules where Faker has no provider, set in the sentences real traffic carries them
in (a user introducing themselves, a tool error, a signature). Seeded: the same set every run.
No real personal data: every value is generated here, at run time."""

from __future__ import annotations

import base64
import random
import string
from dataclasses import dataclass

from faker import Faker

LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pl_PL", "pt_BR", "en_IN",
    "en_AU", "nl_NL", "en_CA", "sv_SE", "en_IE",
)  # fmt: skip
REGIONS = {loc: loc.split("_")[1] for loc in LOCALES}


@dataclass(frozen=True)
class Canary:
    kind: str  # the entity type planted
    value: str  # the planted value, exactly as it appears in ``text``
    text: str  # the sentence carrying it
    locale: str


_NAME_TEMPLATES = (
    "Hi, this is {v}. I need help with my order.",
    "My name is {v} and I was charged twice.",
    "Tool error: customer {v} not found in CRM",
    "Thanks for your help!\nRegards,\n{v}",
    "Hello {v}, your refund has been processed.",
    "Dear {v}, we could not deliver your parcel.",
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
