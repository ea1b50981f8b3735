"""Typed configuration, read once per process.

Every setting has the env prefix ``PROMOTE_``. Kafka and PostgreSQL endpoints resolve
in this order: explicit setting (``PROMOTE_KAFKA_BOOTSTRAP_SERVERS`` or the conventional
``KAFKA_BOOTSTRAP_SERVERS``; ``PROMOTE_DATABASE_URL``), then the endpoints file that
``promote up`` writes into the state folder, so a service started by hand next to a
local stack just works.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import topics

ENDPOINTS_FILE = "endpoints.json"
# Kafka's conventional local address, when neither a setting nor `promote up` names one.
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROMOTE_", extra="ignore", frozen=True)

    state_dir: Path = Path(".promote")
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMOTE_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    database_url: str | None = None

    topic_partitions: int = Field(default=3, ge=1, le=1024)
    raw_retention_ms: int = Field(default=6 * topics.HOUR_MS, ge=60_000)
    kept_retention_ms: int = Field(default=30 * topics.DAY_MS, ge=-1)

    ingest_http_host: str = "127.0.0.1"
    ingest_http_port: int = Field(default=0, ge=0, le=65535)
    ingest_api_key: str | None = None
    ingest_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    assembly_quiet_ms: int = Field(default=1_500, ge=0)
    assembly_max_wait_ms: int = Field(default=30_000, ge=1)
    assembly_max_traces: int = Field(default=10_000, ge=1)
    assembly_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)

    # Diverse exemplars a pattern keeps; near-copies of one are counted, not forwarded.
    dedupe_max_exemplars: int = Field(default=3, ge=1)
    # Patterns a dedupe instance keeps in memory between batches (4 to 15 KB each), read
    # again only when another instance wrote their bucket; 0 reads every batch's afresh.
    dedupe_kept_patterns: int = Field(default=10_000, ge=0)

    # Reliability (README "Delivery guarantees" and RELIABILITY.md).
    # One size rule: producer requests, topic max.message.bytes, the local broker's
    # message.max.bytes and consumer fetches are all raised to this cap; ingest cuts an
    # event's longest strings to fit within 3/4 of it and marks it truncated.
    kafka_max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024 * 1024, le=64 << 20)
    # Kafka security for every client (stages, receiver, admin, CLI): PLAINTEXT, SSL,
    # SASL_PLAINTEXT or SASL_SSL; SASL mechanism SCRAM-SHA-256/512 or PLAIN.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_check_hostname: bool = True
    # One producer configuration for every producer the project creates (stages, receiver,
    # `promote send`, replay, review): the stages publish a whole batch before awaiting its
    # acknowledgements, so a few milliseconds of linger fill large record batches.
    kafka_linger_ms: int = Field(default=5, ge=0, le=1000)
    kafka_batch_bytes: int = Field(default=256 * 1024, ge=16 * 1024)
    # How long the broker may hold a consumer's fetch when none of its partitions has new
    # records. A consumer has one fetch in flight per broker, for the partitions it holds
    # no records of: while it works through one partition's records, new records on that
    # partition wait for the pending fetch to return, up to this long (Kafka's 500 ms
    # default showed as half-second stalls between a stage's batches at a steady rate).
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=1, le=10_000)
    # The same for a stage's side subscriptions (coverage, reviews, withdrawals): nothing
    # waits on them by the millisecond, and an idle consumer fetches once per wait: at
    # 50 ms the broker spent ~0.5 ms of CPU per empty fetch, ~10 % of a core for the
    # pipeline's idle consumers.
    kafka_side_fetch_max_wait_ms: int = Field(default=500, ge=1, le=10_000)
    # Records a stage takes from one poll, and how long it waits for them.
    stage_batch_records: int = Field(default=500, ge=1)
    stage_batch_timeout_ms: int = Field(default=100, ge=1)
    # After a poll that returned records, how long the stage waits for more that arrived
    # while it worked (see shared.stage.poll_promptly; 0 turns it off).
    stage_batch_top_up_ms: int = Field(default=10, ge=0, le=1000)
    # Allocations between two young-generation collections of the garbage collector in a
    # stage process (Python's default is 700; 0 keeps it). See shared.ops.settle_heap. Well
    # above what a batch holds alive (a parsed trace event is ~100 tracked objects, a batch
    # of 500 with its observations ~60,000): a threshold below that makes every young
    # collection walk the batch in hand, which cost ingest and dedupe ~14 % of their CPU
    # at 50,000 (gc callbacks in an end-to-end run).
    stage_gc_threshold: int = Field(default=250_000, ge=0)

    # PostgreSQL timeouts: connecting, one command (client side), one statement (server
    # side), and a transaction left idle.
    db_connect_timeout_s: float = Field(default=10.0, gt=0)
    db_command_timeout_s: float = Field(default=30.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    db_idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=0)

    # Retention of per-trace rows, in days (0 keeps them for ever). dedupe_traces must
    # outlive the Kafka retention of traces.normalized (a redelivery must still be seen
    # as one); decisions and scoring_promotions are the audit trail and budget history.
    retention_dedupe_traces_days: int = Field(default=30, ge=0)
    retention_decisions_days: int = Field(default=180, ge=0)
    retention_scoring_promotions_days: int = Field(default=180, ge=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)

    # The OTLP/HTTP receiver's back-pressure.
    ingest_http_max_concurrency: int = Field(default=8, ge=1)
    ingest_http_max_spans: int = Field(default=20_000, ge=1)
    ingest_http_max_attribute_bytes: int = Field(default=256 * 1024, ge=1024)
    ingest_http_send_timeout_s: float = Field(default=10.0, gt=0)
    ingest_http_retry_after_s: int = Field(default=5, ge=1)

    # The review web app (issue 15): its address and the key people sign in with (else
    # one generated once into the state folder, like the ingest key).
    review_http_host: str = "127.0.0.1"
    review_http_port: int = Field(default=0, ge=0, le=65535)
    review_key: str | None = None
    # Set when the app is served over HTTPS (behind a proxy): cookies get the Secure flag.
    review_secure_cookies: bool = False

    policy_path: Path | None = None
    log_level: str = "INFO"

    def endpoints_path(self) -> Path:
        return self.state_dir / ENDPOINTS_FILE

    def recorded_endpoints(self) -> dict[str, str]:
        path = self.endpoints_path()
        if not path.exists():
            return {}
        data: dict[str, str] = json.loads(path.read_text())
        return data

    def bootstrap_servers(self) -> str:
        if self.kafka_bootstrap_servers:
            return self.kafka_bootstrap_servers
        recorded = self.recorded_endpoints().get("kafka_bootstrap_servers")
        return recorded or DEFAULT_BOOTSTRAP

    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        recorded = self.recorded_endpoints().get("database_url")
        if recorded:
            return recorded
        raise RuntimeError("No database known: run `promote up`, or set PROMOTE_DATABASE_URL.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
