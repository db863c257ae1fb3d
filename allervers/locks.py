"""Per-person locks: asyncio locks in one process, Redis locks across processes.

`hold(key)` holds one lock; `hold_many(keys)` holds several (a batch of the intake), always taken
in sorted order so that two holders never wait on each other in a circle.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from contextlib import AsyncExitStack, asynccontextmanager
from typing import AsyncIterator, Iterable


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

    @asynccontextmanager
    async def hold_many(self, keys: Iterable[str]) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self.hold(key))
            yield


# Delete each key only if it still holds our token (an expired lock may belong to someone else now).
_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
    if redis.call('get', key) == ARGV[1] then
        released = released + redis.call('del', key)
    end
end
return released
"""


class RedisLocks:
    """Redis locks: SET NX PX with a random token (they expire if a process dies), released only by
    their holder (a compare-and-delete script). Several locks are asked for in one round trip."""

    PREFIX = "allervers:lock:"

    def __init__(self, redis, timeout: float = 30.0, wait: float = 30.0, poll: float = 0.01) -> None:
        self.redis = redis
        self.timeout_ms = int(timeout * 1000)
        self.wait = wait
        self.poll = poll
        self._release = redis.register_script(_RELEASE)
        self._local = MemoryLocks()  # waiters of the same process queue here, not on Redis

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self.hold_many([key]):
            yield

    @asynccontextmanager
    async def hold_many(self, keys: Iterable[str]) -> AsyncIterator[None]:
        ordered = sorted(set(keys))
        async with self._local.hold_many(ordered):
            token = uuid.uuid4().hex
            held = await self._acquire(ordered, token)
            try:
                yield
            finally:
                await self._free(held, token)

    async def _acquire(self, ordered: list[str], token: str) -> list[str]:
        """All locks or an exception. First one round trip for all; if some are taken, keep only the
        sorted prefix obtained, then wait for the rest one by one, in order."""
        if len(ordered) == 1:
            obtained = [await self.redis.set(self.PREFIX + ordered[0], token, nx=True, px=self.timeout_ms)]
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in ordered:
                    pipe.set(self.PREFIX + key, token, nx=True, px=self.timeout_ms)
                obtained = await pipe.execute()
        prefix = 0
        while prefix < len(ordered) and obtained[prefix]:
            prefix += 1
        held = ordered[:prefix]
        try:
            await self._free([k for k, ok in zip(ordered[prefix:], obtained[prefix:]) if ok], token)
            deadline = time.monotonic() + self.wait
            for key in ordered[prefix:]:
                while not await self.redis.set(self.PREFIX + key, token, nx=True, px=self.timeout_ms):
                    if time.monotonic() > deadline:
                        raise TimeoutError("a lock was not obtained in time")
                    await asyncio.sleep(self.poll)
                held.append(key)
        except BaseException:
            await self._free(held, token)
            raise
        return held

    async def _free(self, keys: list[str], token: str) -> None:
        if not keys:
            return
        try:  # one script call for all the keys: one round trip
            await self._release(keys=[self.PREFIX + key for key in keys], args=[token])
        except Exception:  # Redis gone: the keys expire by themselves
            pass
