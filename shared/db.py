"""PostgreSQL access: one pool per process and idempotent, ordered migrations."""

from __future__ import annotations

from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# What a store's helpers accept: a plain connection or one acquired from a pool.
Connection = asyncpg.Connection | PoolConnectionProxy

# Any constant works; it only has to be the same for every process of the project.
MIGRATION_LOCK_KEY = 0x7472_6163_6570_726F


async def connect_pool(dsn: str, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool


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
