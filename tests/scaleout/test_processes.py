"""N processes that lose nothing: three app processes (uvicorn, real subprocesses) behind a loopback
round-robin proxy, on PostgreSQL + Redis + an S3 server (moto), with the fake Bot API.

Many people send their updates through the proxy (posted again until a 200, as Telegram does);
one process is killed with SIGKILL mid-load and started again. Then: every update that got a 200
is stored once and answered, nothing is left queued or sending; a worker whose inbox stream is open
on process A sees live what arrives through B and C; a voice note that came in through one process
plays from another (the object store is shared).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path

import pytest

from conversations.audio import silent_ogg_opus
from tests.conftest import POSTGRES_URL, REDIS_URL, reset_postgres, reset_redis
from tests.fakes.telegram_api import FakeTelegram

pytestmark = [
    pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis,
    pytest.mark.skipif(not (POSTGRES_URL and REDIS_URL),
                       reason="needs PostgreSQL and Redis shared by three processes: set ALLERVERS_TEST_POSTGRES_URL "
                              "and ALLERVERS_TEST_REDIS_URL"),
]

ROOT = Path(__file__).resolve().parents[2]


def bench():
    spec = importlib.util.spec_from_file_location("bench_processes", ROOT / "bench" / "bench_processes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_processes", module)
    spec.loader.exec_module(module)
    return module


async def test_three_processes_one_killed_lose_nothing(tmp_path):
    b = bench()
    from tests.scaleout.s3server import S3Server

    reset_postgres(POSTGRES_URL)
    reset_redis(REDIS_URL)
    with S3Server() as s3, FakeTelegram() as fake:
        s3.fresh_bucket()
        extra = {f"ALLERVERS_{key.upper()}": value for key, value in s3.settings().items()}
        cluster = await b.Cluster(3, POSTGRES_URL, REDIS_URL, tmp_path, fake, extra).start()
        a_app, b_app, c_app = cluster.apps
        try:
            # A worker on A, with a person already handed off to them (through the proxy).
            await b.handed_off_person(cluster.proxy.url, 600_000_001, 1)
            conversation = await b.conversation_of(POSTGRES_URL, 600_000_001)
            worker = await b.worker_session(a_app.url)
            async with b.Stream(worker, f"/inbox/stream?conversation={conversation}") as stream:
                # Live on A, from B and from C (posted to each process directly).
                for update_id, app in ((20, b_app), (21, c_app)):
                    stream.clear()
                    import aiohttp

                    async with aiohttp.ClientSession() as session:
                        await b.post_until_200(session, app.url, b.update_body(update_id, 600_000_001, "text",
                                                                               f"via {app.port}"))
                    await stream.next(lambda e, d: e == "timeline" and d == str(conversation), timeout=10)

                # A voice note through C, played by the worker on A (shared object store).
                fake.register_file("scale-voice", silent_ogg_opus(1), "voice/file_1.oga")
                voice = {"update_id": 22, "message": {
                    "message_id": 22, "date": 1763800000, "chat": {"id": 600_000_001, "type": "private"},
                    "from": {"id": 600_000_001, "is_bot": False, "first_name": "Alex"},
                    "voice": {"duration": 1, "mime_type": "audio/ogg", "file_id": "scale-voice",
                              "file_unique_id": "sv1"}}}
                import json

                async with aiohttp.ClientSession() as session:
                    await b.post_until_200(session, c_app.url, json.dumps(voice).encode())
                media_id = await wait_media(POSTGRES_URL)
                played = await worker.get(f"/inbox/media/{media_id}")
                assert played.status_code == 200 and played.content == silent_ogg_opus(1)
                assert len(s3.keys()) == 1

                # Load through the proxy; B is killed mid-load and started again.
                acked: list[int] = []
                stats: dict = {}
                load = asyncio.create_task(b.open_loop(cluster.proxy.url, 40, 8, 610_000_001, 900_000_001,
                                                       acked=acked, stats=stats, gap=0.5))
                await asyncio.sleep(3)
                b_app.kill()
                killed_after = len(acked)
                b_app.start()
                await load
                await b_app.wait_ready(timeout=120)
                # The worker's stream on A was never interrupted by B's death.
                stream.clear()
                async with aiohttp.ClientSession() as session:
                    await b.post_until_200(session, b_app.url, b.update_body(23, 600_000_001, "text", "after"))
                await stream.next(lambda e, d: e == "timeline" and d == str(conversation), timeout=10)
            await worker.aclose()
            await b.wait_drained(POSTGRES_URL, fake, timeout=60)
        finally:
            await cluster.stop()
        inbound, sent, unsent = await b.database_counts(POSTGRES_URL)
    assert killed_after > 0 and len(acked) == 40 * 8 // 5 * 5
    assert all(cluster.proxy.connections), cluster.proxy.connections  # every process took some
    lost = [u for u in acked if str(u) not in inbound]
    assert lost == [], f"{len(lost)} updates answered 200 but not stored"
    assert all(n == 1 for n in inbound.values()), "an update stored twice"
    assert not unsent.get("queued") and not unsent.get("sending"), unsent
    answered = {str(c.chat_id) for c in fake.sent_messages()}
    people = {str(610_000_001 + i) for i in range(40 * 8 // 5)}
    assert people <= answered, f"{len(people - answered)} people never answered"
    # No reply sent twice beyond what was in flight in the killed process (16 at most).
    from collections import Counter

    received = Counter((str(c.chat_id), c.params.get("text")) for c in fake.sent_messages())
    twice = sum(max(0, n - sent.get(key, 0)) for key, n in received.items())
    assert twice <= 16
    print(f"\n3 processes, B killed after {killed_after} updates: {len(acked)} updates answered 200, "
          f"{stats.get('retried', 0)} posts retried, lost 0, replies sent twice {twice}, "
          f"connections per process {cluster.proxy.connections}")


async def wait_media(database_url: str, timeout: float = 20.0) -> int:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with engine.connect() as connection:
                found = (await connection.execute(text("SELECT id FROM media ORDER BY id"))).scalar()
            if found:
                return found
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
    raise AssertionError("the voice note was not stored")
