"""What every stage shell shares: its subscriptions, dead letters, stamps, and error
messages that carry no input value. The batch loop itself is ``shared.kernel``."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream._internal.constants import EMPTY
from faststream._internal.context import Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage as _KafkaMessage
from faststream.message import StreamMessage
from pydantic import BaseModel, ValidationError

from shared import events, ops, topics
from shared.events import DeadLettered, StageStamp


class _ResolvedOnLoop(Context):
    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().use(**kwargs)


def Resolved(real_name: str = "", *, default: Any = EMPTY) -> Any:
    """FastStream's ``Context()``, resolved on the event loop. fast_depends runs a custom
    field's synchronous ``use`` in a worker thread: with FastStream's own ``Context`` every
    handled batch cost a thread hop for each context parameter (a lock, a queue and a
    wake-up of the loop; ~4 % of ingest's CPU at 240 traces/s, profiled)."""
    return _ResolvedOnLoop(real_name, default=default)


# The batch a handler was given (``faststream.kafka.annotations.KafkaMessage``, resolved on
# the loop).
KafkaMessage = Annotated[_KafkaMessage, _ResolvedOnLoop("message")]


def now() -> datetime:
    return datetime.now(UTC)


def stamp(stage: str, version: str, at: datetime) -> StageStamp:
    return StageStamp(stage=stage, version=version, at=at)


def to_bytes(event: BaseModel) -> bytes:
    # model_dump_json's bytes, without its decoding to str and encoding back.
    return event.__pydantic_serializer__.to_json(event)


# What an envelope writes before its trace (declaration order: Envelope, then the trace).
# Sets, as pydantic-core's serialiser types its include and exclude (never mutated).
_BEFORE_TRACE: set[str] = {"schema_version", "trace_id", "stages"}
_AROUND_TRACE: set[str] = _BEFORE_TRACE | {"trace"}
_TRACE_KEY = b',"trace":'


def to_bytes_passing_trace(
    event: events.TraceNormalized, source: events.TraceNormalized, source_bytes: bytes
) -> bytes:
    """``to_bytes(event)`` for an event that carries on its input's trace unchanged (dedupe,
    scoring): the trace's bytes are copied from the input record instead of written again,
    which is most of an event's serialisation (~70 of ~95 µs for a 10 KB event).

    The input record must read exactly as the serialiser writes the input's other fields,
    before and after the trace; then the bytes between are the trace the input was parsed
    from, and parse to the same trace downstream. A record written any other way, or an
    event whose trace is not the input's, is serialised whole."""
    if event.trace is not source.trace:
        return to_bytes(event)
    read = source.__pydantic_serializer__
    before = read.to_json(source, include=_BEFORE_TRACE)[:-1] + _TRACE_KEY
    after = read.to_json(source, exclude=_AROUND_TRACE)
    end = len(source_bytes) - len(after)
    if not (
        len(after) > 2  # some field follows the trace, so it is not the record's last
        and len(source_bytes) > len(before) + len(after)
        and source_bytes.startswith(before)
        and source_bytes[end] == ord(",")
        and source_bytes.endswith(memoryview(after)[1:])
    ):
        return to_bytes(event)
    write = event.__pydantic_serializer__
    head = write.to_json(event, include=_BEFORE_TRACE)
    tail = write.to_json(event, exclude=_AROUND_TRACE)
    return b"".join(
        (head[:-1], _TRACE_KEY, memoryview(source_bytes)[len(before) : end], b",", tail[1:])
    )


def dead_letter_of(
    stage: str,
    body: bytes,
    error_class: str,
    message: str,
    *,
    source_topic: str,
    trace_id: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
) -> DeadLettered:
    """The one shape of a dead letter: a digest and size of the refused body, never its
    content; ``message`` must already be free of input values (``safe_error_message``)."""
    return DeadLettered(
        stage=stage,
        error_class=error_class,
        message=message,
        trace_id=trace_id,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        payload_sha256=hashlib.sha256(body).hexdigest(),
        payload_bytes=len(body),
        at=now(),
    )


class Stage:
    """One stage's subscriptions, dead-letter publisher, stamps and logger."""

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
        from shared.kafka import max_request_bytes
        from shared.settings import get_settings

        settings = get_settings()
        options.setdefault("max_partition_fetch_bytes", max_request_bytes(settings))
        options.setdefault(
            "fetch_max_wait_ms",
            settings.kafka_side_fetch_max_wait_ms if purpose else settings.kafka_fetch_max_wait_ms,
        )
        return self._broker.subscriber(
            topic,
            group_id=topics.consumer_group(self.name, purpose),
            ack_policy=ack_policy,
            auto_offset_reset="earliest",
            decoder=undecoded,
            **options,
        )

    def batch_subscriber(self, topic: str, *, purpose: str = "", **options: Any) -> Any:
        """The same subscription, consumed a batch at a time (shared/kernel.py): offsets
        are committed once the whole batch's outputs are acknowledged; on a failure the
        batch's partitions are rewound to its first record."""
        from shared.settings import get_settings

        settings = get_settings()
        subscriber = self.subscriber(
            topic,
            purpose=purpose,
            batch=True,
            max_records=settings.stage_batch_records,
            batch_timeout_ms=settings.stage_batch_timeout_ms,
            **options,
        )
        poll_promptly(subscriber, settings.stage_batch_top_up_ms)
        return subscriber

    def stamp(self) -> StageStamp:
        return stamp(self.name, self.version, now())

    async def dead_letter_record(
        self, record: ConsumerRecord[bytes, bytes], error: BaseException
    ) -> DeadLettered:
        body = record.value or b""
        return await self.dead_letter_body(
            body,
            error,
            trace_id=trace_id_hint(body, record.key, record.topic),
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
        )

    async def dead_letter_body(
        self,
        body: bytes,
        error: BaseException,
        *,
        trace_id: str | None,
        source_topic: str,
        source_partition: int | None = None,
        source_offset: int | None = None,
    ) -> DeadLettered:
        """A dead letter for ``body`` (a consumed message, or an output that could not be
        published)."""
        letter = dead_letter_of(
            self.name,
            body,
            type(error).__name__,
            safe_error_message(error),
            trace_id=trace_id,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
        )
        await self._dlq.publish(
            to_bytes(letter),
            key=(trace_id or letter.payload_sha256).encode(),
            headers={"content-type": "application/json"},
        )
        ops.dead_lettered(self.name, letter.error_class)
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


def poll_promptly(subscriber: Any, top_up_ms: int = 0) -> None:
    """FastStream's batch subscriber sleeps for its whole poll timeout after a poll that
    came back empty (``BatchSubscriber.get_msg``), so a record that arrives just then waits
    up to that long, on every hop of the pipeline: at a steady rate below the maximum the
    later stages see gaps between their upstream's batches, and each gap cost them a sleep.
    The poll itself already waits (up to the timeout) for the first record, so the stage
    polls again at once; an idle stage still polls only once per timeout.

    A poll also tops the batch up (``top_up_ms``). The consumer fetches a partition again
    only once its fetched records are all taken, and the broker answers that fetch with the
    first records to arrive: so a poll hands over what was fetched just after the previous
    poll, and what arrived while the stage worked waits at the broker for the next batch,
    about two batches' time in all. Polling again for up to ``top_up_ms`` takes what that
    new fetch brings, so a record waits about one batch instead (p99 send to decision at
    417 traces/s: ~1,080 -> ~890 ms, median of six runs each)."""

    async def get_msg(consumer: Any) -> tuple[ConsumerRecord[bytes, bytes], ...]:
        fetched = await consumer.getmany(
            timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records
        )
        taken = sum(len(records) for records in fetched.values())
        if fetched and top_up_ms and taken < subscriber.max_records:
            more = await consumer.getmany(
                timeout_ms=top_up_ms, max_records=subscriber.max_records - taken
            )
            for partition, records in more.items():  # later offsets of the same partitions
                fetched[partition] = [*fetched.get(partition, ()), *records]
        return tuple(itertools.chain.from_iterable(fetched.values()))

    subscriber.get_msg = get_msg


# --- error messages without input values -----------------------------------------------------
#
# An exception's text may quote what it failed on: pydantic's ValidationError prints
# ``input_value=...``, a KeyError its key, an extra-forbidden key sits in the error's location.
# A dead letter, the log line that goes with it and `promote dlq` keep only what is safe by
# construction: the error class, a machine-readable reason, the validation errors' types and
# location paths (a path part that is not a field of the event schema is shown as ``<key>``),
# and where in the code the error was raised.

MAX_VALIDATION_ERRORS = 5
_SAFE_WORD = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _schema_fields() -> frozenset[str]:
    names: set[str] = set()
    for value in vars(events).values():
        if isinstance(value, type) and issubclass(value, BaseModel):
            names.update(value.model_fields)
    return frozenset(names)


SCHEMA_FIELDS = _schema_fields()


def _loc_part(part: object) -> str:
    if isinstance(part, int):
        return str(part)
    return str(part) if part in SCHEMA_FIELDS else "<key>"


def describe_validation(error: ValidationError) -> str:
    """Types and location paths of a ValidationError, never the offending input."""
    found = error.errors(include_url=False, include_input=False, include_context=False)
    parts = [
        f"{'.'.join(_loc_part(p) for p in e['loc']) or '<root>'}: {e['type']}"
        for e in found[:MAX_VALIDATION_ERRORS]
    ]
    more = len(found) - MAX_VALIDATION_ERRORS
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _raised_at(error: BaseException) -> str | None:
    """module:function:line of the innermost frame of the project's own code."""
    tb = error.__traceback__
    where = None
    while tb is not None:
        code = tb.tb_frame.f_code
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".")[0] in ("services", "shared", "promoter", "tools"):
            where = f"{module}:{code.co_name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def safe_error_message(error: BaseException) -> str:
    """The dead letter's and log line's message for ``error``: no input value can be in it."""
    pieces = [type(error).__name__]
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and _SAFE_WORD.fullmatch(reason):
        pieces.append(reason)
    # RedactionFailed's detail is built from class and detector names only (its contract).
    if type(error).__name__ == "RedactionFailed":
        detail = getattr(error, "detail", "")
        if isinstance(detail, str) and detail:
            pieces.append(re.sub(r"[^A-Za-z0-9_:<> .]", "", detail)[:200])
    # `raise X from None` hides the context from the traceback, not from us.
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ValidationError):
            pieces.append(f"{cause.title}: {describe_validation(cause)}")
            break
        if isinstance(cause, json.JSONDecodeError):
            pieces.append(f"invalid JSON at line {cause.lineno} column {cause.colno}")
            break
        cause = cause.__cause__ or cause.__context__
    where = _raised_at(error)
    if where:
        pieces.append(f"at {where}")
    return ": ".join(pieces[:1]) + (" — " + "; ".join(pieces[1:]) if len(pieces) > 1 else "")


def trace_id_hint(body: bytes, key: bytes | None, topic: str | None) -> str | None:
    """Best effort, on the failure path only: the body's trace_id if it is a JSON object
    that has one, else the key of topics keyed by trace id."""
    try:
        value = json.loads(body)
        if isinstance(value, dict) and isinstance(value.get("trace_id"), str):
            return id_shaped(value["trace_id"])
    except (ValueError, TypeError, RecursionError, MemoryError):
        # RecursionError: deeply nested JSON. Raised here, inside the dead-letter branch,
        # it would escape the guard and the message would be nacked and re-read forever.
        pass
    if topic == topics.RAW and isinstance(key, bytes):
        return id_shaped(key.decode(errors="replace"))
    return None


_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.:-]{0,63}")


def id_shaped(value: str) -> str | None:
    """A malformed event's trace id is kept only when it has an id's shape: it travels
    unredacted (the DLQ key, the log line), so an address or a name in it must not."""
    if not _ID.fullmatch(value):
        return None
    hexadecimal = all(c in "0123456789abcdefABCDEF-" for c in value)
    return value if hexadecimal or any(c.isdigit() for c in value) else None


async def undecoded(msg: StreamMessage[Any]) -> Any:
    """Handlers validate the raw body with pydantic (or decode OTLP themselves): the JSON
    decode FastStream would otherwise run on every message is thrown away (profiling)."""
    return msg.body
