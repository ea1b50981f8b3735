"""Starts and stops the local stack: broker, database, and the five stage processes.

Each stage is its own OS process (`faststream run services.<stage>.app:app`) with its
pid file and log in the state folder; `up` is idempotent, `down` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from promoter.kafka_local import REPO_ROOT, LocalKafka, _alive, free_port, stop_process_group
from promoter.postgres_local import LocalPostgres
from shared.db import connect_pool, migrate
from shared.kafka import ensure_topics
from shared.settings import ENDPOINTS_FILE, Settings

STAGES = ("ingest", "dedupe", "redaction", "scoring", "fixture_writer")
# Beside the pipeline: the review stage keeps held cases for people (services/review).
REVIEW = "review"
RECEIVER = "ingest_http"
API_KEY_FILE = "ingest_api_key"
REVIEW_HTTP = "review_http"  # the review web app (services/review/web.py)
REVIEW_KEY_FILE = "review_key"
RECEIVER_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap_servers: str
    database_url: str
    kafka_managed: bool
    postgres_managed: bool
    ingest_http: str | None = None
    review_http: str | None = None

    def public(self) -> dict[str, str | bool | None]:
        return {
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
            "database_url": redact_password(self.database_url),
            "ingest_http": self.ingest_http,
            "review_http": self.review_http,
            "kafka_managed": self.kafka_managed,
            "postgres_managed": self.postgres_managed,
        }


def redact_password(url: str) -> str:
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


def make_private_dir(path: Path) -> None:
    """The state folder holds the DSN, the ingest key, logs and the database: 0700. As root
    the embedded PostgreSQL server runs as a system user of its own, which must traverse
    the folder to reach its data directory: 0711 then (no listing; every file in it that
    holds a secret is 0600, and the logs folder is 0700)."""
    mode = 0o711 if os.geteuid() == 0 else 0o700
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    path.chmod(mode)


def write_private(path: Path, text: str) -> None:
    """Writes ``text`` to a file only its owner can read (0600), never readable meanwhile."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.state_dir.resolve()
        self.kafka = LocalKafka(self.state)
        self.postgres = LocalPostgres(self.state)

    # -- infrastructure -------------------------------------------------------------
    def start_infrastructure(self) -> Endpoints:
        make_private_dir(self.state)
        kafka_managed = not self.settings.kafka_bootstrap_servers
        bootstrap = self.settings.kafka_bootstrap_servers or self.kafka.start()
        postgres_managed = not self.settings.database_url
        dsn = self.settings.database_url or self.postgres.start()
        previous = self.endpoints()
        receiver = previous.ingest_http if previous and self.stage_pid(RECEIVER) else None
        port = self.settings.ingest_http_port or free_port()
        receiver = receiver or f"http://{self.settings.ingest_http_host}:{port}/v1/traces"
        review = previous.review_http if previous and self.stage_pid(REVIEW_HTTP) else None
        review_port = self.settings.review_http_port or free_port()
        review = review or f"http://{self.settings.review_http_host}:{review_port}/"
        endpoints = Endpoints(bootstrap, dsn, kafka_managed, postgres_managed, receiver, review)
        # The DSN may carry the database password: owner-only, like the state folder.
        write_private(self.state / ENDPOINTS_FILE, json.dumps(asdict(endpoints), indent=2))
        asyncio.run(self._prepare(bootstrap, dsn))
        return endpoints

    def api_key(self) -> str:
        """The receiver's key: the setting, or one generated once into the state folder."""
        if self.settings.ingest_api_key:
            return self.settings.ingest_api_key
        make_private_dir(self.state)
        path = self.state / API_KEY_FILE
        if not path.exists():
            write_private(path, secrets.token_urlsafe(32))
        path.chmod(0o600)  # a key file left readable by an older version is tightened
        return path.read_text().strip()

    def review_key(self) -> str:
        """The key people sign in to the review app with: the setting, or one generated
        once into the state folder (0600), like the ingest key."""
        if self.settings.review_key:
            return self.settings.review_key
        make_private_dir(self.state)
        path = self.state / REVIEW_KEY_FILE
        if not path.exists():
            write_private(path, secrets.token_urlsafe(24))
        path.chmod(0o600)
        return path.read_text().strip()

    async def _prepare(self, bootstrap: str, dsn: str) -> None:
        await ensure_topics(bootstrap, self.settings)
        pool = await connect_pool(dsn)
        try:
            await migrate(pool)
        finally:
            await pool.close()

    def endpoints(self) -> Endpoints | None:
        path = self.state / ENDPOINTS_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return Endpoints(**data)

    # -- stage processes ------------------------------------------------------------
    def _pid_file(self, stage: str) -> Path:
        return self.state / "run" / f"{stage}.pid"

    def stage_pid(self, stage: str) -> int | None:
        path = self._pid_file(stage)
        if not path.exists():
            return None
        pid = int(path.read_text())
        return pid if _alive(pid) else None

    def _command(self, stage: str, endpoints: Endpoints) -> list[str]:
        if stage == RECEIVER:
            assert endpoints.ingest_http is not None
            address = urlsplit(endpoints.ingest_http)
            return [
                sys.executable,
                "-m",
                "uvicorn",
                "services.ingest.http:app",
                "--host",
                address.hostname or "127.0.0.1",
                "--port",
                str(address.port),
                "--no-access-log",
            ]
        if stage == REVIEW_HTTP:
            assert endpoints.review_http is not None
            address = urlsplit(endpoints.review_http)
            return [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "services.review.web:from_settings",
                "--host",
                address.hostname or "127.0.0.1",
                "--port",
                str(address.port),
                "--no-access-log",
            ]
        return [sys.executable, "-m", "faststream", "run", f"services.{stage}.app:app"]

    def start_stage(
        self,
        stage: str,
        endpoints: Endpoints,
        instance: int = 0,
        env: dict[str, str] | None = None,
    ) -> int:
        """Starts the stage unless it runs; ``env`` overrides its environment last."""
        name = stage if instance == 0 else f"{stage}.{instance}"
        existing = self.stage_pid(name)
        if existing is not None:
            return existing
        (self.state / "run").mkdir(parents=True, exist_ok=True)
        (self.state / "logs").mkdir(parents=True, exist_ok=True, mode=0o700)
        env = {
            **os.environ,
            **self._explicit_settings(),
            "PROMOTE_KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap_servers,
            "PROMOTE_DATABASE_URL": endpoints.database_url,
            "PROMOTE_STATE_DIR": str(self.state),
            "PROMOTE_INGEST_API_KEY": self.api_key(),
            "PROMOTE_REVIEW_KEY": self.review_key(),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        with (self.state / "logs" / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                self._command(stage, endpoints),
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pid_file(name).write_text(str(process.pid))
        if stage == RECEIVER and endpoints.ingest_http:
            self._wait_listening(endpoints.ingest_http, process)
        if stage == REVIEW_HTTP and endpoints.review_http:
            self._wait_listening(endpoints.review_http, process)
        return process.pid

    def _wait_listening(self, url: str, process: subprocess.Popen[bytes]) -> None:
        """`up` returns only once the receiver accepts connections, so a client started
        right after it is not refused."""
        address = urlsplit(url)
        deadline = time.monotonic() + RECEIVER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the server exited; see {self.state / 'logs'}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((address.hostname, address.port), timeout=1),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listened on {url}")

    def _explicit_settings(self) -> dict[str, str]:
        """Settings given to this Stack in code reach the stage processes as env vars."""
        given = self.settings.model_dump(exclude_unset=True, mode="json")
        return {f"PROMOTE_{k.upper()}": str(v) for k, v in given.items() if v is not None}

    def stop_stage(self, name: str, timeout_s: float = 30.0) -> None:
        pid = self.stage_pid(name)
        if pid is not None:
            stop_process_group(pid, timeout_s)
        self._pid_file(name).unlink(missing_ok=True)

    def running_stage_names(self) -> list[str]:
        run = self.state / "run"
        if not run.exists():
            return []
        return sorted(p.stem for p in run.glob("*.pid"))

    # -- whole stack ----------------------------------------------------------------
    def up(self) -> Endpoints:
        endpoints = self.start_infrastructure()
        for stage in (*STAGES, RECEIVER, REVIEW, REVIEW_HTTP):
            self.start_stage(stage, endpoints)
        return endpoints

    def down(self) -> None:
        for name in self.running_stage_names():
            self.stop_stage(name)
        self.kafka.stop()
        self.postgres.stop()
