"""Personal values in the formats real traffic carries them, generated from Faker's locale
providers (someone else's knowledge of the formats), are all replaced; the ids, dates and
numbers that make a fixture reproducible are not."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.redaction_canaries import LOCALES, canaries
from services.redaction.logic import redact_trace
from tests.logic.test_redaction import span, trace_of

pytestmark = pytest.mark.logic

# Kinds whose recall on the canary set is below 100 %: the misses are listed in BENCHMARKS.md.
RECALL_FLOOR = {"ADDRESS": 0.85}


def redact_text(text: str) -> str:
    clean, _ = redact_trace(trace_of(span(0, input=text)))
    return clean.spans[0].input or ""


def test_the_canary_set_spans_at_least_twelve_regions_and_every_entity_type() -> None:
    items = canaries()
    assert len(LOCALES) >= 12
    assert {c.kind for c in items} >= {
        "PERSON", "PHONE", "ADDRESS", "EMAIL", "IBAN", "CARD", "US_SSN", "UK_NINO", "UK_NHS",
        "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "FR_NIR", "DE_TAX_ID", "PL_PESEL", "IN_PAN",
        "IN_AADHAAR", "AU_TFN", "AU_MEDICARE", "SG_NRIC", "BR_CPF", "US_PASSPORT",
        "US_DRIVER_LICENSE",
    }  # fmt: skip


def test_every_generated_personal_value_and_credential_is_replaced() -> None:
    planted: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for item in canaries():
        planted[item.kind] += 1
        if item.value in redact_text(item.text):
            missed[item.kind] += 1
    recall = {kind: 1 - missed[kind] / n for kind, n in planted.items()}
    short = {k: r for k, r in recall.items() if r < RECALL_FLOOR.get(k, 1.0)}
    assert short == {}


@pytest.mark.parametrize(
    "text",
    [
        "Hello, Amelia Okafor here. My number is 07700 900461. I moved to Flat 6, 129 Baker "
        "Street, London NW1 6XE.",
        "customer Jonas Brandt at 42 Elm Street (tel 030 563 83626) not found",
        "Hi, this is Hans Müller, Lindenstraße 12, 10115 Berlin.",
        "Je m'appelle Claire Dubois, 85, rue de Lelièvre, 06415 Allain-sur-Delorme",
        "Thanks for the help!\nRegards,\nPriya Sharma",
    ],
)
def test_names_streets_and_phones_in_prose_are_replaced_without_a_keyed_field(
    text: str,
) -> None:
    out = redact_text(text)
    for value in ("Okafor", "Baker", "07700", "Jonas", "Elm", "83626", "Müller", "Linden",
                  "Dubois", "Lelièvre", "Priya"):  # fmt: skip
        assert value not in out


@pytest.mark.parametrize(
    "text",
    [
        "order #W2378156 item 1008292230 product 6086499569 ships 2024-05-01",
        "flight BA0287 departs 01.02.2024 at 10:30, gate B12, seat 14C",
        "SKU-20394-1182 costs $54.85 (qty 3), tracking 580826001577",
        "this is Order #W123 for Customer Service; the tool call returned 200",
        "Water Bottle (750ml, glass, black), Mechanical Keyboard (80% size)",
    ],
)
def test_ids_flight_numbers_skus_and_dates_survive(text: str) -> None:
    assert redact_text(text) == text


def test_a_phone_word_makes_any_phone_length_digit_run_a_phone() -> None:
    assert redact_text("text me on 4930 5561 229") == "text me on <PHONE_1>"
    assert redact_text("ref 4930 5561 229") == "ref 4930 5561 229"


def test_the_same_phone_written_two_ways_is_one_placeholder() -> None:
    out = redact_text("call +49 30 56383626 or 030 563 83626")
    assert out.count("<PHONE_1>") == 2, out
