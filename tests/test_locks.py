"""Per-person locks (allervers/locks.py): in one process, and across two processes through Redis
(two clients stand for two processes). Holding several locks never ends in two holders waiting on
each other, and a lock whose holder died expires."""

from __future__ import annotations

import asyncio

import pytest

from allervers.locks import MemoryLocks, RedisLocks
from tests.conftest import REDIS_URL, reset_redis

KINDS = ["memory"] + (["redis"] if REDIS_URL else [])


@pytest.fixture(params=KINDS)
async def two_processes(request):
    """Two lock managers that must exclude each other (the same one in memory: one process)."""
    if request.param == "memory":
        locks = MemoryLocks()
        yield locks, locks
        return
    import redis.asyncio as aioredis

    reset_redis(REDIS_URL)
    clients = [aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL)]
    yield RedisLocks(clients[0], poll=0.005), RedisLocks(clients[1], poll=0.005)
    for client in clients:
        await client.aclose()


async def test_one_holder_at_a_time(two_processes):
    a, b = two_processes
    inside, most = 0, 0

    async def work(locks, keys):
        nonlocal inside, most
        async with locks.hold_many(keys):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(work(a if i % 2 else b, ["telegram:1"]) for i in range(10)))
    assert most == 1


async def test_overlapping_sets_taken_in_opposite_orders_do_not_deadlock(two_processes):
    a, b = two_processes
    order: list[str] = []

    async def batch(locks, keys, name):
        async with locks.hold_many(keys):
            order.append(name)
            await asyncio.sleep(0.02)

    async with b.hold("webchat:m"):  # the middle key is taken: both batches must wait for it
        tasks = [asyncio.create_task(batch(a, ["webchat:z", "webchat:m", "webchat:a"], "first")),
                 asyncio.create_task(batch(b, ["webchat:a", "webchat:z", "webchat:m"], "second"))]
        await asyncio.sleep(0.05)
        assert order == []
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert sorted(order) == ["first", "second"]


async def test_a_lock_of_a_dead_process_expires():
    if not REDIS_URL:
        pytest.skip("Redis run (set ALLERVERS_TEST_REDIS_URL)")
    import redis.asyncio as aioredis

    reset_redis(REDIS_URL)
    dead, alive = aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL)
    try:
        await dead.set(RedisLocks.PREFIX + "telegram:9", "token-of-a-dead-process", px=200)
        locks = RedisLocks(alive, poll=0.01)
        started = asyncio.get_running_loop().time()
        async with locks.hold("telegram:9"):
            waited = asyncio.get_running_loop().time() - started
        assert 0.1 < waited < 2
        assert await alive.get(RedisLocks.PREFIX + "telegram:9") is None  # released by its holder
        # a holder never deletes a lock that expired and is someone else's now
        async with locks.hold("telegram:9"):
            await alive.set(RedisLocks.PREFIX + "telegram:9", "someone-else")
        assert await alive.get(RedisLocks.PREFIX + "telegram:9") == b"someone-else"
    finally:
        await dead.aclose()
        await alive.aclose()
