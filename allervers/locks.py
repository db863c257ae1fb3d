"""Per-conversation locks: asyncio locks in one process, Redis locks across processes."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from contextlib import asynccontextmanager
from typing import AsyncIterator


class MemoryLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._users: dict[str, int] = defaultdict(int)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        self._users[key] += 1
        lock = self._locks[key]
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                self._users.pop(key, None)
                self._locks.pop(key, None)


class RedisLocks:
    """Redis locks (redis-py's Lock: token-checked release, auto-expiry if a process dies)."""

    def __init__(self, redis, timeout: float = 30.0, wait: float = 30.0) -> None:
        self.redis = redis
        self.timeout = timeout
        self.wait = wait
        self._local = MemoryLocks()  # avoid hammering Redis with waiters of the same process

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self._local.hold(key):
            lock = self.redis.lock(f"allervers:lock:{key}", timeout=self.timeout,
                                   blocking_timeout=self.wait, sleep=0.01)
            if not await lock.acquire():
                raise TimeoutError(f"lock {key} not acquired")
            try:
                yield
            finally:
                try:
                    await lock.release()
                except Exception:  # expired meanwhile: nothing to release
                    pass
