"""The send pacer (outreach/pacing.py): every send of a bot in one budget, replies before campaign
sends, Telegram's 1 message a second per chat, shared by processes through Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from kernel.settings import Settings
from outreach.pacing import CAMPAIGN, REPLY, SendPacer, rate_for
from tests.conftest import REDIS_URL, app_client, reset_redis
from tests.fakes.telegram_api import FakeTelegram
from tests.outreach.helpers import telegram, telegram_settings

RATE = 20.0


def settings(**values) -> Settings:
    return Settings(_env_file=None, secret_key="k", campaign_telegram_per_second=RATE, **values)


def max_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times)), default=0)


async def crowd(pacers: list[SendPacer], campaign: int, replies: int) -> tuple[list[float], list[float]]:
    """`campaign` campaign sends waiting on the pacers, and `replies` replies arriving meanwhile;
    returns when each was let out, and how long each reply waited."""
    loop = asyncio.get_running_loop()
    admitted, waits = [], []

    async def one(pacer, chat, priority):
        began = loop.time()
        await pacer.acquire("telegram", "bot1", str(chat), priority)
        admitted.append(loop.time())
        if priority == REPLY:
            waits.append(loop.time() - began)

    tasks = [asyncio.create_task(one(pacers[i % len(pacers)], i, CAMPAIGN)) for i in range(campaign)]
    for n in range(replies):
        await asyncio.sleep(0.15)
        tasks.append(asyncio.create_task(one(pacers[n % len(pacers)], 10_000 + n, REPLY)))
    await asyncio.gather(*tasks)
    return admitted, waits


async def test_one_budget_per_bot_and_replies_first():
    pacer = SendPacer(settings())
    admitted, waits = await crowd([pacer], 40, 6)
    # campaign + replies together under the limit (the pacer counts 19 a second; the clock read here, after
    # each admission, may see one more within a second: still the platform's 20)
    assert max_in_a_second(admitted) <= RATE
    assert max(waits) < 0.35  # not behind the backlog (~2 s of campaign sends): a spacing or two, and the loop
    assert len(admitted) == 46
    assert max(admitted) - min(admitted) >= (46 - 19) / RATE  # and no faster than the limit


@pytest.mark.skipif(not REDIS_URL, reason="needs ALLERVERS_TEST_REDIS_URL")
async def test_two_processes_share_the_bots_budget_through_redis():
    import redis.asyncio as redis

    reset_redis(REDIS_URL)
    clients = [redis.Redis.from_url(REDIS_URL), redis.Redis.from_url(REDIS_URL)]  # as two processes would
    try:
        pacers = [SendPacer(settings(), client) for client in clients]
        admitted, waits = await crowd(pacers, 40, 4)
        assert max_in_a_second(admitted) <= RATE  # (Redis's clock decides; read here a moment later)
        assert max(waits) < 0.35
        # One chat: the second send waits its second, whichever process sends it.
        began = time.monotonic()
        await pacers[0].acquire("telegram", "bot1", "42", REPLY)
        await pacers[1].acquire("telegram", "bot1", "42", REPLY)
        assert time.monotonic() - began >= 1.0
    finally:
        for client in clients:
            await client.aclose()


def test_tiers_per_account_from_the_settings():
    tiers = settings(send_limits={"whatsapp:555": 250, "telegram": 25})
    assert rate_for(tiers, "whatsapp", "555") == 250 and rate_for(tiers, "whatsapp", "777") == 80
    assert rate_for(tiers, "telegram", None) == 25
    with pytest.raises(ValueError):
        settings(send_limits={"whatsapp:1": 0})


async def test_a_multi_message_answer_keeps_one_a_second_per_chat_and_the_first_leaves_at_once(settings_for):
    with FakeTelegram(limit_per_chat_seconds=1.0) as fake:
        async with app_client(telegram_settings(settings_for, fake, campaign_telegram_per_chat_seconds=1.0)) as client:
            await telegram(client, 6001, "/start")
            await telegram(client, 6001, callback="oui")  # the consent's yes: the menu follows
            sends = fake.sent_messages(6001)
            waits = [wait for key, wait in client.app.state.rt.send_pacer.chat_waits if key.endswith(":6001")]
    times = [c.at for c in sends]
    assert len(sends) >= 2 and fake.too_many == 0
    assert all(b - a >= 1.0 for a, b in zip(times, times[1:]))
    assert len(waits) == len(sends) and waits[0] == 0.0  # the first message waited for nothing
    assert any(wait > 0 for wait in waits[1:])  # the next ones their turn
