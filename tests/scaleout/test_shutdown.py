"""Graceful shutdown: the sends in flight that do not finish in the grace period are handed back
(queued again, not left 'sending' until some start-up sweep), the locks are released, and another
live process sends the handed-back rows at once."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from conversations.models import OUTBOUND, Message
from tests.conftest import REDIS_URL, app_client, eventually
from tests.fakes.telegram_api import FakeTelegram, text_update

SECRET = "secret-for-tests"


async def post(client, update: dict):
    return await client.post("/bots/telegram/webhook", content=json.dumps(update).encode(), headers={
        "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})


async def statuses(rt_or_settings) -> list[str]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(rt_or_settings.database_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(Message.status).where(Message.direction == OUTBOUND)
                                         .order_by(Message.id))).scalars().all()
    await engine.dispose()
    return list(rows)


async def test_shutdown_hands_back_the_sends_in_flight(settings_for, backend):
    with FakeTelegram() as fake:
        settings = settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET,
                                telegram_api_base=fake.base_url, shutdown_grace_seconds=0.5)
        release = fake.hold("sendMessage")  # the platform is slow: the sends stay in flight
        try:
            async with app_client(settings) as client:
                assert (await post(client, text_update("/start", chat_id=7301))).status_code == 200
                await fake.wait_for_async(lambda: fake.calls("sendMessage"), timeout=10)
                assert "sending" in await statuses(settings)
            # Shut down: nothing left 'sending', the rows are queued for whichever process comes next.
            assert set(await statuses(settings)) == {"queued"}, await statuses(settings)
            if settings.redis_url:
                import redis.asyncio as aioredis

                redis = aioredis.from_url(settings.redis_url)
                assert await redis.keys("allervers:lock:*") == []  # released, not left to expire
                await redis.aclose()
        finally:
            release.set()
        fake.reset()
        async with app_client(settings) as client:  # the next start sends them (once each)
            await client.app.state.rt.drain(timeout=15)
            assert set(await statuses(settings)) == {"sent"}
        assert len(fake.sent_texts(7301)) == 2


@pytest.mark.skipif(not REDIS_URL, reason="two processes share the hand-back through Redis")
async def test_another_process_sends_what_a_stopping_one_handed_back(settings_for, backend):
    if backend != "postgres":
        pytest.skip("two processes need PostgreSQL + Redis")
    with FakeTelegram() as fake:
        settings = settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET,
                                telegram_api_base=fake.base_url, shutdown_grace_seconds=0.3)
        async with app_client(settings) as survivor:
            release = fake.hold("sendMessage")
            try:
                async with app_client(settings) as stopping:
                    assert (await post(stopping, text_update("/start", chat_id=7302))).status_code == 200
                    await fake.wait_for_async(lambda: fake.calls("sendMessage"), timeout=10)
            finally:
                fake.hold("sendMessage").set()  # later sends answered at once
                release.set()

            async def all_sent():
                return set(await statuses(settings)) == {"sent"}

            await eventually(all_sent, timeout=15)  # the survivor heard the hand-back: no restart needed
