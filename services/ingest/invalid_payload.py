"""The one error decoding raises: a payload that belongs in the DLQ, described without PII."""

from __future__ import annotations

from pydantic import ValidationError


class InvalidPayload(ValueError):
    """The payload can never be decoded; it belongs in the DLQ.

    ``reason`` is short and machine-readable; the message never quotes payload content, which
    may hold PII.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def describe_validation(exc: ValidationError) -> str:
    # include_input=False: the offending values may be PII and this message goes to the DLQ.
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    described = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        for error in errors[:5]
    )
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"not a valid Trace: {described}{more}"
