"""Live updates (kernel/live.py): a subscriber gets the updates of its topics only, in order,
in one process and from another process through Redis (two clients stand for two processes)."""

from __future__ import annotations

import pytest

from kernel.live import MemoryNotifier, RedisNotifier
from tests.conftest import REDIS_URL, reset_redis

KINDS = ["memory"] + (["redis"] if REDIS_URL else [])


@pytest.fixture(params=KINDS)
async def publisher_and_listener(request):
    if request.param == "memory":
        notifier = MemoryNotifier()
        yield notifier, notifier
        return
    import redis.asyncio as aioredis

    reset_redis(REDIS_URL)
    clients = [aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL)]
    notifiers = [RedisNotifier(client) for client in clients]
    for notifier in notifiers:
        await notifier.start()
    yield notifiers[0], notifiers[1]
    for notifier, client in zip(notifiers, clients):
        await notifier.close()
        await client.aclose()


async def test_a_batch_of_updates_reaches_the_subscribers_of_each_topic_in_order(publisher_and_listener):
    publisher, listener = publisher_and_listener
    async with listener.subscribe("org:1") as org, listener.subscribe("conversation:7", "worker:3") as page:
        await publisher.publish_many([
            ("org:1", {"event": "message_received", "conversation": 7}),
            ("conversation:7", {"event": "message_received", "conversation": 7}),
            ("org:2", {"event": "message_received", "conversation": 9}),  # nobody listens here
            ("conversation:7", {"event": "message_queued", "conversation": 7}),
        ])
        await publisher.publish("worker:3", {"event": "conversation_assigned", "conversation": 7})
        await publisher.publish_many([])  # nothing to say: nothing sent
        assert (await org.get(timeout=5))["event"] == "message_received"
        seen = [await page.get(timeout=5) for _ in range(3)]
        assert [(u["topic"], u["event"]) for u in seen] == [
            ("conversation:7", "message_received"), ("conversation:7", "message_queued"),
            ("worker:3", "conversation_assigned")]
        assert await org.get(timeout=0.2) is None and await page.get(timeout=0.2) is None
