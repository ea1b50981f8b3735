"""The write-time second pass: Presidio (no NLP engine) plus the secret scan, on literal texts.
Keys are generated at test time so that no secret scanner mistakes this file for a leak."""

from __future__ import annotations

import json
import random
import socket
import string
from typing import Any

import pytest

from services.redaction import second_pass
from services.redaction.second_pass import find_leaks

pytestmark = pytest.mark.logic

_RNG = random.Random(7)
AWS_KEY = "AKIA" + "".join(_RNG.choice(string.ascii_uppercase + "234567") for _ in range(16))
GITHUB_TOKEN = "ghp" + "_" + "".join(_RNG.choice(string.ascii_letters) for _ in range(36))

CLEAN_FIXTURE = json.dumps(
    {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "created": "2026-01-15T10:30:00.123Z",
        "epoch_ms": 1768473000123,
        "order_id": "ORD-20260115-0042",
        "request_id": "550e8400-e29b-41d4-a716-446655440000",
        "agent_version": "1.4.0",
        "runtime": "python 3.11.7, libfoo version 10.4.1.2",
        "input": "Hi, I'm <PERSON_1>, reach me at <EMAIL_1> or <PHONE_1>.",
        "tool_arguments": '{"card": "<CARD_1>", "iban": "<IBAN_1>", "ssn": "<SSN_1>"}',
        "error": "ConnectionError: postgres://app:<PASSWORD_1>@db.internal:5432/orders "
        "refused from <IP_1>; upstream 127.0.0.1:8080",
        "headers": {"Authorization": "Bearer <SECRET_1>", "x-api-key": "<SECRET_2>"},
        "usage": {"max_tokens": 512, "input_tokens": 1834, "cost_usd": 0.0123},
        "amount": "1234.56",
        "sku": "SKU-4411-2231",
    }
)


def test_a_clean_redacted_fixture_with_placeholders_passes() -> None:
    assert find_leaks([CLEAN_FIXTURE, "Refund issued for <PERSON_1> (<EMAIL_1>)."]) == []


def test_an_email_is_flagged_by_presidio_without_its_value() -> None:
    reasons = find_leaks(["please write to jane.doe@example.com today"])
    assert reasons == ["EMAIL_ADDRESS found by presidio"]


def test_a_planted_aws_key_is_flagged_by_the_secret_scan_without_its_value() -> None:
    reasons = find_leaks([CLEAN_FIXTURE, json.dumps({"env": f"AWS_ACCESS_KEY_ID={AWS_KEY}"})])
    assert "aws_access_key found by secret scan" in reasons
    assert all(AWS_KEY not in reason for reason in reasons)


def test_each_kind_of_leak_is_reported_once() -> None:
    texts = [
        f"key {AWS_KEY} and again {AWS_KEY}",
        "mail a@example.com, b@example.com",
        f"token {GITHUB_TOKEN}",
    ]
    assert find_leaks(texts) == [
        "aws_access_key found by secret scan",
        "EMAIL_ADDRESS found by presidio",
        "github_token found by secret scan",
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("card 4111 1111 1111 1111", "CREDIT_CARD found by presidio"),
        ("iban GB82 WEST 1234 5698 7654 32", "IBAN_CODE found by presidio"),
        ("ssn 536-22-8190", "US_SSN found by presidio"),
        ("call (212) 555-0142", "PHONE_NUMBER found by presidio"),
        ("from 203.0.113.7", "IP_ADDRESS found by presidio"),
        ("dsn postgres://app:hunter2@db/x", "connection_password found by secret scan"),
        ("password=hunter2", "sensitive_key_value found by secret scan"),
    ],
)
def test_each_type_the_first_pass_removes_is_caught_if_it_survived(text: str, reason: str) -> None:
    assert reason in find_leaks([text])


def test_the_analyzer_is_built_without_touching_the_network(monkeypatch: Any) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    analyzer = second_pass._build_analyzer()
    results = analyzer.analyze(text="write to jane@example.com", language="en")
    assert [r.entity_type for r in results] == ["EMAIL_ADDRESS"]


def test_the_verdict_cache_analyses_a_string_once_and_forgets_the_least_recently_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.redaction import second_pass

    analysed: list[str] = []

    def fake_analyse(text: str, session: object) -> tuple[str, ...]:
        analysed.append(text)
        return ("EMAIL_ADDRESS found by presidio",) if "@" in text else ()

    monkeypatch.setattr(second_pass, "_analyse", fake_analyse)
    cache = second_pass.VerdictCache(size=2)
    session = second_pass._SECRET_SCANNER.session()
    assert cache.leaks_in("write to a@example.com", session) == ("EMAIL_ADDRESS found by presidio",)
    assert cache.leaks_in("write to a@example.com", session) == ("EMAIL_ADDRESS found by presidio",)
    assert cache.leaks_in("clean", session) == ()
    assert analysed == ["write to a@example.com", "clean"], "a repeat is not analysed again"
    cache.leaks_in("another", session)  # evicts the email, the least recently used
    cache.leaks_in("write to a@example.com", session)
    assert analysed[-1] == "write to a@example.com"
