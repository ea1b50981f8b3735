"""A dead letter's message (and the log line and `promote dlq` output built from it) keeps the
error class, a reason, validation types and location paths, and never an input value: values
planted in malformed events do not come back out of ``safe_error_message``."""

from __future__ import annotations

import json

import pytest

from services.ingest.decode import decode_payload
from services.redaction.scanner import RedactionFailed
from shared.events import Trace, TraceDeduped
from shared.stage import safe_error_message

pytestmark = pytest.mark.logic

PLANTED = {
    "email": "marguerite.okafor@example.org",
    "ssn": "078-05-1120",
    "name": "Marguerite Okafor",
    "phone": "+44 7700 900461",
    "street": "129 Baker Street",
}


def message_for(error_source: object) -> str:
    try:
        if callable(error_source):
            error_source()
    except Exception as error:
        return safe_error_message(error)
    raise AssertionError("the malformed input was accepted")


def leaked(message: str) -> list[str]:
    return [kind for kind, value in PLANTED.items() if value.casefold() in message.casefold()]


def malformed_native_trace() -> bytes:
    return json.dumps(
        {
            "trace_id": "t1",
            "spans": [
                {
                    "span_id": "s1",
                    "name": PLANTED["name"],
                    "start_time": PLANTED["email"],
                    "retry_attempt": PLANTED["ssn"],
                }
            ],
            PLANTED["street"]: PLANTED["phone"],
        }
    ).encode()


def test_a_validation_error_keeps_types_and_paths_but_no_input_value() -> None:
    message = message_for(lambda: Trace.model_validate_json(malformed_native_trace()))

    assert leaked(message) == []
    assert message.startswith("ValidationError")
    assert "spans.0.start_time: datetime_from_date_parsing" in message
    assert "spans.0.retry_attempt: int_parsing" in message
    assert "<key>: extra_forbidden" in message, "an unknown key is a path part, not shown"


def test_an_event_that_fails_validation_downstream_leaks_nothing_either() -> None:
    body = json.dumps({"trace_id": "t1", "trace": json.loads(malformed_native_trace())}).encode()

    message = message_for(lambda: TraceDeduped.model_validate_json(body))

    assert leaked(message) == []
    assert "ValidationError" in message


def test_ingest_rejections_keep_their_reason_and_lose_the_keys_they_quoted() -> None:
    message = message_for(lambda: decode_payload(malformed_native_trace(), "application/json"))

    assert leaked(message) == []
    assert message.startswith("InvalidPayload — schema")


def test_invalid_json_says_where_it_broke_and_not_what_was_there() -> None:
    body = b'{"trace_id": "' + PLANTED["email"].encode() + b'", broken'

    message = message_for(lambda: decode_payload(body, "application/json"))

    assert leaked(message) == []
    assert "invalid_json" in message


def test_an_arbitrary_exception_keeps_only_its_class_and_where_it_was_raised() -> None:
    def lookup() -> None:
        raise KeyError(f"no customer {PLANTED['name']} at {PLANTED['street']}")

    message = message_for(lookup)

    assert leaked(message) == []
    assert message == "KeyError"


def test_a_redaction_failure_keeps_its_reason_and_detail() -> None:
    def fail() -> None:
        raise RedactionFailed("oversize", "1200000 > 1000000 characters")

    assert message_for(fail) == "RedactionFailed — oversize; 1200000 > 1000000 characters"
