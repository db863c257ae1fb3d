"""The benchmarks' databases: a PostgreSQL database and a Redis database they may wipe."""

from __future__ import annotations

import asyncio


def reset_postgres(url: str) -> None:
    """An empty public schema in the database of `url` (created when missing)."""
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def reset() -> None:
        try:
            connection = await asyncpg.connect(dsn, timeout=3)
        except asyncpg.InvalidCatalogNameError:
            base, name = dsn.rsplit("/", 1)
            admin = await asyncpg.connect(base + "/postgres", timeout=3)
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            connection = await asyncpg.connect(dsn, timeout=3)
        try:
            await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        finally:
            await connection.close()

    asyncio.run(reset())


def reset_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    client.flushdb()
    client.close()
