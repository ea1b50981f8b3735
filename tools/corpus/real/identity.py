"""Each tau2 run gets a customer of its own.

In tau2-bench every run of a task is played by the same simulated user: the same name, email,
user id, address, orders and payment methods. Production never offers that (a recurring
failure comes from different people with different records), so before a run is emitted its
identity values are collected and replaced, consistently across every message, tool argument
and tool result of that run, by values drawn from Faker seeded by the run id, keeping each
value's format (``#W`` + 7 digits, ``first_last_NNNN``, ``paypal_`` + 7 digits, ...).

What counts as identity: names, user ids, emails, zip codes, street addresses, cities, order
ids (with or without ``#W``), payment method ids, card last four digits and tracking numbers.
What does not: product names, product and item ids, prices, options, states and countries:
those are the task.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

ORDER_RE = re.compile(r"(?<![A-Za-z0-9])#?W(\d{7})(?!\d)")
PAYMENT_RE = re.compile(r"\b(paypal|credit_card|gift_card)_(\d{7})\b")
USER_ID_RE = re.compile(r"\b([a-z]+)_([a-z]+)_(\d{4})\b")
EMAIL_RE = re.compile(r"[A-Za-z0-9._+-]+@example\.com\b")
_SUITE_RE = re.compile(r"^(\D*)(\d+)(.*)$")
_DIGITS_RE = re.compile(r"\d")
_PAYMENT_PREFIXES = ("paypal_", "credit_card_", "gift_card_")


@dataclass
class Originals:
    """The identity values seen in one run, as they appear there."""

    people: set[tuple[str, str]] = field(default_factory=set)  # (First, Last)
    user_ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    zips: set[str] = field(default_factory=set)
    streets: set[str] = field(default_factory=set)
    suites: set[str] = field(default_factory=set)
    cities: set[str] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)  # the 7 digits
    payments: set[str] = field(default_factory=set)
    last_fours: set[str] = field(default_factory=set)
    tracking: set[str] = field(default_factory=set)

    def add_json(self, value: Any) -> None:
        """Identity values held in structured data under the keys tau2's retail tools use."""
        if isinstance(value, list):
            for item in value:
                self.add_json(item)
            return
        if not isinstance(value, dict):
            if isinstance(value, str):
                self.add_text(value)
            return
        first, last = value.get("first_name"), value.get("last_name")
        if isinstance(first, str) and isinstance(last, str) and first and last:
            self.people.add((first, last))
        for key, item in value.items():
            if key == "user_id" and isinstance(item, str) and USER_ID_RE.fullmatch(item):
                self.user_ids.add(item)
            elif key == "email" and isinstance(item, str) and item:
                self.emails.add(item)
            elif key == "zip" and isinstance(item, str) and item.strip():
                self.zips.add(item.strip())
            elif key == "address1" and isinstance(item, str) and item.strip():
                self.streets.add(item.strip())
            elif key == "address2" and isinstance(item, str) and _SUITE_RE.match(item.strip()):
                self.suites.add(item.strip())
            elif key == "city" and isinstance(item, str) and item.strip():
                self.cities.add(item.strip())
            elif key == "last_four" and isinstance(item, str) and item.isdigit():
                self.last_fours.add(item)
            elif key == "tracking_id":
                for number in item if isinstance(item, list) else [item]:
                    if isinstance(number, str) and number.isdigit():
                        self.tracking.add(number)
            elif key == "payment_methods" and isinstance(item, dict):
                self.payments.update(k for k in item if k.startswith(_PAYMENT_PREFIXES))
            if isinstance(item, dict | list):
                self.add_json(item)
            elif isinstance(item, str):
                self.add_text(item)

    def add_text(self, text: str) -> None:
        """Identity values recognisable by their format alone."""
        self.orders.update(m.group(1) for m in ORDER_RE.finditer(text))
        self.payments.update(m.group(0) for m in PAYMENT_RE.finditer(text))
        for m in USER_ID_RE.finditer(text):
            if not m.group(0).startswith(_PAYMENT_PREFIXES):
                self.user_ids.add(m.group(0))
        self.emails.update(m.group(0) for m in EMAIL_RE.finditer(text))

    def values(self) -> set[str]:
        people = {f"{first} {last}" for first, last in self.people}
        return (
            people
            | self.user_ids
            | self.emails
            | self.zips
            | self.streets
            | self.suites
            | (self.cities | self.orders | self.payments | self.last_fours | self.tracking)
            | {f"W{digits}" for digits in self.orders}
        )

    def finish(self) -> None:
        """People named only through a user id (``mia_garcia_4516``) are people too."""
        known = {(f.lower(), ln.lower()) for f, ln in self.people}
        for user_id in self.user_ids:
            first, last, _ = user_id.split("_")
            if (first, last) not in known:
                self.people.add((first.capitalize(), last.capitalize()))
                known.add((first, last))


def seeded_faker(seed: int, run_id: str) -> Faker:
    fake = Faker("en_US")
    digest = hashlib.sha256(f"{seed}:{run_id}".encode()).digest()
    fake.seed_instance(int.from_bytes(digest[:8], "big"))
    return fake


class Pseudonyms:
    """Original identity value -> synthetic value, consistent within one run."""

    def __init__(self, originals: Originals, fake: Faker, taken: set[str] | None = None) -> None:
        """``taken``: values no synthetic value may equal, shared by the runs of one task and
        updated here, so that no two runs of a task ever share a customer value."""
        self._fake = fake
        self.mapping: dict[str, str] = {}
        # Original value -> what it is (person, user_id, email, order, payment, street, ...).
        self.kinds: dict[str, str] = {}
        self._taken: set[str] = taken if taken is not None else set()
        self._taken.update(originals.values())
        names: dict[tuple[str, str], tuple[str, str]] = {}
        for first, last in sorted(originals.people):
            key = (first.lower(), last.lower())
            if key in names:
                continue
            new = self._person(first, last)
            names[key] = new
            self._put("person", f"{first} {last}", f"{new[0]} {new[1]}")
            self._put(
                "person_lowercase",
                f"{first.lower()} {last.lower()}",
                f"{new[0].lower()} {new[1].lower()}",
            )
        # Single names after full ones, each mapped once (the first person holding it wins).
        for (first, last), (new_first, new_last) in sorted(names.items()):
            self._put("first_name", first.capitalize(), new_first, overwrite=False)
            self._put("last_name", last.capitalize(), new_last, overwrite=False)
        self._names = names
        for user_id in sorted(originals.user_ids):
            first, last, _ = user_id.split("_")
            new_first, new_last = names.get((first, last), (fake.first_name(), fake.last_name()))
            self._put(
                "user_id", user_id, f"{new_first.lower()}_{new_last.lower()}_{self._digits(4)}"
            )
        for email in sorted(originals.emails):
            self._put("email", email, self._email(email))
        for zip_code in sorted(originals.zips):
            self._put("zip", zip_code, self._fresh(lambda: fake.numerify("#####")))
        for street in sorted(originals.streets):
            self._put(
                "street",
                street,
                self._fresh(lambda: f"{fake.numerify('%##')} {fake.street_name()}"),
            )
        for suite in sorted(originals.suites):
            match = _SUITE_RE.match(suite)
            assert match is not None
            number = self._digits(len(match.group(2)))
            self._put("suite", suite, f"{match.group(1)}{number}{match.group(3)}")
        for city in sorted(originals.cities):
            self._put("city", city, self._fresh(fake.city))
        for digits in sorted(originals.orders):
            new_digits = self._digits(7)
            self._put("order", f"W{digits}", f"W{new_digits}")
            self._put("order_digits", digits, new_digits)
        for payment in sorted(originals.payments):
            prefix = payment.rsplit("_", 1)[0]
            self._put("payment", payment, f"{prefix}_{self._digits(7)}")
        for last_four in sorted(originals.last_fours):
            self._put("last_four", last_four, self._digits(len(last_four)))
        for number in sorted(originals.tracking):
            self._put("tracking", number, self._digits(len(number)))
        self._pattern = _alternation(self.mapping)

    def _put(self, kind: str, original: str, new: str, *, overwrite: bool = True) -> None:
        if not original or (not overwrite and original in self.mapping):
            return
        self.mapping[original] = new
        self.kinds[original] = kind
        self._taken.add(new)

    def _fresh(self, make: Any) -> str:
        for _ in range(50):
            value = str(make())
            if value not in self._taken and value not in self.mapping:
                return value
        raise RuntimeError("could not draw a fresh synthetic value")

    def _digits(self, n: int) -> str:
        return self._fresh(lambda: self._fake.numerify("%" + "#" * (n - 1)))

    def _person(self, first: str, last: str) -> tuple[str, str]:
        for _ in range(50):
            new_first, new_last = self._fake.first_name(), self._fake.last_name()
            if (
                all(n.isalpha() and n.isascii() for n in (new_first, new_last))
                and new_first.lower() != first.lower()
                and new_last.lower() != last.lower()
                and f"{new_first} {new_last}" not in self._taken
            ):
                return new_first, new_last
        raise RuntimeError("could not draw a synthetic name")

    def _email(self, email: str) -> str:
        local, domain = email.split("@", 1)
        parts: dict[str, str] = {}
        for (first, last), (new_first, new_last) in self._names.items():
            parts.setdefault(first, new_first.lower())
            parts.setdefault(last, new_last.lower())
        new_local = local.lower()
        if parts:
            # One pass, longest name first: "amelia" must not be read as "li" inside it.
            names = re.compile("|".join(map(re.escape, sorted(parts, key=lambda k: (-len(k), k)))))
            new_local, replaced = names.subn(lambda m: parts[m.group(0)], new_local)
        else:
            replaced = 0
        if not replaced:
            new_local = re.sub(
                r"[a-z]+", lambda _: self._fake.last_name().lower(), new_local, count=1
            )
        return self._fresh(
            lambda: (
                _DIGITS_RE.sub(lambda _: str(self._fake.random_digit()), new_local) + f"@{domain}"
            )
        )

    def apply(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: self.mapping[m.group(0)], text)

    def apply_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.apply(value)
        if isinstance(value, list):
            return [self.apply_json(v) for v in value]
        if isinstance(value, dict):
            return {self.apply(str(k)): self.apply_json(v) for k, v in value.items()}
        return value


def _alternation(mapping: dict[str, str]) -> re.Pattern[str] | None:
    if not mapping:
        return None
    # Longest first, so a user id wins over the first name it starts with; a value is replaced
    # only as a whole token (not inside an item id, a word, or a hyphenated word like Li-ion).
    keys = sorted(mapping, key=lambda k: (-len(k), k))
    return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, keys)) + r")(?![\w-])")


def strings_of(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_of(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_of(item)


# Values that identify a customer on their own; zips, cities, single names, card digits and
# suite numbers may recur by chance.
DISTINCTIVE_KINDS = frozenset({"person", "user_id", "email", "order", "payment", "street"})


def distinctive(mapping: dict[str, str], kinds: dict[str, str]) -> Iterable[tuple[str, str]]:
    """The (original, synthetic) pairs of distinctive kinds."""
    for original, new in mapping.items():
        if kinds.get(original) in DISTINCTIVE_KINDS:
            yield original, new
