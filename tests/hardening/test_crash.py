"""Crashes: kill -9 under load loses no update, stores none twice and sends (almost) no reply twice.

The fast test plays a crash by hand: rows left `sending`, one of them noted in the sent journal
(the dead process's file, or Redis): at start-up the noted one is recorded as sent, the other sent
again. The slow ones run bench/bench_crash.py: the app as a real subprocess against the fake Bot
API, ~50 updates/s from many chat ids, kill -9 mid-load, restart, drain, count.
"""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import select, update

from conversations.models import OUTBOUND, Message
from conversations.sent_journal import FileJournal, RedisJournal
from tests.conftest import POSTGRES_URL, REDIS_URL, app_client, bench_module, reset_postgres, reset_redis
from tests.fakes.telegram_api import FakeTelegram, text_update

SECRET = "secret-for-tests"


async def post(client, update: dict):
    return await client.post("/bots/telegram/webhook", content=json.dumps(update).encode(), headers={
        "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})


async def test_rows_a_crash_left_sending_are_recorded_from_the_journal_not_sent_again(settings_for, tmp_path):
    with FakeTelegram() as fake:
        settings = settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET,
                                telegram_api_base=fake.base_url)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            assert (await post(client, text_update("/start", chat_id=5151))).status_code == 200
            await rt.drain(timeout=15)
            async with rt.sessionmaker() as session:
                ids = (await session.execute(select(Message.id).where(Message.direction == OUTBOUND)
                                             .order_by(Message.id))).scalars().all()
        texts = fake.sent_texts(5151)
        assert len(ids) == len(texts) == 2

        # The crash: both sends went out, then the process died before recording either; only the
        # first had been noted in the journal.
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(settings.database_url)
        async with engine.begin() as connection:
            await connection.execute(update(Message).where(Message.id.in_(ids))
                                     .values(status="sending", platform_message_id=None))
        await engine.dispose()
        if settings.redis_url:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(settings.redis_url)
            await RedisJournal(redis).note(ids[0], {"status": "sent", "platform_id": "77"})
        else:
            journal_dir = settings.media_dir.parent / "outbox-journal"
            dead = FileJournal(journal_dir)
            await dead.note(ids[0], {"status": "sent", "platform_id": "77"})
            dead_file = dead._path
            os.close(dead._fds[dead_file])  # the process is gone: its file stays, unlocked

        async with app_client(settings) as client:
            rt = client.app.state.rt
            await rt.drain(timeout=15)
            async with rt.sessionmaker() as session:
                rows = (await session.execute(select(Message).where(Message.id.in_(ids))
                                              .order_by(Message.id))).scalars().all()
            if settings.redis_url:
                assert await redis.get(RedisJournal.PREFIX + str(ids[0])) is None  # dropped once recorded
                await redis.aclose()
            else:
                assert not dead_file.exists()  # the dead process's file went with the sweep
    assert [(m.status, m.platform_message_id) for m in rows][0] == ("sent", "77")
    assert rows[1].status == "sent" and rows[1].platform_message_id is not None
    # the noted one is not sent again; the other one is (it may not have reached the person)
    assert fake.sent_texts(5151) == texts + [texts[1]]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres+redis"])
async def test_kill_9_under_load_loses_nothing_and_sends_almost_nothing_twice(kind, tmp_path):
    if kind == "sqlite":
        database_url, redis_url = f"sqlite+aiosqlite:///{tmp_path}/crash.db", None
    else:
        if not (POSTGRES_URL and REDIS_URL):
            pytest.skip("PostgreSQL + Redis run (set ALLERVERS_TEST_POSTGRES_URL and ALLERVERS_TEST_REDIS_URL)")
        reset_postgres(POSTGRES_URL)
        reset_redis(REDIS_URL)
        database_url, redis_url = POSTGRES_URL, REDIS_URL
    result = await bench_module("bench_crash").run_once(database_url, redis_url, rate=50, duration=20, kills=2,
                                                        workdir=tmp_path, seed=7)
    print(result.line())
    assert result.kills == 2 and result.updates == 1000
    assert result.lost == 0 and result.stored_twice == 0
    assert result.phantom == 0 and result.undelivered == 0
    assert result.replies >= result.updates
    # The guarantee: a crash can send twice only what was in flight (delivery_max_in_flight, 16, per
    # kill). The rate (<= 1 per 1,000; measured 0.10 over 17 kills) is the benchmark's, over many runs
    # (bench/bench_crash.py, bench/README.md): one run of 1,000 is too small a sample to assert it.
    assert result.sent_twice <= result.kills * 16
