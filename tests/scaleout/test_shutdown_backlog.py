"""SIGTERM with a backlog: a real `allervers serve` whose outbox holds many replies the send pacer
is spacing out (the bot's budget set low, like Telegram's 30 messages/s against hundreds queued)
stops within a couple of seconds, and every reply is still sent exactly once — the ones sent before
the stop by the stopping process, the rest by the next one. A web chat page's live stream open on
the process does not hold the stop either (it ends; the page's EventSource reconnects elsewhere).

The process is a subprocess (bench/bench_crash.App), the platform the counting fake Bot API.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import POSTGRES_URL, REDIS_URL, bench_module, reset_postgres, reset_redis
from tests.fakes.telegram_api import FakeTelegram

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 30  # each /start is answered with two messages: 60 replies
PER_SECOND = 4  # the bot's budget while the backlog builds: 15 s of sends queued
STOPPED_WITHIN = 4.0  # seconds from SIGTERM to the process's exit


async def post_all(url: str, bodies: list[bytes], headers: dict) -> None:
    async with aiohttp.ClientSession() as session:
        async def post(body: bytes) -> None:
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 200, await response.text()

        await asyncio.gather(*(post(body) for body in bodies))


async def open_stream(base_url: str) -> tuple[aiohttp.ClientSession, aiohttp.ClientResponse]:
    """A web chat page's live stream (its identity cookie first), connected."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # (a cookie for 127.0.0.1)
    assert (await session.post(base_url + "/chat/api/identity", data=b"")).status == 200
    response = await session.get(base_url + "/chat/api/stream")
    assert response.status == 200
    assert (await response.content.readline()).startswith(b": connected")
    return session, response


async def test_sigterm_with_a_backlog_stops_promptly_and_every_reply_goes_once(tmp_path, backend):
    b = bench_module("bench_crash")
    if backend == "postgres":
        reset_postgres(POSTGRES_URL)
        database_url, redis_url = POSTGRES_URL, REDIS_URL
        if redis_url:
            reset_redis(redis_url)
    else:
        database_url, redis_url = f"sqlite+aiosqlite:///{tmp_path}/backlog.db", None
    with FakeTelegram() as fake:
        env = b.app_env(database_url, redis_url, tmp_path, fake.base_url, {
            "ALLERVERS_CAMPAIGN_TELEGRAM_PER_SECOND": str(PER_SECOND), "ALLERVERS_RETENTION_PURGE_INTERVAL": "0"})
        first = b.App(ROOT, env, tmp_path / "first.log")
        first.start()
        try:
            await first.wait_ready(timeout=120)
            bodies = [b.update_body(910_000_001 + n, 610_000_001 + n, "text", "/start") for n in range(PEOPLE)]
            await post_all(first.url + b.WEBHOOK, bodies, {"Content-Type": "application/json",
                                                           "X-Telegram-Bot-Api-Secret-Token": b.SECRET})
            await fake.wait_for_async(lambda: len(fake.sent_messages()) >= 3, timeout=20)  # sending, slowly
            _, _, unsent = await b.database_counts(database_url)
            assert unsent["queued"] + unsent["sending"] >= 2 * PEOPLE - 3 * PER_SECOND  # a real backlog
            page, stream = await open_stream(first.url)
            started = time.monotonic()
            first.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(first.process.wait, 30)
            took = time.monotonic() - started
            stream.close()
            await page.close()
        finally:
            if first.process.poll() is None:
                first.process.kill()
        log = (tmp_path / "first.log").read_text(errors="replace")
        assert took < STOPPED_WITHIN, f"stopped in {took:.1f} s; log:\n{log[-3000:]}"
        assert code in (0, -signal.SIGTERM), log[-3000:]  # (uvicorn raises the signal again once stopped)
        assert "Traceback" not in log, log[-3000:]
        sent_before = len(fake.sent_messages())
        _, sent_rows, unsent = await b.database_counts(database_url)
        assert not unsent.get("sending"), unsent  # nothing left claimed by the stopped process
        assert sum(sent_rows.values()) == sent_before  # what it sent is recorded as sent, nothing more
        assert unsent.get("queued", 0) == 2 * PEOPLE - sent_before  # the rest handed back to the queue
        if redis_url:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(redis_url)
            assert await redis.keys("allervers:lock:*") == []  # released, not left to expire
            await redis.aclose()

        # The next process sends the rest, each once.
        env["ALLERVERS_CAMPAIGN_TELEGRAM_PER_SECOND"] = "30"
        second = b.App(ROOT, env, tmp_path / "second.log")
        second.start()
        try:
            await second.wait_ready(timeout=120)
            await b.wait_drained(database_url, fake, timeout=30)
        finally:
            second.stop()
        _, sent_rows, unsent = await b.database_counts(database_url)
        received = Counter((str(call.chat_id), call.params.get("text")) for call in fake.sent_messages())
    assert not unsent, unsent
    assert sum(received.values()) == 2 * PEOPLE
    assert received == sent_rows  # every row sent once, none twice, none missing
    assert {chat for chat, _ in received} == {str(610_000_001 + n) for n in range(PEOPLE)}
    print(f"\n{backend}: SIGTERM with {2 * PEOPLE - sent_before} replies queued -> exit in {took:.2f} s")
