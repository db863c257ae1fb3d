"""A PostgreSQL connection closed under the app (the database restarted, an idle timeout): the
pool's ping at checkout (kernel.database: one round trip) replaces it, and nothing is lost."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from sqlalchemy import select

from conversations.models import Message
from tests.conftest import app_client
from tests.webchat import Person


async def close_pooled_connections(engine) -> int:
    """Terminate, from outside, every connection resting in the app's pool (only those: the test
    database is shared with other sessions)."""
    connections = [await engine.connect() for _ in range(engine.sync_engine.pool.checkedin())]
    pids = [(await c.exec_driver_sql("SELECT pg_backend_pid()")).scalar() for c in connections]
    for connection in connections:
        await connection.close()
    killer = await asyncpg.connect(engine.url.render_as_string(hide_password=False)
                                   .replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for pid in pids:
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await killer.close()
    return len(pids)


async def test_connections_closed_under_the_app_are_replaced_unseen(settings_for, backend, caplog):
    if backend != "postgres":
        pytest.skip("PostgreSQL's connections")
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        person = await Person.joined(client)
        assert await person.send("/start")
        assert await close_pooled_connections(rt.engine) >= 1
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            answer = await person.send(choice="oui")  # consent given: the menu follows
        assert answer, "the bot answered"
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(
            ("conversations", "sqlalchemy", "allervers"))]
        async with rt.sessionmaker() as session:
            handled = (await session.execute(select(Message.handled_at).where(Message.direction == "in"))).all()
        assert len(handled) == 2 and all(h is not None for (h,) in handled)
