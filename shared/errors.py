"""Which failures are transient, and how they are retried.

A failure is *transient* when the same work can succeed later without any change to the
input: the broker, the database or the network is away for a while. It is classified by
family, never by a hand-kept list of classes:

- ``OSError`` and its subclasses (``ConnectionError``, ``socket.gaierror`` for a host that
  does not resolve, ``TimeoutError``);
- aiokafka errors whose ``retriable`` attribute is true (``LeaderNotAvailableError`` after a
  broker restart, ``RequestTimedOutError``, ...), plus ``KafkaConnectionError`` and
  ``KafkaTimeoutError``;
- PostgreSQL errors of SQLSTATE class 08 (connection exception) and 57 (operator
  intervention: 57P01 on a fast shutdown, 57P02 on a crash, 57014 a statement timeout),
  40001/40P01 (serialisation failure, deadlock: retrying is the documented remedy), 53300
  (too many connections), and asyncpg's ``InterfaceError`` family (the connection was lost
  under a query);
- ``asyncio.TimeoutError`` (an alias of ``TimeoutError``).

Everything else is *permanent* for the message that caused it. PERMANENT_ERRORS names the
families that are permanent even though a broader rule could mistake them for transient:
an oversize record (its retry would fail the same way), authentication and authorisation
failures (a misconfiguration, not an outage: stages must not spin on them either, but they
are raised at start, not per message), and recursion on deeply nested input.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from aiokafka import errors as kafka_errors
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    stop_never,
    wait_exponential_jitter,
)

# Classes that are permanent whatever family rule could also match them.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.UnsupportedSaslMechanismError,
    asyncpg.InvalidAuthorizationSpecificationError,  # 28000 / 28P01: wrong credentials
    asyncpg.InvalidCatalogNameError,  # 3D000: no such database
    RecursionError,
    MemoryError,
)

TRANSIENT_SQLSTATE_CLASSES = ("08", "57")
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "53300", "55P03"})

# Bounds of the in-place retry of one message; past it the message is released (nacked)
# and re-read, so a long outage never exceeds the consumer's max poll interval.
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 10.0


def is_transient(error: BaseException) -> bool:
    """True when ``error`` says "try again later", by family (see the module docstring)."""
    if isinstance(error, PERMANENT_ERRORS):
        return False
    if isinstance(error, OSError | asyncio.TimeoutError | socket.gaierror):
        return True
    if isinstance(error, kafka_errors.KafkaError):
        return bool(getattr(error, "retriable", False)) or isinstance(
            error, kafka_errors.KafkaConnectionError | kafka_errors.KafkaTimeoutError
        )
    if isinstance(error, asyncpg.InterfaceError):
        return True
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        return state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in TRANSIENT_SQLSTATES
    return False


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    log = structlog.get_logger()

    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        log.warning(
            "transient_failure_will_retry",
            what=what,
            attempt=state.attempt_number,
            error_class=type(error).__name__,
            pause_s=round(state.upcoming_sleep, 2),
        )

    return before_sleep


def transient_retrying(
    what: str, *, max_delay_s: float | None, max_pause_s: float = RETRY_MAX_S
) -> AsyncRetrying:
    """Retries transient failures with exponential backoff and full jitter; anything else,
    and the last transient failure once ``max_delay_s`` has passed, is re-raised as is.
    ``max_delay_s=None`` retries until it succeeds (a stage waiting for its database)."""
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(multiplier=RETRY_INITIAL_S, max=max_pause_s, jitter=0.5),
        stop=stop_never if max_delay_s is None else stop_after_delay(max_delay_s),
        before_sleep=_log_retry(what),
        reraise=True,
    )


async def retry_transient(
    what: str,
    call: Callable[[], Any],
    *,
    max_delay_s: float | None,
) -> Any:
    """``await call()`` under transient_retrying."""
    async for attempt in transient_retrying(what, max_delay_s=max_delay_s):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises or returns")  # pragma: no cover
