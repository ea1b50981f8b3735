"""The database side of reliability on the real PostgreSQL server: retention deletes only
expired per-trace rows, a stage waits for a database that is down at its start, and a NUL
character in a promoted trace is stored instead of failing the insert."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pytest

from promoter.supervisor import Endpoints
from shared.db import connect_pool
from shared.settings import Settings

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def database_socket(dsn: str) -> str | tuple[str, int]:
    """The embedded server listens on a unix socket (``?host=<dir>``), others on TCP."""
    parts = urlsplit(dsn)
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    if socket_dir:
        (path,) = Path(socket_dir).glob(".s.PGSQL.*[0-9]")
        return str(path)
    return (parts.hostname or "127.0.0.1", parts.port or 5432)


async def open_database_socket(
    target: str | tuple[str, int],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if isinstance(target, str):
        return await asyncio.open_unix_connection(target)
    return await asyncio.open_connection(*target)


class SwitchableProxy:
    """A TCP proxy in front of PostgreSQL that closes every connection while 'down'."""

    def __init__(self, dsn: str) -> None:
        self.target = database_socket(dsn)
        self.up = False
        self.refused = 0
        self.refused_twice = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            self.refused += 1
            if self.refused >= 2:
                self.refused_twice.set()
            writer.close()
            return
        up_reader, up_writer = await open_database_socket(self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_stage_whose_database_is_down_at_start_waits_for_it_instead_of_exiting(
    infra: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.scoring import app as scoring

    real = urlsplit(infra.database_url)
    proxy = SwitchableProxy(infra.database_url)
    port = await proxy.start()
    user = real.netloc.rsplit("@", 1)[0]
    proxied = urlunsplit(real._replace(netloc=f"{user}@127.0.0.1:{port}", query=""))
    monkeypatch.setattr(scoring, "settings", Settings(database_url=proxied))
    context: Any = MagicMock()
    try:
        starting = asyncio.ensure_future(scoring.lifespan(context).__aenter__())
        await asyncio.wait_for(proxy.refused_twice.wait(), 30)
        assert not starting.done(), "the stage is still waiting, not exited"
        proxy.up = True
        await asyncio.wait_for(starting, 60)
        store = dict(c.args for c in context.set_global.call_args_list)["store"]
        budget = await store.budget("t", "p", "v", NOW.date())
        assert budget.promoted_for_pattern == 0
        await store._pool.close()
    finally:
        await proxy.stop()


async def test_a_promoted_trace_with_a_nul_character_is_stored(infra: Endpoints) -> None:
    from services.fixture_writer.logic import build_fixtures
    from services.fixture_writer.store import PostgresFixtureStore
    from tests.support.builders import refund_trace, scored

    trace = refund_trace(trace_id="ab" * 15 + "0f")
    span = trace.spans[0].model_copy(update={"input": "refund\x00 please", "output": "ok\x00"})
    event = scored(trace.model_copy(update={"spans": (span, *trace.spans[1:])}), "nul-policy")
    pool = await connect_pool(infra.database_url)
    try:
        store = PostgresFixtureStore(pool)
        await store.record_decision(event, NOW)
        written = [await store.write(d, event, NOW) for d in build_fixtures(event)]
        assert written
        bodies = await pool.fetch(
            "SELECT body::text AS b FROM fixture_versions WHERE source_trace_id = $1",
            event.trace_id,
        )
        assert bodies and all("\\u0000" not in r["b"] for r in bodies)
        assert any("\ufffd" in r["b"] for r in bodies)
    finally:
        await pool.close()


def test_the_database_pool_sets_a_statement_timeout(infra: Endpoints) -> None:
    async def check() -> str:
        pool = await connect_pool(
            infra.database_url, settings=Settings(db_statement_timeout_ms=1234)
        )
        try:
            value: str = await pool.fetchval("SHOW statement_timeout")
            return value
        finally:
            await pool.close()

    assert asyncio.run(check()) == "1234ms"


@pytest.mark.parametrize("unused", [None])
async def test_a_statement_over_the_timeout_is_cancelled_as_a_transient_failure(
    infra: Endpoints, unused: None
) -> None:
    from shared.errors import is_transient

    pool = await connect_pool(infra.database_url, settings=Settings(db_statement_timeout_ms=200))
    try:
        with pytest.raises(asyncpg.QueryCanceledError) as cancelled:
            await pool.execute("SELECT pg_sleep(5)")
        assert is_transient(cancelled.value)
    finally:
        await pool.close()
