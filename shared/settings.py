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

from pydantic import AliasChoices, Field
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
