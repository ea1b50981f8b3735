"""Ingest logs trace ids before redaction has seen them: only id-shaped ones as they are."""

from __future__ import annotations

import pytest

from services.ingest.logic import loggable_trace_id

pytestmark = pytest.mark.logic


@pytest.mark.parametrize(
    "trace_id",
    [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "0af7651916cd43dd8448eb211c80319c",
        "123e4567-e89b-12d3-a456-426614174000",
    ],
)
def test_hexadecimal_and_uuid_trace_ids_are_logged_as_they_are(trace_id: str) -> None:
    assert loggable_trace_id(trace_id) == trace_id


@pytest.mark.parametrize(
    "trace_id",
    [
        "jane.doe@example.org",
        "Oluwaseun Abernathy-Quist",
        "07700900123",
        "4111111111111111",
        "trace for 129 Baker Street",
    ],
)
def test_any_other_trace_id_is_logged_as_a_digest_that_does_not_contain_it(
    trace_id: str,
) -> None:
    logged = loggable_trace_id(trace_id)
    assert logged.startswith("sha256:") and len(logged) == len("sha256:") + 16
    assert trace_id not in logged
    assert loggable_trace_id(trace_id) == logged, "the same id gives the same digest"


def test_two_native_ids_give_two_digests() -> None:
    assert loggable_trace_id("alice@example.org") != loggable_trace_id("bob@example.org")
