"""Shared fixtures: settings per backend (SQLite always; PostgreSQL + Redis when configured),
an in-process app client, and a live server on loopback for end-to-end tests.

Real backends run when ALLERVERS_TEST_POSTGRES_URL / ALLERVERS_TEST_REDIS_URL are set (.ci/run
sets them); otherwise those runs are skipped and the summary says so.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from kernel.settings import Settings

# The shipped open data of the territories the tests ask about, not of all France (the first-run
# import and the index build take a fifth of the time; Settings.directory_departements). A test
# of the whole data sets directory_departements="" itself. Subprocesses inherit it.
TEST_DEPARTEMENTS = "44,69,33,75,35,37,30,13,93,34,15,29"
os.environ.setdefault("ALLERVERS_DIRECTORY_DEPARTEMENTS", TEST_DEPARTEMENTS)

def _private_postgres(base_url: str | None) -> str | None:
    """A database of this test process's own (created from the given server URL), so that
    concurrent test runs on one server never drop each other's tables."""
    if not base_url:
        return None
    import asyncpg

    name = f"allervers_test_{os.getpid()}"
    server = base_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        connection = await asyncpg.connect(server)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return base_url.rsplit("/", 1)[0] + "/" + name


def _drop_private_postgres(url: str | None, base_url: str | None) -> None:
    if not url or not base_url:
        return
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


_BASE_POSTGRES_URL = os.environ.get("ALLERVERS_TEST_POSTGRES_URL")
POSTGRES_URL = _private_postgres(_BASE_POSTGRES_URL)
if POSTGRES_URL:
    os.environ["ALLERVERS_TEST_POSTGRES_URL"] = POSTGRES_URL  # every fixture and subprocess uses it
def _private_redis(url: str | None) -> str | None:
    """Under pytest-xdist (scripts/test runs two workers), a Redis database per worker: tests flush
    theirs, and locks, rate limits and live updates (the channel names its database) stay apart."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw"):
        return url
    base, _, db = url.rpartition("/")
    first = int(db) if db.isdigit() else 0
    return f"{base}/{(first + 1 + int(worker[2:])) % 16}"


REDIS_URL = _private_redis(os.environ.get("ALLERVERS_TEST_REDIS_URL"))
if REDIS_URL:
    os.environ["ALLERVERS_TEST_REDIS_URL"] = REDIS_URL  # every fixture and subprocess uses it

BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])

if os.environ.get("ALLERVERS_TEST_REQUIRE_BACKENDS") and not (POSTGRES_URL and REDIS_URL):
    raise RuntimeError("ALLERVERS_TEST_REQUIRE_BACKENDS is set: PostgreSQL and Redis URLs are mandatory")


# The files measured longest (each file's wall time in its worker during a full run, both backends,
# longest first; every file of 12 s or more, then the rest of the earlier list), collected first: scripts/test spreads whole files over
# pytest-xdist workers (--dist loadfile --no-loadscope-reorder: in collection order; xdist's own
# order is by number of tests, and it handed out the one-test kill -9 files last), and a long file
# handed out last keeps one worker busy alone at the end. Measure again with --durations=0.
LONG_FILES_FIRST = (
    "tests/hardening/test_crash.py", "tests/directory/test_urgent_needs.py", "tests/hardening/test_ratelimit.py",
    "tests/outreach/test_campaign_crash.py", "tests/e2e/test_webchat_access_browser.py",
    "tests/outreach/test_campaigns.py", "tests/hardening/test_bad_input.py",
    "tests/scaleout/test_shutdown_backlog.py", "tests/admin/test_directory.py", "tests/e2e/test_places_flow.py",
    "tests/scaleout/test_processes.py", "tests/directory/test_importer.py",
    "tests/outreach/test_awaiting_confirmation.py", "tests/casework/test_browser.py",
    "tests/outreach/test_outreach_browser.py", "tests/followups/test_browser.py", "tests/rights/test_engine.py",
    "tests/directory/test_refresh.py", "tests/e2e/test_whatsapp_journey.py", "tests/admin/test_admin_browser.py",
    "tests/hardening/test_delivery_faults.py", "tests/hardening/test_fuzz.py", "tests/hardening/test_voice_fuzz.py",
    "tests/outreach/test_awaiting_browser.py", "tests/admin/test_flows_browser.py", "tests/admin/test_cli.py",
    "tests/e2e/test_languages_journey_browser.py", "tests/admin/test_directory_browser.py",
    "tests/hardening/test_sessions.py", "tests/handoff/test_routing_rules.py", "tests/test_locks.py",
    "tests/conversations/test_delivery.py", "tests/e2e/test_places_refresh.py",
    "tests/handoff/test_inbox_browser_phone.py", "tests/directory/test_cli.py", "tests/e2e/test_rights_flow.py",
    "tests/admin/test_flows.py", "tests/hardening/test_fuzz_console.py", "tests/e2e/test_voice.py",
    "tests/e2e/test_languages_journey.py", "tests/e2e/test_action_notice.py", "tests/casework/test_casework.py",
    "tests/hardening/test_identity.py", "tests/conversations/test_commands.py", "tests/admin/test_people.py",
    "tests/admin/test_access_matrix.py", "tests/flows/test_never_stuck_route.py",
    "tests/conversations/test_intake.py", "tests/outreach/test_outreach_fuzz.py", "tests/hardening/test_headers.py",
    "tests/hardening/test_erasure.py", "tests/directory/test_tappable_places.py", "tests/rights/test_estimator.py",
    "tests/casework/test_browser_transfer.py", "tests/handoff/test_inbox_phone.py", "tests/followups/test_journey.py",
    "tests/handoff/test_inbox_fuzz.py", "tests/admin/test_teams_settings_audit.py", "tests/handoff/test_push.py",
    "tests/bots/test_venue_delivery.py", "tests/e2e/test_browser_journey.py", "tests/e2e/test_telegram_journey.py",
    "tests/scaleout/test_ops.py", "tests/casework/test_fuzz.py", "tests/admin/test_flows_processes.py",
    "tests/hardening/test_floods.py", "tests/conversations/test_languages.py", "tests/handoff/test_inbox.py",
    "tests/rights/test_cli.py", "tests/bots/test_stale_press.py", "tests/followups/test_fuzz.py",
    "tests/handoff/test_escalation.py", "tests/outreach/test_campaign_speed.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: index for index, path in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable otherwise


def pytest_report_header(config):
    lines = []
    lines.append("PostgreSQL runs: " + (f"yes ({POSTGRES_URL})" if POSTGRES_URL else
                                        "SKIPPED (set ALLERVERS_TEST_POSTGRES_URL to run them)"))
    lines.append("Redis runs: " + (f"yes ({REDIS_URL})" if REDIS_URL else
                                   "SKIPPED (set ALLERVERS_TEST_REDIS_URL to run them)"))
    return lines


def pytest_unconfigure(config):
    _drop_private_postgres(POSTGRES_URL, _BASE_POSTGRES_URL)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not POSTGRES_URL:
        terminalreporter.write_line("NOTE: PostgreSQL tests were skipped (ALLERVERS_TEST_POSTGRES_URL not set).")
    if not REDIS_URL:
        terminalreporter.write_line("NOTE: Redis tests were skipped (ALLERVERS_TEST_REDIS_URL not set).")


def reset_postgres(url: str) -> None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def run():
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        finally:
            await connection.close()

    # Its own thread and loop: callers may already be inside an event loop.
    worker = threading.Thread(target=lambda: asyncio.run(run()))
    worker.start()
    worker.join()


def _in_thread(coroutine_function):
    """Run a coroutine on a loop of its own thread (callers may already be inside an event loop)."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine_function())
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# A schema at the migrations' head, built once per test process and copied for each test
# (settings_for): the Alembic upgrade from an empty database took 0.3-0.5 s on SQLite and 1-2 s on
# PostgreSQL at every app start. The app's own upgrade still runs, on a database already at head.
_SQLITE_TEMPLATE: Path | None = None


def _sqlite_template() -> Path:
    global _SQLITE_TEMPLATE
    if _SQLITE_TEMPLATE is None:
        import atexit
        import shutil
        import tempfile

        from kernel.database import make_engine
        from allervers.migrate import upgrade

        folder = Path(tempfile.mkdtemp(prefix="allervers-schema-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "head.db"

        async def build() -> None:
            engine = make_engine(f"sqlite+aiosqlite:///{path}")
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()  # the last connection closed: the WAL is folded into the file

        _in_thread(build)
        _SQLITE_TEMPLATE = path
    return _SQLITE_TEMPLATE


def sqlite_at_head(path: Path) -> None:
    """A copy of the migrated template at `path`, unless a database is already there (a second
    settings_for() of one test shares the first one's database, as before)."""
    import shutil

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_sqlite_template(), path)


# Everything a migration defines in the public schema; a test that altered it (a downgrade, a
# version rewritten, a table dropped) is caught by it and the schema is built again.
_PG_FINGERPRINT = """
SELECT md5(coalesce(string_agg(item, '|' ORDER BY item), '')) FROM (
  SELECT 'c:' || table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':'
         || coalesce(column_default, '') AS item
    FROM information_schema.columns WHERE table_schema = 'public'
  UNION ALL SELECT 'i:' || indexdef FROM pg_indexes WHERE schemaname = 'public'
  UNION ALL SELECT 'k:' || conrelid::regclass::text || ':' || conname || ':' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  UNION ALL SELECT 's:' || sequencename FROM pg_sequences WHERE schemaname = 'public'
  UNION ALL SELECT 'f:' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
  UNION ALL SELECT 'y:' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
  UNION ALL SELECT 'g:' || tgrelid::regclass::text || ':' || tgname FROM pg_trigger
    WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
  UNION ALL SELECT 'v:' || version_num FROM public.alembic_version
) AS schema
"""
_PG_TEMPLATE: dict | None = None


async def _pg_snapshot(connection) -> dict:
    """The migrated schema's fingerprint, its tables and the rows the migrations inserted."""
    tables = [row[0] for row in await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        " ORDER BY tablename")]
    rows = {}
    for table in tables:
        records = await connection.fetch(f'SELECT * FROM public."{table}"')
        if records:
            rows[table] = (list(records[0].keys()), [tuple(record) for record in records])
    sequences = await connection.fetch(
        "SELECT sequencename, coalesce(last_value, start_value), last_value IS NOT NULL FROM pg_sequences"
        " WHERE schemaname = 'public' ORDER BY sequencename")
    return {"fingerprint": await connection.fetchval(_PG_FINGERPRINT), "tables": tables, "rows": rows,
            "sequences": [tuple(row) for row in sequences]}


async def connections_left(connection) -> list[dict]:
    """The other connections to this connection's database (a test process has its own): pid,
    state, transaction age, the query's first 120 characters (SQL only, never its values)."""
    return [dict(row) for row in await connection.fetch(
        "SELECT pid, state, application_name, now() - xact_start AS age, left(query, 120) AS query"
        " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]


def reset_postgres_to_head(url: str) -> None:
    """The database at `url` as the migrations leave it (every table empty but for the rows they
    insert, every sequence back at its start), by TRUNCATE when the schema is still the head's
    (its fingerprint), else dropped and migrated again. What reset_postgres() then the app's
    upgrade gave, in a tenth of the time."""
    import asyncpg

    global _PG_TEMPLATE
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def rebuild() -> dict:
        from kernel.database import make_engine
        from allervers.migrate import upgrade

        connection = await asyncpg.connect(dsn)
        try:  # a clear error, not a hang, if a connection left open holds a lock
            await connection.execute("SET lock_timeout = '30s'")
            await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        finally:
            await connection.close()
        engine = make_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        connection = await asyncpg.connect(dsn)
        try:
            return await _pg_snapshot(connection)
        finally:
            await connection.close()

    async def restore(template: dict) -> bool:
        try:
            return await restore_once(template)
        except asyncpg.LockNotAvailableError:
            # A connection an earlier app left open holds a lock (each test process has a database
            # of its own: nobody else is here). Said, ended, and the reset tried again: a hang of
            # the whole worker until pytest-timeout was what this cost before.
            connection = await asyncpg.connect(dsn)
            try:
                left = await connections_left(connection)
                sys.stderr.write(f"reset_postgres_to_head: {len(left)} connection(s) left open by an "
                                 f"earlier app, ended: {left}\n")
                await connection.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid",
                                         [row["pid"] for row in left])
            finally:
                await connection.close()
            return await restore_once(template)

    async def restore_once(template: dict) -> bool:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("SET lock_timeout = '15s'")
            async with connection.transaction():
                try:
                    async with connection.transaction():  # a savepoint: a missing table is no error here
                        fingerprint = await connection.fetchval(_PG_FINGERPRINT)
                except asyncpg.PostgresError:
                    return False
                if fingerprint != template["fingerprint"]:
                    return False
                await connection.execute("TRUNCATE " + ", ".join(f'public."{t}"' for t in template["tables"])
                                         + " RESTART IDENTITY CASCADE")
                for table, (columns, records) in template["rows"].items():
                    await connection.copy_records_to_table(table, records=records, columns=columns,
                                                           schema_name="public")
                if template["sequences"]:
                    names, values, called = zip(*template["sequences"])
                    await connection.execute(
                        "SELECT setval(format('public.%I', name), value, called)"
                        " FROM unnest($1::text[], $2::bigint[], $3::bool[]) AS s(name, value, called)",
                        list(names), list(values), list(called))
            return True
        finally:
            await connection.close()

    if _PG_TEMPLATE is not None and _in_thread(lambda: restore(_PG_TEMPLATE)):
        return
    _PG_TEMPLATE = _in_thread(rebuild)


def reset_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings_for(tmp_path, backend):
    """Build Settings for the current backend; PostgreSQL runs use Redis too when it is configured."""

    def make(**overrides) -> Settings:
        values = dict(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/allervers.db",
            media_dir=tmp_path / "media",
            secret_key="test-secret-key",
            rights_backend="off",
            directory_autoload=False,
            delivery_base_backoff=0.05,
            # Telegram's 1 message a second per chat makes every multi-message answer take seconds:
            # off here; the tests of the pacing (tests/outreach/test_pacing.py, test_campaign_speed.py) set it.
            campaign_telegram_per_chat_seconds=0.0,
        )
        if backend == "postgres":
            reset_postgres_to_head(POSTGRES_URL)
            values["database_url"] = POSTGRES_URL
            if REDIS_URL:
                reset_redis(REDIS_URL)
                values["redis_url"] = REDIS_URL
        values.update(overrides)
        if values["database_url"] == f"sqlite+aiosqlite:///{tmp_path}/allervers.db":
            sqlite_at_head(tmp_path / "allervers.db")
        return Settings(_env_file=None, **values)

    return make


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def bench_module(name: str):
    """bench/<name>.py (the benchmarks are scripts, not a package) loaded by its path, for the tests
    that run it; registered in sys.modules first (its dataclasses look their module up there)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def app_client(settings: Settings, channels: dict | None = None):
    """The real app in-process (lifespan run), with an httpx client on it."""
    from allervers.app import create_app

    app = create_app(settings, channels=channels)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app
            yield client


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await client.get("/inbox/login")
    return await client.post("/inbox/login", data={"email": email, "password": password,
                                                  "csrf_token": csrf_of(page.text)})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The app served by uvicorn on loopback in a background thread (its own event loop)."""

    def __init__(self, settings: Settings):
        from allervers.app import create_app

        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # As `allervers serve` (allervers/serve.py): responses in progress get the grace period.
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                   log_level="warning", lifespan="on",
                                                   timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds))))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        # What SIGTERM does to `allervers serve` (ops/shutdown.install_signal_hook, not installed in a
        # thread): draining first, so the open live streams (a browser's EventSource) end by
        # themselves within a second, then uvicorn's stop. Without the draining, uvicorn waited for
        # those streams: the join timed out after 15 s and the app was never shut down.
        from ops.shutdown import begin_draining

        begin_draining(self.app)
        self.server.should_exit = True
        self.thread.join(timeout=15)

    @property
    def rt(self):
        return self.app.state.rt


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate() if asyncio.iscoroutinefunction(predicate) else predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


FIXTURES = Path(__file__).parent / "fixtures"
