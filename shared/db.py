"""PostgreSQL access: one pool per process and idempotent, ordered migrations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from types import FrameType
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from shared.errors import retry_transient
from shared.settings import Settings, get_settings

# What a store's helpers accept: a plain connection or one acquired from a pool.
Connection = asyncpg.Connection | PoolConnectionProxy

# Any constant works; it only has to be the same for every process of the project.
MIGRATION_LOCK_KEY = 0x7472_6163_6570_726F


async def keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool (asyncpg still rolls back a
    transaction left open): the project takes only transaction-scoped advisory locks (the
    migration lock, the one session lock, is released in its own ``finally``), never
    LISTENs, SETs or holds cursors. asyncpg's default reset costs a round trip on every
    release (profiling)."""


async def connect_pool(
    dsn: str, min_size: int = 1, max_size: int = 5, settings: Settings | None = None
) -> asyncpg.Pool:
    """A pool whose every wait is bounded: connecting, each command (client side), each
    statement (server side) and a transaction left idle (README Configuration)."""
    settings = settings or get_settings()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=settings.db_connect_timeout_s,
        command_timeout=settings.db_command_timeout_s,
        server_settings={
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(settings.db_idle_in_transaction_timeout_ms),
        },
        reset=keep_session,
    )
    assert pool is not None
    return pool


async def open_store_pool(
    dsn: str, what: str, settings: Settings | None = None, max_delay_s: float | None = None
) -> asyncpg.Pool:
    """A stage's pool, migrated. A database that is down, starting, or not resolvable yet
    is waited for (tenacity, exponential backoff with jitter): a stage started before its
    database comes up, or restarted during an outage, does not exit."""

    async def attempt() -> asyncpg.Pool:
        pool = await connect_pool(dsn, settings=settings)
        try:
            await migrate(pool)
        except BaseException:
            await pool.close()
            raise
        return pool

    async with stoppable():
        pool: asyncpg.Pool = await retry_transient(
            f"{what} database", attempt, max_delay_s=max_delay_s
        )
    return pool


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.asynccontextmanager
async def stoppable() -> AsyncIterator[None]:
    """A stop signal (SIGTERM, SIGINT) during the block cancels it. FastStream's own
    handler only sets a flag its run loop reads once startup is over: a stage waiting at
    start for a database that is down would ignore `promote down` (and be SIGKILLed after
    its timeout).

    The signal is caught at the interpreter's level, not the event loop's: an event loop
    (asyncio's, uvloop's) learns of a signal through the wakeup fd, which the interpreter
    writes whatever Python handler is installed, so the loop's own handlers (FastStream's)
    still run, and no loop's private handler table is read. The handlers in place before
    are put back."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None or threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: nothing to do
        return
    stopped = False

    def on_signal(sig: int, frame: FrameType | None) -> None:
        nonlocal stopped
        stopped = True
        handler = previous[signal.Signals(sig)]
        if callable(handler):
            handler(sig, frame)
        loop.call_soon_threadsafe(task.cancel)

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        yield
    except asyncio.CancelledError:
        if stopped:
            raise SystemExit("stopped by a signal while waiting at start") from None
        raise
    finally:
        for sig, handler in previous.items():
            # None: the handler before was not set from Python, and cannot be put back.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def migration_scripts() -> list[tuple[str, str]]:
    folder = resources.files("shared").joinpath("migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, folder.joinpath(name).read_text()) for name in names]


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Applies the migrations not yet applied, in name order, each in its own transaction.
    An advisory lock makes concurrent starts of several services safe."""
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       name text PRIMARY KEY,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for name, sql in migration_scripts():
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", name)
                applied_now.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


# PostgreSQL refuses the NUL character in text and jsonb ("unsupported Unicode escape
# sequence"): a trace carrying one must not fail its insert. \u0000 escapes (those not
# themselves escaped by a backslash) become U+FFFD, as invalid UTF-8 would.
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def jsonb(value: Any) -> str:
    """``value`` as JSON text PostgreSQL's jsonb accepts."""
    text = json.dumps(value)
    # The substring test is a C scan; the regular expression's is not, and bodies are long.
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def pg_text(value: str) -> str:
    return value.replace("\x00", "\ufffd")


_PARAMETER = re.compile(r"\$(\d+)")
Rows = list[dict[str, Any]]


class Reads:
    """Several SELECTs answered in one round trip. Each read is written as a statement of
    its own (parameters $1, $2, ...) and comes back as its rows in JSON, so a batch that
    must read ten tables waits on the database once: under load a round trip costs more
    than the rows it carries. Timestamps come back as ISO text (``instant`` reads them)."""

    def __init__(self) -> None:
        self._parts: list[tuple[str, Callable[[Rows], None]]] = []
        self._params: list[Any] = []

    def add(self, sql: str, params: Sequence[Any], apply: Callable[[Rows], None]) -> None:
        """``apply`` is given the read's rows, as dicts by column name, once they come."""
        base = len(self._params)
        renumbered = _PARAMETER.sub(lambda m: f"${int(m.group(1)) + base}", sql)
        self._params += params
        self._parts.append((renumbered, apply))

    async def run(self, db: Connection) -> None:
        parts, self._parts, params, self._params = self._parts, [], self._params, []
        if not parts:
            return
        columns = ", ".join(
            f"(SELECT coalesce(json_agg(q), '[]') FROM ({sql}) q)" for sql, _ in parts
        )
        row = await db.fetchrow(f"SELECT {columns}", *params)
        assert row is not None
        for (_, apply), rows in zip(parts, row, strict=True):
            # orjson: with the standard library, parsing the rows was over half of
            # dedupe's prefetch (profiled at 200 traces/s).
            apply(orjson.loads(rows))


def instant(text: str) -> datetime:
    """A timestamptz of a JSON read, in UTC as asyncpg gives it."""
    return datetime.fromisoformat(text).astimezone(UTC)
