"""Which failures are retried (an outage) and which dead-letter the message (its content)."""

from __future__ import annotations

import socket

import asyncpg
import pytest
from aiokafka import errors as kafka_errors
from pydantic import BaseModel, ValidationError

from shared.errors import PERMANENT_ERRORS, is_transient, retry_transient

pytestmark = pytest.mark.logic


def pg_error(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    return cls.new({"C": cls.sqlstate, "M": "x", "S": "FATAL"})


@pytest.mark.parametrize(
    "error",
    [
        socket.gaierror(-2, "Name or service not known"),
        OSError(113, "No route to host"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        kafka_errors.LeaderNotAvailableError(),
        kafka_errors.NotLeaderForPartitionError(),
        kafka_errors.RequestTimedOutError(),
        kafka_errors.KafkaConnectionError(),
        kafka_errors.KafkaTimeoutError(),
        pg_error(asyncpg.AdminShutdownError),  # 57P01: `pg_ctl stop -m fast`
        pg_error(asyncpg.CrashShutdownError),  # 57P02
        pg_error(asyncpg.CannotConnectNowError),  # 57P03: starting up
        pg_error(asyncpg.QueryCanceledError),  # 57014: statement_timeout
        pg_error(asyncpg.ConnectionDoesNotExistError),  # 08003
        pg_error(asyncpg.ConnectionFailureError),  # 08006
        pg_error(asyncpg.SerializationError),
        pg_error(asyncpg.DeadlockDetectedError),
        pg_error(asyncpg.TooManyConnectionsError),
        asyncpg.InterfaceError("connection was closed in the middle of operation"),
    ],
    ids=type,
)
def test_an_outage_of_the_network_broker_or_database_is_transient(error: BaseException) -> None:
    assert is_transient(error)


class _Model(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Model.model_validate({"n": "x"})
    except ValidationError as error:
        return error
    raise AssertionError


@pytest.mark.parametrize(
    "error",
    [
        kafka_errors.MessageSizeTooLargeError(),
        kafka_errors.TopicAuthorizationFailedError(),
        RecursionError(),
        ValueError("bad"),
        KeyError("k"),
        _validation_error(),
        pg_error(asyncpg.UniqueViolationError),  # 23505: a bug, not an outage
        pg_error(asyncpg.UntranslatableCharacterError),  # 22P05: NUL in jsonb
        pg_error(asyncpg.InvalidPasswordError),
    ],
    ids=type,
)
def test_a_failure_caused_by_the_message_or_the_setup_is_permanent(error: BaseException) -> None:
    assert not is_transient(error)


def test_the_permanent_set_wins_over_the_family_rules() -> None:
    assert kafka_errors.MessageSizeTooLargeError in PERMANENT_ERRORS
    assert not is_transient(kafka_errors.MessageSizeTooLargeError())


async def test_a_transient_failure_is_retried_until_the_call_succeeds() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError(111, "refused")
        return "ok"

    assert await retry_transient("test", flaky, max_delay_s=30) == "ok"
    assert len(calls) == 3


async def test_a_permanent_failure_is_raised_at_once_without_a_retry() -> None:
    calls = []

    async def broken() -> None:
        calls.append(1)
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        await retry_transient("test", broken, max_delay_s=30)
    assert len(calls) == 1
