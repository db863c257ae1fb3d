"""A stopped app leaves no connection open on PostgreSQL: a connection still checked out when the
engine closed (a background task cancelled, never awaited) held its locks until the process ended,
and the next reset of the database (a TRUNCATE) waited on it for ever."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import POSTGRES_URL, app_client, connections_left


async def open_connections() -> list:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await connections_left(connection)
    finally:
        await connection.close()


@pytest.mark.parametrize("backend", ["postgres"], indirect=False)
async def test_a_stopped_app_leaves_no_connection_open(settings_for, backend):
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured")
    for round_ in range(3):
        async with app_client(settings_for(rate_limits_enabled=False, metrics_token="t")) as client:
            assert (await client.post("/chat/api/identity", json={})).status_code == 200
            for text in ("/start", "bonjour"):
                response = await client.post("/chat/api/messages", json={"client_id": uuid.uuid4().hex, "text": text})
                assert response.status_code == 200
            assert (await client.get("/metrics", headers={"Authorization": "Bearer t"})).status_code == 200
        assert await open_connections() == [], f"round {round_}"
