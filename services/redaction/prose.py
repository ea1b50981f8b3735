"""Names and street addresses in free text, with no keyed field to give them away.

Names are read where the words around them say a person is named, the way people and tools
write it: after "my name is", "this is", "I am", "speaking", "customer", "user", "patient",
"passenger", "cardholder"; after a title (Mr, Mrs, Ms, Dr, Prof, Herr, Frau, Mme, Sr, Sra,
Sig ...); after a salutation ("Dear", "Hi", "Hello") and in a sign-off ("Regards,", "Thanks,",
"Best,", "Cheers," and the name on the next line). What follows must be one to four
capitalised words (particles such as "van", "de", "O'" allowed) that are not common words of
the domain ("Customer Service", "Hi there", "this is Order ..."); that list is the only
vocabulary here, so the check is cheap and predictable.

Addresses are read by their shape per country family: a house number and a street type
(English: "129 Baker Street", "58683 Mitchell Parks Suite 907", "Flat 6, 129 ..."), a street
type and a number (German, Dutch, Scandinavian compounds: "Lindenstraße 12", "Kimbaan 3",
"Kyrkvägen 7"; Romance: "Calle Mayor 5", "Via Roma, 12", "Rua das Flores, 32", "85, rue de
Lelièvre"; Polish "ul. Poziomkowa 65/70"), and postcodes in their national formats (UK, CA, NL,
PL, BR, JP, US ZIP after a state, five-digit codes before a town name).

The readers live in names.py, lowercase_names.py and addresses.py, the vocabulary they share
in prose_words.py.
"""

from __future__ import annotations

from services.redaction.addresses import ADDRESS_DETECTORS
from services.redaction.lowercase_names import LOWERCASE_PERSON_DETECTOR
from services.redaction.names import PERSON_DETECTOR, person_names, seeds_other_mentions

# Re-exported: the detectors and the logic import these from here.
__all__ = [
    "ADDRESS_DETECTORS",
    "LOWERCASE_PERSON_DETECTOR",
    "PERSON_DETECTOR",
    "person_names",
    "seeds_other_mentions",
]
