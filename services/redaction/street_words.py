"""Street vocabularies per language, as data: the words that say "this is a street" and where
they stand. Written from the postal authorities' published lists (USPS Publication 28
appendix C1, Royal Mail and Australia Post / AS 4590 thoroughfare types, Canada Post, New
Zealand Post), each country's street-type abbreviations as its post offices print them, and
the compound endings of German, Dutch, Scandinavian and Finnish street names. Not taken from
Faker, whose generated addresses are the canary set this is measured on.

"Via" (Italian, Spanish) is read only capitalised: in English prose "via" is a preposition.

Three positions:
- SUFFIX_WORDS follow the street's name, as a separate word: "129 Baker Street", "Gopal Marg".
- PREFIX_WORDS come before it: "Rua das Flores, 32", "rue Xavier Marchal", "ul. Polna 5".
- COMPOUND_ENDINGS end a one-word street name: "Lindenstraße 12", "Nørrestræde 1".

UNIT_WORDS introduce a flat, suite or house number before the street line ("Flat 6,",
"Apt. 647", "H.No. 97,", "Level 3\\n").

The words themselves are in data/street_words.toml, with the sources of each list.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files

_DATA = tomllib.loads(
    (files("services.redaction") / "data" / "street_words.toml").read_text(encoding="utf-8")
)

SUFFIX_WORDS: dict[str, tuple[str, ...]] = {
    language: tuple(words) for language, words in _DATA["suffix_words"].items()
}
PREFIX_WORDS: dict[str, tuple[str, ...]] = {
    language: tuple(words) for language, words in _DATA["prefix_words"].items()
}
COMPOUND_ENDINGS: tuple[str, ...] = tuple(_DATA["compound_endings"])
UNIT_WORDS: tuple[str, ...] = tuple(_DATA["unit_words"])
