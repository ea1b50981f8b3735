"""What every stage shell shares: dead-lettering, error classification, stamping.

A handler either finishes (its outputs acknowledged by the broker, then the offset is
committed) or fails. A *transient* failure (broker or database unreachable) re-raises so
the message is re-read after a pause; anything else is *permanent* for this message: it
becomes a dead letter and the message is acknowledged, so a poison message never loops.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import structlog
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import BaseModel

from shared import topics
from shared.events import DeadLettered, StageStamp

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)

TRANSIENT_RETRY_PAUSE_S = 1.0

M = TypeVar("M", bound=BaseModel)


def now() -> datetime:
    return datetime.now(UTC)


def stamp(stage: str, version: str, at: datetime) -> StageStamp:
    return StageStamp(stage=stage, version=version, at=at)


def to_bytes(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()


class Stage:
    """The dead-letter publisher and handler guard of one stage."""

    def __init__(self, broker: KafkaBroker, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self.log = structlog.get_logger().bind(stage=name)
        self._broker = broker
        self._dlq = broker.publisher(topics.DLQ)

    def subscriber(
        self,
        topic: str,
        *,
        purpose: str = "",
        ack_policy: AckPolicy = AckPolicy.NACK_ON_ERROR,
        **options: Any,
    ) -> Any:
        """The stage's subscription to a topic: its own consumer group, offsets committed
        only after the handler finished, history read from the start the first time."""
        return self._broker.subscriber(
            topic,
            group_id=topics.consumer_group(self.name, purpose),
            ack_policy=ack_policy,
            auto_offset_reset="earliest",
            decoder=undecoded,
            **options,
        )

    def stamp(self) -> StageStamp:
        return stamp(self.name, self.version, now())

    async def dead_letter(
        self, msg: KafkaMessage, error: BaseException, trace_id: str | None = None
    ) -> DeadLettered:
        record = msg.raw_message
        body = msg.body if isinstance(msg.body, bytes) else bytes(msg.body)
        letter = DeadLettered(
            stage=self.name,
            error_class=type(error).__name__,
            message=str(error)[:2000] or type(error).__name__,
            trace_id=trace_id,
            source_topic=getattr(record, "topic", "unknown"),
            source_partition=getattr(record, "partition", None),
            source_offset=getattr(record, "offset", None),
            payload_sha256=hashlib.sha256(body).hexdigest(),
            payload_bytes=len(body),
            at=now(),
        )
        await self._dlq.publish(
            to_bytes(letter),
            key=(trace_id or letter.payload_sha256).encode(),
            headers={"content-type": "application/json"},
        )
        self.log.warning(
            "dead_lettered",
            error_class=letter.error_class,
            error=letter.message,
            trace_id=trace_id,
            topic=letter.source_topic,
            partition=letter.source_partition,
            offset=letter.source_offset,
        )
        return letter

    def guarded(self, handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
        """Wraps a handler whose first parameter is the KafkaMessage; the signature is
        kept, so FastStream still injects the handler's other context parameters."""

        @functools.wraps(handler)
        async def run(*args: Any, **kwargs: Any) -> None:
            msg: KafkaMessage = kwargs["msg"] if "msg" in kwargs else args[0]
            try:
                await handler(*args, **kwargs)
            except TRANSIENT_ERRORS as error:
                self.log.warning("transient_failure_will_retry", error=repr(error))
                await asyncio.sleep(TRANSIENT_RETRY_PAUSE_S)
                raise
            except Exception as error:
                await self.dead_letter(msg, error, trace_id=_trace_id_of(msg))

        return run


def _trace_id_of(msg: KafkaMessage) -> str | None:
    """Best effort, on the failure path only: the body's trace_id if it is a JSON object
    that has one, else the key of topics keyed by trace id."""
    try:
        value = json.loads(msg.body)
        if isinstance(value, dict) and isinstance(value.get("trace_id"), str):
            return str(value["trace_id"])[:64]
    except (ValueError, TypeError):
        pass
    key = getattr(msg.raw_message, "key", None)
    if getattr(msg.raw_message, "topic", None) == topics.RAW and isinstance(key, bytes):
        return key.decode(errors="replace")[:64] or None
    return None


async def undecoded(msg: StreamMessage[Any]) -> Any:
    """Handlers validate the raw body with pydantic (or decode OTLP themselves): the JSON
    decode FastStream would otherwise run on every message is thrown away (profiling)."""
    return msg.body


def parse(model: type[M], msg: KafkaMessage) -> M:
    """Validation errors raised here are permanent: the guard dead-letters them."""
    return model.model_validate_json(msg.body)
