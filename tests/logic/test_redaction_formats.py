"""Personal values in the formats real traffic carries them, generated from Faker's locale
providers (someone else's knowledge of the formats), are all replaced; the ids, dates and
numbers that make a fixture reproducible are not."""

from __future__ import annotations

import pytest

from services.redaction.logic import redact_trace
from tests.logic.test_redaction import span, trace_of
from tools.bench.redaction_canaries import LOCALES, canaries, found_in

pytestmark = pytest.mark.logic


def redact_text(text: str, *context: str) -> str:
    """``text`` redacted as the first span of a trace whose other spans carry ``context``."""
    spans = [span(0, input=text)] + [span(i + 1, input=c) for i, c in enumerate(context)]
    clean, _ = redact_trace(trace_of(*spans))
    return clean.spans[0].input or ""


def test_the_canary_set_spans_at_least_twelve_regions_and_every_entity_type() -> None:
    items = canaries()
    assert len(LOCALES) >= 12
    assert {c.kind for c in items} >= {
        "PERSON", "PHONE", "ADDRESS", "EMAIL", "IBAN", "CARD", "US_SSN", "UK_NINO", "UK_NHS",
        "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "FR_NIR", "DE_TAX_ID", "PL_PESEL", "IN_PAN",
        "IN_AADHAAR", "AU_TFN", "AU_MEDICARE", "SG_NRIC", "BR_CPF", "US_PASSPORT",
        "US_DRIVER_LICENSE", "PERSON_LOWERCASE", "PERSON_MENTIONED_ELSEWHERE",
        "PHONE_INTERNATIONAL", "ADDRESS_POSTAL", "POSTCODE", "AWS_KEY", "GITHUB_TOKEN",
        "OPENAI_KEY", "SLACK_TOKEN", "STRIPE_KEY", "JWT", "PASSWORD", "SECRET",
    }  # fmt: skip


def test_every_generated_personal_value_and_credential_is_replaced_whole_and_line_by_line() -> None:
    missed = [
        (item.kind, item.value)
        for item in canaries()
        if found_in(item.value, redact_text(item.text, *item.context))
    ]
    assert missed == []


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


def test_a_name_read_in_prose_is_replaced_wherever_the_trace_mentions_it() -> None:
    spans = (
        span(0, input="Hi, this is Wilhelmina Stroud-Okafor, order #W2378156 is late."),
        span(1, output="Stroud-Okafor's order ships tomorrow; Wilhelmina will get an e-mail."),
        span(2, tool_result='{"note": "wilhelmina stroud-okafor called twice"}'),
    )
    clean, _ = redact_trace(trace_of(*spans))
    dumped = clean.model_dump_json()
    assert "Wilhelmina" not in dumped and "Stroud-Okafor" not in dumped
    assert "wilhelmina" not in dumped
    assert "#W2378156" in dumped
    assert clean.spans[0].input == "Hi, this is <PERSON_1>, order #W2378156 is late."


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("hi, i'm zofia wrzesniewska and my parcel never arrived", "zofia wrzesniewska"),
        ("my name is john smith", "john smith"),
        ("hello this is tadeusz, i need to change my booking", "tadeusz"),
        # Common English words as names, after a strong cue.
        ("hey, i'm grace hill and the app keeps crashing", "grace hill"),
        ("i am bill cooper, account holder", "bill cooper"),
        ("yes this is rose marsh", "rose marsh"),
        ("i\u2019m frank", "frank"),
        ("call me amber", "amber"),
        ("i'm dr. olive brook and i need a refund", "olive brook"),
        ("i'm louis de la cruz and", "de la cruz"),
        ("thanks for sorting it\ncheers,\nhunter stone", "hunter stone"),
        ("that's all, regards dawn field", "dawn field"),
        ("hello this is april stone, about my booking", "april stone"),
        ("hello, dana wright here, my parcel is late", "dana wright"),
        ("name's lee park", "lee park"),
        ("i'm called robin hart", "robin hart"),
        ("my name: sunny lane", "sunny lane"),
        ("hi im cliff moss", "cliff moss"),
        ("hey, it's joy bell", "joy bell"),
        ("you're speaking to ivy green", "ivy green"),
    ],
)
def test_names_typed_in_lower_case_after_an_introduction_are_replaced(text: str, name: str) -> None:
    assert name not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "i'm going to cancel, this is fine, i'm frustrated with it",
        "i'm not sure this is the right order, i'm still waiting",
        "this is about order #W2378156, i am looking for the invoice",
        "i'm sorry, but i'm really disappointed, this is urgent",
        "i'm having trouble and i'm a premium member, i'm stuck here",
        "i'm happy with it. this is ridiculous service, i'm worried",
        "i'm vegan, i'm new here, i'm done. thanks again",
        "the result is odd and this is consistent with the data",
        "this is great stuff, i'm hoping it ships",
        "thanks a lot\ncheers mate",
        "hi, it's broken again; it's been ages. hello, anyone here?",
        "its hardness and density, its campaign drive; it is endemic",
        "Im ersten stock, bezahlt im voraus, im nächsten monat",
    ],
)
def test_lower_case_phrases_after_an_introduction_cue_are_not_names(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "street"),
    [
        ("Ship it to Praça Benício Moreira, please.", "Benício Moreira"),
        ("I moved to 82/08\nTripathi Street last month.", "Tripathi"),
        ("deliver to 14 O'Mahoney Street tomorrow", "O'Mahoney"),
        ("Apt. 647 90 Richardson Gully, please", "Richardson"),
        ("Flat 75M\nKatherine Mount\nGavinmouth\nNR52 3ZA", "Katherine"),
        ("Regitsestræde 133\n4452 Viborg", "Regitsestræde"),
        ("Calle Mayor 5, Puerta 2\nGuipúzcoa, 34762", "34762"),
        ("27/490\nNarayan Road, Kakinada 840002", "840002"),
        # A house number and a locality by name alone; "sem número".
        ("deliver to 45/113, Chatterjee, Pune", "Chatterjee"),
        ("H.No. 7/88, Gandhi Colony, Agra", "Gandhi"),
        ("Morada: Travessa do Carmo, S/N, Braga", "Carmo"),
        ("Calle de Alcalá s/n, Madrid", "Alcalá"),
        ("H.No. 52\nRaghavan, Jaipur", "Raghavan"),
        # A postal block read upwards from its postcode line; a box; military mail.
        ("send to:\n812\nMalhotra\nKanpur-208001", "Malhotra"),
        ("'21\nIyer, Nagpur 440010' is not deliverable", "Iyer"),
        ("please send it to:\nPO Box 4412\nTe Awamutu 3800", "4412"),
        ("USNS Holloway\nFPO AP 96601", "Holloway"),
        ("'avenue Madeleine Roux\n31200 Toulouse'", "Madeleine Roux"),
        ("12 Marsh Driveway, then 7 Hale Top", "Hale"),
        ("14 Kestrel Road\nNew Whitby\nYO21 3AB", "Whitby"),
        ("Vesterbrogade 25\n1620 København", "Vesterbrogade"),
        ("\u00d8stergade 8, 1100 K\u00f8benhavn", "\u00d8stergade"),
    ],
)
def test_streets_with_units_line_breaks_no_number_or_a_postcode_line_are_replaced(
    text: str, street: str
) -> None:
    assert street not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "by August 5, 2017. American Express is the fourth largest",
        "January 13, 2021 Her parents are both of Irish descent",
        "George R. R. Martin wrote it (composed c. 400 BCE), see ch. II.3, plate 9",
        "[AVX2](AVX2), [AVX-512](AVX-512) with Zen 4; color #BD93FF",
        "Spring 2024 sale, Hamburg 2025 conference, via Stripe 3 times",
        "departs 12/05, Paris; rated 4/5, Great value; open 24/7, Customer Service",
        "the 3 Final Round, chapter 2 Top Ten; see page 4\nNew Edition\nVolume 2",
    ],
)
def test_dates_names_of_public_figures_and_product_codes_are_not_addresses(text: str) -> None:
    assert "<ADDRESS_" not in redact_text(text)


def test_a_luhn_valid_card_length_number_after_a_card_word_is_a_card_whatever_its_issuer() -> None:
    # Issuer prefixes this code does not know (3510..., 7000...): the card word decides.
    out = redact_text("card 3510123456789012 was declined; debit card 7000 1234 5678 9010")
    assert "3510123456789012" not in out and "7000 1234" not in out
    assert redact_text("order 3510123456789012 shipped") == "order 3510123456789012 shipped"


def test_a_canary_counts_as_found_as_a_token_of_its_own_not_inside_a_decimal() -> None:
    assert found_in("2588", 'evidence {"z": -1.2588, "ratio": 2588.5}') is None
    assert found_in("2588", "moved to Wellington 2588.") == "2588"
    assert found_in("2588", "id 125880") is None
    assert found_in("8388", "member_id dedupe-01845a51-23a4-4165-8388-1cbbda18aea8") is None
    assert found_in("8388", "Wien 8388-1, Stiege 2") == "8388"


def test_a_bare_number_canary_is_no_leak_as_a_measured_json_value_or_a_dump_column() -> None:
    assert found_in("1523", '{"total_tokens": {"value": 1523, "z": 0.4}}') is None
    assert found_in("1523", "p3-x\tday\t1523\t7") is None
    assert found_in("1523", '{"address": "Wellington, 1523"}') == "1523"
    assert found_in("1523", '{"zip": "1523"}') == "1523"
