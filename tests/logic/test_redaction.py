"""Redaction's functional core on literal traces: every detector, the seeds, the placeholders,
and failing closed. All values are synthetic: example.com addresses, 555-01xx numbers, card
networks' test numbers, the ISO example IBAN and keys generated here at test time (so no
secret scanner mistakes this file for a leak)."""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.redaction import scanner as scanner_module
from services.redaction.detectors import DEFAULT_DETECTORS, Detector, Finding
from services.redaction.logic import DEFAULT_SCANNER, RedactionFailed, Scanner, redact_trace
from shared.events import Document, Feedback, Span, SpanKind, Trace

pytestmark = pytest.mark.logic

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
_RNG = random.Random(5)


def _random(alphabet: str, n: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
AWS_KEY = "AKIA" + _random(string.ascii_uppercase + "234567", 16)
GITHUB_TOKEN = "ghp" + "_" + _random(ALNUM, 36)
GITHUB_PAT = "github" + "_pat_" + _random(ALNUM + "_", 82)
OPENAI_KEY = "sk-" + "proj-" + _random(ALNUM, 20) + "T3" + _random(ALNUM, 24)
ANTHROPIC_KEY = "sk-" + "ant-api03-" + _random(ALNUM + "-_", 80)
SLACK_TOKEN = "xox" + "b-1234567890-" + _random(ALNUM, 24)
STRIPE_KEYS = [p + "_" + _random(ALNUM, 24) for p in ("sk_live", "rk_live", "pk_live", "sk_test")]
JWT = ".".join(
    base64.urlsafe_b64encode(part).rstrip(b"=").decode()
    for part in (
        b'{"alg":"HS256","typ":"JWT"}',
        b'{"sub":"user-1","iat":1700000000}',
        b"sig-bytes!",
    )
)
PEM = (
    "-----BEGIN "
    + "RSA PRIVATE KEY-----\n"
    + "\n".join(_random(ALNUM + "+/", 64) for _ in range(4))
    + "\n-----END "
    + "RSA PRIVATE KEY-----"
)
HIGH_ENTROPY = _random(ALNUM, 40)


def span(i: int, **kw: Any) -> Span:
    kw.setdefault("name", "step")
    return Span(span_id=f"{i:016x}", start_time=T0, kind=kw.pop("kind", SpanKind.OTHER), **kw)


def trace_of(*spans: Span, trace_id: str = "a" * 32, **kw: Any) -> Trace:
    return Trace(trace_id=trace_id, spans=spans or (span(0),), **kw)


def redact_text(text: str) -> str:
    clean, _ = redact_trace(trace_of(span(0, input=text)))
    assert clean.spans[0].input is not None
    return clean.spans[0].input


def all_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from all_strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from all_strings(v)
    elif value is not None:
        yield str(value)


def dumped(trace: Trace) -> str:
    return "\n".join(all_strings(trace.model_dump(mode="json")))


# -- every detector, several spellings ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe@example.com today", "mail <EMAIL_1> today"),
        ("mailto:JANE.DOE@Example.COM", "mailto:<EMAIL_1>"),
        ("GET /users?email=jane.doe%40example.com&x=1", "GET /users?email=<EMAIL_1>&x=1"),
        ("call (212) 555-0142 now", "call <PHONE_1> now"),
        ("call 212-555-0142", "call <PHONE_1>"),
        ("call 212.555.0142", "call <PHONE_1>"),
        ("call +1 212 555 0142", "call <PHONE_1>"),
        ("call +1-212-555-0142", "call <PHONE_1>"),
        ("call +12125550142", "call <PHONE_1>"),
        ("phone: 2125550142", "phone: <PHONE_1>"),
        ("London +44 20 7946 0958", "London <PHONE_1>"),
        ("ref 12345 (212) 555-0142", "ref 12345 <PHONE_1>"),
        ("card 4111 1111 1111 1111 exp 12/29", "card <CARD_1> exp 12/29"),
        ("card 4111-1111-1111-1111", "card <CARD_1>"),
        ("card 4111111111111111", "card <CARD_1>"),
        ("mc 5555 5555 5555 4444", "mc <CARD_1>"),
        ("amex 3782 822463 10005", "amex <CARD_1>"),
        ("discover 6011111111111117.", "discover <CARD_1>."),
        ("iban GB82 WEST 1234 5698 7654 32 please", "iban <IBAN_1> please"),
        ("iban GB82WEST12345698765432", "iban <IBAN_1>"),
        ("iban DE89 3704 0044 0532 0130 00", "iban <IBAN_1>"),
        ("ssn 536-22-8190", "ssn <SSN_1>"),
        ("ssn 536 22 8190", "ssn <SSN_1>"),
        ("SSN: 536228190", "SSN: <SSN_1>"),
        ("from 203.0.113.7:443", "from <IP_1>:443"),
        ("from 2001:db8::1 and fe80::1ff:fe23:4567:890a", "from <IP_1> and <IP_2>"),
        (
            "dsn postgres://app:s3cr3t-Pa55@db.internal:5432/orders",
            "dsn postgres://app:<PASSWORD_1>@db.internal:5432/orders",
        ),
        ("redis://:hunter2@cache:6379", "redis://:<PASSWORD_1>@cache:6379"),
        ("login failed password=hunter2 user=bob", "login failed password=<PASSWORD_1> user=bob"),
        ('{"db_password": "hunter2", broken', '{"db_password": "<PASSWORD_1>", broken'),
        ("API_KEY: Zx9vQ2mK7pL4", "API_KEY: <SECRET_1>"),
        ("Authorization: Bearer abcDEF123456ghiJKL789", "Authorization: Bearer <SECRET_1>"),
        ("{'Authorization': 'Bearer abcDEF123456'}", "{'Authorization': 'Bearer <SECRET_1>'}"),
        ("GET /v1?api_key=Zx9vQ2mK7pL4&q=shoes", "GET /v1?api_key=<SECRET_1>&q=shoes"),
        ("Cookie: sid=Ab12Cd34; theme=dark", "Cookie: <SECRET_1>"),
        (f"X-Api-Key {HIGH_ENTROPY}", "X-Api-Key <SECRET_1>"),
        (f"aws key {AWS_KEY} leaked", "aws key <AWS_KEY_1> leaked"),
        (f"token {GITHUB_TOKEN}", "token <GITHUB_TOKEN_1>"),
        (f"pat={GITHUB_PAT}", "pat=<GITHUB_TOKEN_1>"),
        (f"OPENAI {OPENAI_KEY}", "OPENAI <OPENAI_KEY_1>"),
        (f"claude {ANTHROPIC_KEY}", "claude <ANTHROPIC_KEY_1>"),
        (f"slack {SLACK_TOKEN}", "slack <SLACK_TOKEN_1>"),
        (f"got {JWT} back", "got <JWT_1> back"),
        (f"key:\n{PEM}\nend", "key:\n<PRIVATE_KEY_1>\nend"),
        (f"cut {PEM[:80]}", "cut <PRIVATE_KEY_1>"),
    ],
)
def test_each_detector_replaces_its_value_with_a_typed_placeholder(
    text: str, expected: str
) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("key", STRIPE_KEYS)
def test_stripe_keys_of_every_kind_are_redacted(key: str) -> None:
    assert redact_text(f"stripe {key}") == "stripe <STRIPE_KEY_1>"


def test_spellings_of_one_phone_number_share_a_placeholder() -> None:
    text = "(212) 555-0142, 212.555.0142, +1 212 555 0142 and +12125550142"
    assert redact_text(text) == "<PHONE_1>, <PHONE_1>, <PHONE_1> and <PHONE_1>"


def test_spellings_of_one_card_share_a_placeholder() -> None:
    assert redact_text("4111 1111 1111 1111 / 4111111111111111") == "<CARD_1> / <CARD_1>"


# -- precision ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "order ORD-20240115-0042 shipped",
        "order 88123456 shipped, total 1234.56 USD",
        "created 2024-01-15T10:30:00.123Z, at 10:30:45",
        "epoch ms 1700000000123 and s 1700000000",
        "id 550e8400-e29b-41d4-a716-446655440000",
        "card 4111 1111 1111 1112 failed Luhn",
        "ref 4111111111111112",
        "python 3.11.4, release v1.2.3.4, version 10.4.1.2",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "std::io::Error in x[::2]",
        "listening on 127.0.0.1:8080 and [::1]:8080 and 0.0.0.0",
        "max_tokens=512 token_count: 1234",
        "the token: expired",
        "password: str = Field(...)",
        "sku sk-large-blue-widget-edition",
        "asset icon@2x.png",
        "GB82 WEST 1234 5698 7654 33 fails mod-97",
        "ssn-like 000-12-3456 and 666-12-3456 and 900-12-3456",
        "idempotency_key: 550e8400-e29b-41d4-a716-446655440000",
        "see https://example.com:8443/path?q=1",
    ],
)
def test_ids_timestamps_versions_and_invalid_numbers_are_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_tool_and_service_names_under_a_name_key_are_not_people() -> None:
    args = json.dumps({"name": "search_orders", "arguments": {"query": "Refund Policy"}})
    doc = json.dumps({"name": "Refund Policy", "version": 3})
    trace = trace_of(
        span(0, tool_arguments=args, tool_result=doc, attributes={"gen_ai.tool.name": "lookup"}),
        resource={"service.name": "Billing Agent"},
    )
    clean, report = redact_trace(trace)
    assert clean == trace
    assert report.counts == {}


def test_a_clean_trace_comes_back_equal_with_an_empty_report() -> None:
    trace = trace_of(span(0, input="Refund order ORD-1", tool_arguments='{"order":"ORD-1"}'))
    clean, report = redact_trace(trace)
    assert clean == trace
    assert report.counts == {}
    assert report.passed and report.strings_scanned > 0


# -- every string, everywhere ---------------------------------------------------------------


def test_values_are_caught_in_every_field_of_the_trace() -> None:
    email = "ann@example.com"
    trace = trace_of(
        span(
            0,
            name="agent",
            input=f"I am {email}",
            output=f"Hello {email}",
            error_message=f"ValueError: no account for {email}",
            tool_arguments=json.dumps({"to": [email], "nested": json.dumps({"cc": email})}),
            tool_result=json.dumps({"ok": False, "detail": f"bounced: {email}"}),
            documents=(Document(id="d1", content=f"owner {email}"),),
            attributes={
                "gen_ai.prompt": f"Write to {email}",
                "deep": {"list": [{"x": f"<{email}>"}]},
                "http.request.header.x-forwarded-for": "198.51.100.23",
            },
        ),
        user_id=email,
        session_id=f"sess:{email}",
        feedback=(Feedback(name="thumbs", explanation=f"wrong reply to {email}"),),
        resource={"deployment.owner": email},
    )
    clean, report = redact_trace(trace)
    text = dumped(clean)
    assert email not in text and "198.51.100.23" not in text
    assert report.counts == {"EMAIL": 1, "IP": 1}
    assert clean.user_id == "<EMAIL_1>"
    assert clean.spans[0].documents[0].content == "owner <EMAIL_1>"


def test_json_inside_a_string_is_redacted_inside_and_keeps_its_layout() -> None:
    args = '{"to":"jane@example.com","amount":120,"note":"ok"}'
    clean, _ = redact_trace(trace_of(span(0, tool_arguments=args)))
    assert clean.spans[0].tool_arguments == '{"to":"<EMAIL_1>","amount":120,"note":"ok"}'


def test_json_that_needs_no_change_is_returned_byte_for_byte() -> None:
    args = '{ "order" : "ORD-1",\n  "amount": 1e2 }'
    clean, _ = redact_trace(trace_of(span(0, tool_arguments=args)))
    assert clean.spans[0].tool_arguments == args


def test_sensitive_keys_in_structured_data_have_their_values_replaced() -> None:
    attributes = {
        "password": "correct horse",
        "db.connection.passwd": "pw1",
        "client_secret": "s3cr3t",
        "Authorization": "Basic dXNlcjpwYXNz",
        "x-api-key": "k1",
        "session": "abc",
        "cookie": ["sid=1", "theme=dark"],
        "max_tokens": 512,
        "token_count": 7,
        "password_hint": "your dog",
        "cvv": 123,
    }
    clean, report = redact_trace(trace_of(span(0, attributes=attributes)))
    out = clean.spans[0].attributes
    assert out["password"] == "<PASSWORD_1>"
    assert out["db.connection.passwd"] == "<PASSWORD_2>"
    assert out["client_secret"] == "<SECRET_1>"
    assert out["Authorization"] == "<SECRET_2>"
    assert out["x-api-key"] == "<SECRET_3>"
    assert out["session"] == "<SECRET_4>"
    assert out["cookie"] == ["<SECRET_5>", "<SECRET_6>"]
    assert out["cvv"] == "<SECRET_7>"
    assert (out["max_tokens"], out["token_count"], out["password_hint"]) == (512, 7, "your dog")
    assert report.counts == {"PASSWORD": 2, "SECRET": 7}


def test_a_random_token_under_a_key_like_name_is_a_secret() -> None:
    attributes = {"signing.key.material": HIGH_ENTROPY, "cache_key": "user:42:profile"}
    clean, _ = redact_trace(trace_of(span(0, attributes=attributes)))
    assert clean.spans[0].attributes == {
        "signing.key.material": "<SECRET_1>",
        "cache_key": "user:42:profile",
    }


def test_dict_keys_stay_unless_they_are_themselves_personal_data() -> None:
    attributes = {"jane@example.com": {"role": "admin"}, "user.role": "admin"}
    clean, _ = redact_trace(trace_of(span(0, attributes=attributes)))
    assert clean.spans[0].attributes == {"<EMAIL_1>": {"role": "admin"}, "user.role": "admin"}


def test_numbers_stored_as_json_numbers_are_still_found() -> None:
    args = json.dumps({"pan": 4111111111111111, "ssn": 536228190, "qty": 3})
    clean, _ = redact_trace(trace_of(span(0, tool_arguments=args)))
    assert json.loads(clean.spans[0].tool_arguments or "") == {
        "pan": "<CARD_1>",
        "ssn": "<SSN_1>",
        "qty": 3,
    }


# -- seeds ----------------------------------------------------------------------------------


def test_a_customer_name_from_a_tool_result_is_caught_in_prose() -> None:
    profile = json.dumps(
        {"customer": {"name": "Jane Doe", "email": "jane.doe@example.com", "tier": "gold"}}
    )
    trace = trace_of(
        span(0, tool_result=profile),
        span(1, output="Thanks Jane Doe! Jane, your refund is on its way. JANE approved."),
    )
    clean, report = redact_trace(trace)
    assert clean.spans[1].output == (
        "Thanks <PERSON_1>! <PERSON_1>, your refund is on its way. <PERSON_1> approved."
    )
    assert json.loads(clean.spans[0].tool_result or "")["customer"]["name"] == "<PERSON_1>"
    assert report.counts == {"PERSON": 1, "EMAIL": 1}


def test_json_inside_a_string_keeps_the_key_it_sits_under() -> None:
    attributes = {"customer": json.dumps({"name": "Jane Doe", "tier": "gold"})}
    trace = trace_of(span(0, attributes=attributes), span(1, output="Bye Jane."))
    clean, _ = redact_trace(trace)
    assert json.loads(clean.spans[0].attributes["customer"])["name"] == "<PERSON_1>"
    assert clean.spans[1].output == "Bye <PERSON_1>."


def test_first_and_last_name_fields_seed_the_full_name_and_each_part() -> None:
    trace = trace_of(
        span(0, attributes={"user": {"firstName": "Jane", "lastName": "Doe"}}),
        span(1, input="Jane Doe wrote; later Doe replied; will Jane mark it?"),
    )
    clean, _ = redact_trace(trace)
    assert (
        clean.spans[1].input
        == "<PERSON_1> wrote; later <PERSON_1> replied; will <PERSON_1> mark it?"
    )


def test_single_word_seeds_match_as_written_not_inside_ordinary_words() -> None:
    trace = trace_of(
        span(0, attributes={"customer_name": "Mark Reading"}),
        span(1, input="Mark asked us to mark the reading list; Reading office; Marks & Co"),
    )
    clean, _ = redact_trace(trace)
    assert clean.spans[1].input == (
        "<PERSON_1> asked us to mark the reading list; <PERSON_1> office; Marks & Co"
    )


def test_a_structured_address_is_caught_in_prose_part_by_part() -> None:
    address = {"street": "742 Evergreen Terrace", "city": "Springfield", "postal_code": "49007"}
    trace = trace_of(
        span(0, tool_arguments=json.dumps({"shipping_address": address})),
        span(1, output="Shipping to 742 Evergreen Terrace in Springfield (49007)."),
    )
    clean, report = redact_trace(trace)
    assert clean.spans[1].output == "Shipping to <ADDRESS_1> in <ADDRESS_2> (<ADDRESS_3>)."
    assert report.counts == {"ADDRESS": 3}


def test_a_secret_under_a_sensitive_key_is_caught_where_it_is_echoed() -> None:
    trace = trace_of(
        span(0, tool_arguments=json.dumps({"user": "bob", "password": "hunter22"})),
        span(1, error_message="AuthError: bad credentials hunter22 for bob"),
    )
    clean, _ = redact_trace(trace)
    assert clean.spans[1].error_message == "AuthError: bad credentials <PASSWORD_1> for bob"


# -- placeholders ---------------------------------------------------------------------------


def test_a_value_planted_three_times_gets_one_placeholder() -> None:
    email = "planted@example.com"
    trace = trace_of(
        span(0, input=f"write to {email}", attributes={"customer.email": email}),
        span(1, tool_arguments=json.dumps({"recipient": email.upper()})),
    )
    clean, report = redact_trace(trace)
    assert clean.spans[0].input == "write to <EMAIL_1>"
    assert clean.spans[0].attributes == {"customer.email": "<EMAIL_1>"}
    assert json.loads(clean.spans[1].tool_arguments or "") == {"recipient": "<EMAIL_1>"}
    assert report.counts == {"EMAIL": 1}


def test_the_same_value_in_two_traces_gets_placeholders_that_do_not_link_them() -> None:
    shared = "shared@example.com"
    a = trace_of(span(0, input=f"cc other@example.com then {shared}"), trace_id="a" * 32)
    b = trace_of(span(0, input=f"to {shared}"), trace_id="b" * 32)
    clean_a, _ = redact_trace(a)
    clean_b, _ = redact_trace(b)
    assert clean_a.spans[0].input == "cc <EMAIL_1> then <EMAIL_2>"
    assert clean_b.spans[0].input == "to <EMAIL_1>"


def test_numbering_follows_the_walk_order_and_is_deterministic() -> None:
    trace = trace_of(
        span(0, input="b@example.com a@example.com"),
        span(1, input="a@example.com c@example.com"),
    )
    first, _ = redact_trace(trace)
    second, _ = redact_trace(trace)
    assert first == second
    assert [s.input for s in first.spans] == ["<EMAIL_1> <EMAIL_2>", "<EMAIL_2> <EMAIL_3>"]


def test_the_report_counts_types_and_never_carries_values() -> None:
    trace = trace_of(span(0, input=f"jane@example.com {AWS_KEY} 4111 1111 1111 1111"))
    _, report = redact_trace(trace)
    assert report.counts == {"EMAIL": 1, "AWS_KEY": 1, "CARD": 1}
    serialised = report.model_dump_json()
    assert "jane" not in serialised and AWS_KEY not in serialised and "4111" not in serialised


def test_redacting_a_redacted_trace_changes_nothing() -> None:
    trace = trace_of(
        span(0, input=f"jane@example.com password=hunter2 {JWT}", attributes={"token": "t0k3n-1"}),
        span(
            1, tool_result=json.dumps({"customer": {"name": "Jane Doe", "phone": "212-555-0142"}})
        ),
    )
    once, _ = redact_trace(trace)
    twice, report = redact_trace(once)
    assert twice == once
    assert report.counts == {}


# -- failing closed -------------------------------------------------------------------------


def _exploding(text: str) -> Iterator[Finding]:
    raise ValueError(f"cannot handle {text}")


EXPLODING = Detector("exploding", ("@",), _exploding)


def test_a_detector_that_raises_fails_the_whole_trace_without_echoing_content() -> None:
    scanner = Scanner((*DEFAULT_DETECTORS, EXPLODING))
    trace = trace_of(span(0, input="hello"), span(1, output="write to jane@example.com"))
    with pytest.raises(RedactionFailed) as failed:
        redact_trace(trace, scanner=scanner)
    assert failed.value.reason == "detector_error"
    assert "exploding" in str(failed.value)
    assert "jane" not in str(failed.value)
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_a_detector_that_only_fires_elsewhere_does_not_fail_clean_strings() -> None:
    scanner = Scanner((*DEFAULT_DETECTORS, EXPLODING))
    clean, _ = redact_trace(trace_of(span(0, input="no at sign here")), scanner=scanner)
    assert clean.spans[0].input == "no at sign here"


def test_a_string_longer_than_the_limit_fails_the_trace() -> None:
    args = json.dumps({"blob": "x" * 5000})
    with pytest.raises(RedactionFailed) as failed:
        redact_trace(trace_of(span(0, tool_arguments=args)), max_string_chars=4096)
    assert failed.value.reason == "oversize"


def test_personal_data_in_the_trace_id_fails_the_trace() -> None:
    with pytest.raises(RedactionFailed) as failed:
        redact_trace(trace_of(span(0), trace_id="jane@example.com"))
    assert failed.value.reason == "identifier_contains_pii"


def test_an_attribute_value_of_an_unknown_type_fails_the_trace() -> None:
    with pytest.raises(RedactionFailed) as failed:
        redact_trace(trace_of(span(0, attributes={"raw": b"jane@example.com"})))
    assert failed.value.reason == "unsupported_value"


# -- the prefilter never hides a finding ----------------------------------------------------

FRAGMENTS = [
    "jane.doe@example.com", "(212) 555-0142", "+44 20 7946 0958", "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32", "536-22-8190", "SSN 536228190", "203.0.113.7",
    "2001:db8::1", "a%40example.com", AWS_KEY, GITHUB_TOKEN, OPENAI_KEY, ANTHROPIC_KEY,
    SLACK_TOKEN, STRIPE_KEYS[0],
    JWT, PEM, "postgres://u:pw@h/db", "password=hunter2", "api_key: Zx9vQ2mK7pL4",
    f"secret {HIGH_ENTROPY}", "Bearer", "ORD-20240115-0042", "2024-01-15T10:30:00Z", " ", "\n",
    "10:30:00", "abc:1:", "1:2:abc", "1:abc:2", "dead::beef", "fe80::1", "2024-01-15",
    "1 (212) 555-0142", "+1", "(", ")", "212", "555", "0142", "12345",
    ", ", ":", "=", '"', "key", "token", "-", ".", "1", "a", "é", "\ud800",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=12))
def test_the_prefilter_never_hides_a_finding_the_extractors_would_make(parts: list[str]) -> None:
    text = "".join(parts)
    session = DEFAULT_SCANNER.session()
    fast = DEFAULT_SCANNER.findings(text, session)
    slow = DEFAULT_SCANNER.findings(text, session, use_prefilter=False)
    assert sorted(fast, key=repr) == sorted(slow, key=repr)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=12))
def test_redaction_never_leaves_a_planted_value_behind(parts: list[str]) -> None:
    text = " ".join(parts)
    out = redact_text(text)
    for secret in (AWS_KEY, GITHUB_TOKEN, OPENAI_KEY, ANTHROPIC_KEY, SLACK_TOKEN, JWT, PEM):
        assert secret not in out


def _re2_scanner() -> Scanner:
    """The scanner as built on a machine without Hyperscan."""
    saved = scanner_module.hyperscan
    scanner_module.hyperscan = None  # type: ignore[assignment]
    try:
        return Scanner(DEFAULT_DETECTORS)
    finally:
        scanner_module.hyperscan = saved


RE2_SCANNER = _re2_scanner()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=12))
def test_the_re2_fallback_prefilter_never_hides_a_finding_either(parts: list[str]) -> None:
    text = "".join(parts)
    session = RE2_SCANNER.session()
    fast = RE2_SCANNER.findings(text, session)
    slow = RE2_SCANNER.findings(text, session, use_prefilter=False)
    assert sorted(fast, key=repr) == sorted(slow, key=repr)
