"""Live updates: publish/subscribe on topics, in-process (default) or through Redis pub/sub.

Topics: "org:<id>" (inbox lists), "conversation:<id>" (a conversation page), "webchat:<uuid>"
(a person's web chat). Payloads are small JSON dicts: ids and event names, never message bodies,
except on webchat topics where the payload is the message shown to that person.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from contextlib import asynccontextmanager
from typing import AsyncIterator

log = logging.getLogger(__name__)


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=1000)

    def put(self, payload: dict) -> None:
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:  # a stalled client must not block publishers
            log.warning("live subscriber queue full; dropping an update")

    async def get(self, timeout: float | None = None) -> dict | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None


class MemoryNotifier:
    """Single-process notifier."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, topic: str, payload: dict) -> None:
        self._deliver(topic, payload)

    async def publish_many(self, updates: list[tuple[str, dict]]) -> None:
        for topic, payload in updates:
            self._deliver(topic, payload)

    def _deliver(self, topic: str, payload: dict) -> None:
        for subscription in list(self._subscribers.get(topic, ())):
            subscription.put({"topic": topic, **payload})

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        for topic in topics:
            self._subscribers[topic].add(subscription)
        try:
            yield subscription
        finally:
            for topic in topics:
                self._subscribers[topic].discard(subscription)
                if not self._subscribers[topic]:
                    self._subscribers.pop(topic, None)


class RedisNotifier(MemoryNotifier):
    """Cross-process notifier: every process subscribes to one Redis channel; each message on it
    carries a list of (topic, payload) — all the updates of a batch in one PUBLISH — and the
    listener of each process hands them to its local subscribers."""

    def __init__(self, redis) -> None:
        super().__init__()
        self.redis = redis
        # Pub/sub channels are shared by every database of a Redis server: the channel names the
        # database, so that deployments (or test runs) on separate databases never hear each other.
        self.channel = f"allervers:live:{redis.connection_pool.connection_kwargs.get('db', 0)}"
        self._pubsub = None
        self._listener: asyncio.Task | None = None

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self.channel)
        self._listener = asyncio.create_task(self._listen(), name="redis-live-listener")

    async def close(self) -> None:
        if self._listener:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
        if self._pubsub is not None:
            await self._pubsub.aclose()

    async def publish(self, topic: str, payload: dict) -> None:
        await self.publish_many([(topic, payload)])

    async def publish_many(self, updates: list[tuple[str, dict]]) -> None:
        if updates:
            await self.redis.publish(self.channel, json.dumps(updates))

    async def _listen(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # connection hiccup: keep listening
                log.exception("redis live listener error")
                await asyncio.sleep(0.5)
                continue
            if not message or message.get("type") != "message":
                continue
            try:
                updates = json.loads(message["data"])
                for topic, payload in updates:
                    self._deliver(topic, payload)
            except (TypeError, ValueError):
                log.warning("unreadable live update skipped")
