"""PostgreSQL's pool per process comes from the environment (ALLERVERS_DATABASE_POOL_SIZE,
ALLERVERS_DATABASE_MAX_OVERFLOW): the app started with them holds that many connections open and
opens no more than the overflow beyond them."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from tests.conftest import app_client


async def test_the_pool_follows_the_environment(settings_for, backend, monkeypatch):
    if backend != "postgres":
        pytest.skip("SQLite keeps one connection whatever the settings")
    monkeypatch.setenv("ALLERVERS_DATABASE_POOL_SIZE", "3")
    monkeypatch.setenv("ALLERVERS_DATABASE_MAX_OVERFLOW", "1")
    settings = settings_for()  # (what the fixture does not set is read from the environment)
    assert (settings.database_pool_size, settings.database_max_overflow) == (3, 1)
    async with app_client(settings) as client:
        engine = client.app.state.rt.engine
        pool = engine.sync_engine.pool
        assert pool.size() == 3
        release = asyncio.Event()
        busy = 0
        most = 0

        async def hold() -> None:
            nonlocal busy, most
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
                busy += 1
                most = max(most, busy)
                await release.wait()
                busy -= 1

        holders = [asyncio.create_task(hold()) for _ in range(6)]
        for _ in range(100):
            if most >= 4:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert most == 4  # 3 + 1 overflow at once; the others wait for a connection
        release.set()
        await asyncio.gather(*holders)
        assert pool.checkedin() <= 3  # the overflow connection is closed again when returned
