"""Kafka plumbing shared by every stage: the broker factory and topic administration."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher.state import RealProducer
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from prometheus_client import REGISTRY

from shared import topics
from shared.errors import retry_transient
from shared.settings import Settings

# Headroom over the largest record for the request and batch framing around it.
FRAMING_BYTES = 64 * 1024


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of every Kafka client, or None on a PLAINTEXT/SASL_PLAINTEXT link."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for every aiokafka client the project creates (producer, consumer,
    admin): security protocol, TLS context and SASL credentials."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL"):
        if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
            raise RuntimeError(
                f"{protocol} needs PROMOTE_KAFKA_SASL_USERNAME and PROMOTE_KAFKA_SASL_PASSWORD"
            )
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The same settings in FastStream's terms."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    use_ssl = protocol in ("SSL", "SASL_SSL")
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    options = client_options(settings)
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    return kinds[settings.kafka_sasl_mechanism](
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        ssl_context=context,
        use_ssl=use_ssl,
    )


def max_request_bytes(settings: Settings) -> int:
    return settings.kafka_max_message_bytes + FRAMING_BYTES


class RememberingPartitioner:
    """aiokafka's default partitioner (Java's: murmur2 of the key, modulo the partition
    count), remembering each key's hash. The stages key their records by pattern, so keys
    recur from record to record, and aiokafka's murmur2 is pure Python: ~6 µs per record,
    about a fifth of handing a record to the producer."""

    def __init__(self, remembered: int = 65_536) -> None:
        self._remembered = remembered
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        positive = self._hashes.get(key)
        if positive is None:
            if len(self._hashes) >= self._remembered:
                self._hashes.clear()
            positive = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[positive % len(all_partitions)]


def producer_options(settings: Settings) -> dict[str, Any]:
    """The one producer configuration (README "Delivery guarantees"): idempotent with
    acks=all, so a send is acknowledged only once the broker has the record and retries
    cannot duplicate it; lingering a few milliseconds into large batches, because every
    producer here hands over many records before awaiting their acknowledgements."""
    return {
        "acks": "all",
        "enable_idempotence": True,
        "partitioner": RememberingPartitioner(),
        "linger_ms": settings.kafka_linger_ms,
        "max_batch_size": min(settings.kafka_batch_bytes, max_request_bytes(settings)),
        "max_request_size": max_request_bytes(settings),
    }


def producer_behind(publisher: Any) -> AIOKafkaProducer | None:
    """The connected aiokafka producer a FastStream publisher would hand its records to;
    None before the broker connects and for the in-memory test broker (whose producer is
    FastStream's fake)."""
    fast_producer = getattr(getattr(publisher, "_outer_config", None), "producer", None)
    state = getattr(fast_producer, "_producer", None)
    return state.producer if isinstance(state, RealProducer) else None


def make_producer(settings: Settings, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """A raw producer for the tools that publish outside a stage (send, replay, the
    receiver, the review app), with the same settings as the stages' producers."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers(),
        "client_id": client_id,
        **producer_options(settings),
        **client_options(settings),
        **overrides,
    }
    return AIOKafkaProducer(**options)


def make_consumer(settings: Settings, *topic_names: str, **overrides: Any) -> AIOKafkaConsumer:
    """A raw consumer outside any stage: manual commits, reading from the start, fetches
    sized to the one size rule."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers(),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": max_request_bytes(settings),
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        **client_options(settings),
        **overrides,
    }
    return AIOKafkaConsumer(*topic_names, **options)


@contextlib.asynccontextmanager
async def admin_client(
    bootstrap: str, settings: Settings | None = None
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on the way out."""
    options = client_options(settings) if settings is not None else process_client_options()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="promote-admin", **options)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


class WaitingKafkaBroker(KafkaBroker):
    """A broker whose start waits for Kafka instead of failing. A stage started (or
    restarted by its supervisor) while the broker is away or restarting would otherwise
    exit on its first refused connection and never come back: the chaos suite's broker
    restart found three stages dead that way. Transient failures (connection refused,
    no metadata yet, ...) are retried with backoff and jitter; a permanent one (bad
    credentials) still ends the start."""

    async def start(self) -> None:
        async def attempt() -> None:
            try:
                await super(WaitingKafkaBroker, self).start()
            except Exception:
                # Close what the failed attempt opened (a producer, some consumers), so
                # the next attempt starts clean and nothing is left unclosed.
                with contextlib.suppress(Exception):
                    await self.stop()
                raise

        await retry_transient("kafka start", attempt, max_delay_s=None)


def make_broker(settings: Settings, client_id: str, logger: logging.Logger) -> KafkaBroker:
    return WaitingKafkaBroker(
        settings.bootstrap_servers(),
        client_id=client_id,
        allow_auto_create_topics=False,
        **producer_options(settings),
        graceful_timeout=20.0,
        security=broker_security(settings),
        logger=logger,
        # FastStream's "Received" and "Processed" lines, two per handled batch: at debug,
        # so below it they cost a level check, not a rendered JSON line (at 240 traces/s a
        # stage handles dozens of small batches a second; ~5 % of ingest's CPU, profiled).
        log_level=logging.DEBUG,
        # Consumed/produced counts and latency histograms (faststream_*), served with the
        # project's own metrics by shared/ops.py.
        middlewares=[KafkaPrometheusMiddleware(registry=REGISTRY, app_name=client_id)],
    )


async def ensure_topics(bootstrap: str, settings: Settings) -> list[str]:
    """Creates missing pipeline topics; returns the names it created. Never relies on
    broker auto-creation, so partition counts and retention are always what was asked."""
    async with admin_client(bootstrap, settings) as admin:
        existing = set(await admin.list_topics())
        wanted = []
        for spec in topics.topic_specs(settings.raw_retention_ms, settings.kept_retention_ms):
            if spec.name in existing:
                continue
            config = {"retention.ms": str(spec.retention_ms)}
            if spec.compacted:
                config = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
            # The size rule (README "Large traces"): the topic takes what producers may send.
            config["max.message.bytes"] = str(max_request_bytes(settings))
            wanted.append(
                NewTopic(
                    spec.name,
                    num_partitions=settings.topic_partitions,
                    replication_factor=1 if _single_node(bootstrap) else 3,
                    topic_configs=config,
                )
            )
        if wanted:
            # Another `up` may race us; the topics then exist, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
        return [t.name for t in wanted]


def _single_node(bootstrap: str) -> bool:
    return len([s for s in bootstrap.split(",") if s.strip()]) == 1


async def groups_lag(
    bootstrap: str, wanted: dict[str, tuple[str, ...]]
) -> dict[str, dict[str, int]]:
    """Records not yet committed, per consumer group and topic (a group that never
    committed counts everything from the earliest retained offset)."""
    consumer = _reader(bootstrap)
    async with admin_client(bootstrap) as admin:
        await consumer.start()
        try:
            return await _lags(admin, consumer, wanted)
        finally:
            await consumer.stop()


async def _lags(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, wanted: dict[str, tuple[str, ...]]
) -> dict[str, dict[str, int]]:
    all_tps = await partitions_of(admin, {n for names in wanted.values() for n in names})
    flat = [tp for tps in all_tps.values() for tp in tps]
    ends = await consumer.end_offsets(flat) if flat else {}
    starts = await consumer.beginning_offsets(flat) if flat else {}
    lags: dict[str, dict[str, int]] = {}
    for group, names in wanted.items():
        committed = await admin.list_consumer_group_offsets(group)
        lags[group] = {}
        for name in names:
            total = 0
            for tp in all_tps[name]:
                meta = committed.get(tp)
                position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
                total += max(0, ends[tp] - position)
            lags[group][name] = total
    return lags


async def partitions_of(
    admin: AIOKafkaAdminClient, names: set[str]
) -> dict[str, list[TopicPartition]]:
    described = await admin.describe_topics(sorted(names))
    for d in described:
        # Right after creation a topic may be listed without partitions or leaders: that
        # is "not ready", never "empty", or a reader would take it for a drained topic.
        errors = [d["error_code"], *(p["error_code"] for p in d["partitions"])]
        if any(errors) or not d["partitions"]:
            raise KafkaError(f"topic {d['topic']} not ready (error codes {errors})")
    return {
        d["topic"]: sorted(TopicPartition(d["topic"], p["partition"]) for p in d["partitions"])
        for d in described
    }


async def group_lag(bootstrap: str, group: str, topic_names: Iterable[str]) -> dict[str, int]:
    return (await groups_lag(bootstrap, {group: tuple(topic_names)}))[group]


async def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Everything currently retained in a topic, without joining any consumer group."""
    async with admin_client(bootstrap) as admin:
        tps = (await partitions_of(admin, {topic}))[topic]
    if not tps:
        return []
    consumer = _reader(bootstrap)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for records in batch.values():
                values.extend(r.value for r in records if r.value is not None)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return values
    finally:
        await consumer.stop()


async def group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """The consumer group's state ("Stable", "PreparingRebalance", "Empty", ...) and how
    many members it has."""
    async with admin_client(bootstrap) as admin:
        try:
            (response,) = await admin.describe_consumer_groups([group])
        except GroupCoordinatorNotAvailableError:
            # A fresh broker creates its offsets topic on the first group request.
            return "CoordinatorNotAvailable", 0
    described = response.to_object()["groups"][0]
    return described["state"], len(described["members"])


def _reader(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer in no group, for offsets and reads by assignment."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **process_client_options(),
    )


def process_client_options() -> dict[str, Any]:
    """Security options from the process's settings, for the helpers called without them."""
    from shared.settings import get_settings

    return client_options(get_settings())
