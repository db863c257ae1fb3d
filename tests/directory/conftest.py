"""Directory fixtures: a SQLite file loaded once with the shipped data, the Directory built on it,
and a fresh database per test for import tests (SQLite, plus PostgreSQL when
ALLERVERS_TEST_POSTGRES_URL is set: the public schema is dropped and recreated)."""

from __future__ import annotations

import asyncio
import os

import pytest

from kernel.database import make_engine, make_sessionmaker
from allervers.migrate import upgrade
from kernel.settings import Settings

POSTGRES_URL = os.environ.get("ALLERVERS_TEST_POSTGRES_URL")
DB_BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


async def _reset_postgres(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def shipped_database_url(tmp_path_factory) -> str:
    """A migrated SQLite file with the shipped open data (first-run load), built once."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('directory')}/shipped.db"
    asyncio.run(_migrate_and_load_shipped(url))
    return url


async def _migrate_and_load_shipped(url: str) -> None:
    """Migrate the database at `url` and load the shipped open data of the test territories."""
    from directory.importer import ensure_loaded

    engine = make_engine(url)
    try:
        await upgrade(engine)
        await ensure_loaded(make_sessionmaker(engine), departements=Settings().shipped_departements)
    finally:
        await engine.dispose()


def _directory_of(url: str):
    """The places index of an already loaded database (no import)."""
    from directory.finder import Directory

    async def load():
        engine = make_engine(url)
        try:
            return await Directory.load(make_sessionmaker(engine), autoload=False)
        finally:
            await engine.dispose()

    return asyncio.run(load())


@pytest.fixture(scope="session")
def shipped_directory(shipped_database_url):
    return _directory_of(shipped_database_url)


@pytest.fixture(scope="session")
def communes():
    from directory.finder import shipped_communes

    return shipped_communes()


@pytest.fixture(params=DB_BACKENDS)
async def sessionmaker(request, tmp_path):
    """A fresh, migrated database for one test."""
    if request.param == "postgres":
        await _reset_postgres(POSTGRES_URL)
        url = POSTGRES_URL
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/directory.db"
    engine = make_engine(url)
    await upgrade(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def shipped_postgres_url():
    """A PostgreSQL database of its own (not the one every app test resets), migrated and loaded
    with the shipped open data of the test territories, built once; dropped at the end."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured (ALLERVERS_TEST_POSTGRES_URL)")
    import asyncpg

    server = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = POSTGRES_URL.rsplit("/", 1)[1] + "_places"
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name

    async def on_server(statement: str) -> None:
        connection = await asyncpg.connect(server)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def build():
        await on_server(f'DROP DATABASE IF EXISTS "{name}"')
        await on_server(f'CREATE DATABASE "{name}"')
        await _migrate_and_load_shipped(url)

    asyncio.run(build())
    yield url
    asyncio.run(on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def shipped_postgres_directory(shipped_postgres_url):
    return _directory_of(shipped_postgres_url)


@pytest.fixture
def places_backend(request, backend):
    """(the shipped places' database URL, their loaded Directory) for the test's backend: the
    places are read from PostgreSQL too when the test runs on PostgreSQL + Redis."""
    if backend == "postgres":
        return request.getfixturevalue("shipped_postgres_url"), request.getfixturevalue("shipped_postgres_directory")
    return request.getfixturevalue("shipped_database_url"), request.getfixturevalue("shipped_directory")
