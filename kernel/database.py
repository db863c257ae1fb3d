"""Async SQLAlchemy engine, session factory and the declarative Base shared by every package."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import JSON, MetaData, any_, bindparam, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

log = logging.getLogger(__name__)

# JSON on SQLite, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def one_of(session, column, values):
    """`column IN values` whose SQL text does not depend on how many values there are, on
    PostgreSQL: `column = ANY($1::type[])`, one array parameter. An IN list renders one placeholder
    per value, so a batch of 7 and one of 8 were two statements, each prepared anew on every
    connection (asyncpg prepares each text once per connection, and SQLAlchemy's cache keeps 100):
    with the intake's batch sizes, 350 texts over 300 batches and a prepare in every batch. SQLite
    keeps the IN list (no arrays; nothing is prepared there)."""
    values = list(values)
    if session.bind.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def insert_for(session):
    """The session's dialect's INSERT construct (the one with `on_conflict_do_nothing`)."""
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


def make_engine(url: str, pool_size: int = 20, max_overflow: int = 5) -> AsyncEngine:
    """hide_parameters: a database error's message (logged with its traceback) never carries the
    values of the statement — message bodies and personal data stay out of the logs. `pool_size` /
    `max_overflow`: PostgreSQL's connections per process (Settings.database_pool_size, ..._max_overflow)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one writer: one connection serialises writes without "database is locked".
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            # Deleted rows are overwritten with zeros, not left in free pages (erasure, purge).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine
    # LIFO: the connection just returned is taken again, so that the busy ones keep their prepared
    # statements warm (asyncpg prepares each statement once per connection) and the rest stay idle.
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
                                 pool_use_lifo=True, hide_parameters=True)
    engine.sync_engine.dialect.do_ping = _ping_in_one_round_trip
    return engine


def _ping_in_one_round_trip(dbapi_connection) -> bool:
    """The pre-ping of every checkout (a connection closed by a database restart is replaced
    unseen) as one round trip: `BEGIN; SELECT 1; ROLLBACK` in one message of the simple protocol.
    SQLAlchemy's asyncpg ping sends the same three apart (BEGIN, a prepared `;`, ROLLBACK: the
    transaction for pgbouncer's transaction mode) — three round trips on every transaction, a
    quarter of a single message's."""
    from sqlalchemy.util.concurrency import await_

    connection = dbapi_connection.driver_connection
    if connection.is_closed():
        return False  # disconnected: the pool replaces it (and the connections older than it)
    try:
        # One simple-protocol message; inside a transaction rolled back, as SQLAlchemy's own ping:
        # PostgreSQL's count of commits stays the count of real transactions (bench_processes).
        await_(connection.execute("BEGIN; SELECT 1; ROLLBACK"))
    except Exception as error:
        if connection.is_closed():
            return False
        dbapi_connection._handle_exception(error)  # translated as the dialect's own ping does
    return True


async def checkpoint(engine: AsyncEngine, attempts: int = 5) -> bool:
    """SQLite: copy the WAL into the database file and truncate it, so that rows just deleted
    (an erasure, a purge) leave no copy in `-wal`; with secure_delete they are zeroed in the file.
    True when the WAL is empty afterwards. Nothing to do on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return True
    for attempt in range(attempts):
        async with engine.connect() as connection:
            busy = (await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")).first()
        if busy is None or not busy[0]:
            return True
        await asyncio.sleep(0.05 * (attempt + 1))  # a reader of another process: try again shortly
    log.warning("WAL checkpoint busy after %d attempts: deleted rows stay in the WAL until the next one", attempts)
    return False


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    # No autoflush: a transaction writes its rows in one flush at commit (batched INSERTs);
    # code that needs an id flushes explicitly.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


from sqlalchemy import DateTime, TypeDecorator  # noqa: E402


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def slices(items: list, size: int):
    """`items` in lists of at most `size`: an IN (...) list or a bulk write kept under PostgreSQL's
    limit of bind parameters per statement."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
