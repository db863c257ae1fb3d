"""Per-person locks: asyncio locks in one process, Redis locks across processes.

`hold(key)` holds one lock; `hold_many(keys)` holds several (a batch of the intake), always taken
in sorted order so that two holders never wait on each other in a circle.

Redis locks live 3 s and are renewed every second while held (one script call per second for every
lock the process holds), so a process that dies frees its people within 3 s — before a platform's
webhook retry — while a live holder keeps its locks however long it needs them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from contextlib import AsyncExitStack, asynccontextmanager
from typing import AsyncIterator, Iterable

log = logging.getLogger(__name__)


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

    @asynccontextmanager
    async def try_hold(self, key: str) -> AsyncIterator[bool]:
        """Hold `key` if it is free now (True), else do not wait (False)."""
        lock = self._locks.get(key)
        if lock is not None and lock.locked():
            yield False
            return
        async with self.hold(key):
            yield True


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


# Extend each key still holding its token (KEYS[i] with ARGV[i + 1]) to ARGV[1] milliseconds.
_RENEW = """
local renewed = 0
for i, key in ipairs(KEYS) do
    if redis.call('get', key) == ARGV[i + 1] then
        renewed = renewed + redis.call('pexpire', key, ARGV[1])
    end
end
return renewed
"""


class RedisLocks:
    """Redis locks: SET NX PX with a random token and a short lifetime (`timeout`), renewed every
    `timeout / 3` while held by one background task of the process (a script extending, in one
    round trip, every key of every hold whose value is still our token), released only by their
    holder (a compare-and-delete script). Several locks are asked for in one round trip."""

    PREFIX = "allervers:lock:"

    def __init__(self, redis, timeout: float = 3.0, wait: float = 30.0, poll: float = 0.01,
                 renew_every: float | None = None) -> None:
        self.redis = redis
        self.timeout_ms = int(timeout * 1000)
        self.renew_every = renew_every if renew_every is not None else timeout / 3
        self.wait = wait
        self.poll = poll
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._local = MemoryLocks()  # waiters of the same process queue here, not on Redis
        self._held: dict[str, str] = {}  # key -> token, every lock this process holds
        self._renewer: asyncio.Task | None = None

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

    @asynccontextmanager
    async def try_hold(self, key: str) -> AsyncIterator[bool]:
        """Hold `key` if it is free now (True: one round trip), else do not wait (False) — for a
        caller with something better to do than poll a lock another process may hold for long."""
        async with self._local.try_hold(key) as free_here:
            if not free_here:
                yield False
                return
            token = uuid.uuid4().hex
            if not await self.redis.set(self.PREFIX + key, token, nx=True, px=self.timeout_ms):
                yield False
                return
            self._keep(key, token)
            try:
                yield True
            finally:
                await self._free([key], token)

    def _keep(self, key: str, token: str) -> None:
        self._held[key] = token
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_while_held(), name="locks-renewal")

    async def _renew_while_held(self) -> None:
        """While this process holds locks: every `renew_every`, one script call extends them all."""
        while self._held:
            await asyncio.sleep(self.renew_every)
            held = dict(self._held)
            if not held:
                return
            try:
                renewed = await self._renew(keys=[self.PREFIX + key for key in held],
                                            args=[self.timeout_ms, *held.values()])
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis unreachable: try again at the next tick (the locks may expire)
                log.warning("locks not renewed (Redis error)", exc_info=True)
                continue
            lost = len([key for key in held if self._held.get(key) == held[key]]) - int(renewed)
            if lost > 0:  # expired (a stall longer than their lifetime): someone else may hold them now
                log.warning("%d held locks had expired before their renewal", lost)

    async def _acquire(self, ordered: list[str], token: str) -> list[str]:
        """All locks or an exception. First one round trip for all; if some are taken, keep only the
        sorted prefix obtained, then wait for the rest one by one, in order."""
        if len(ordered) == 1:
            obtained = [await self.redis.set(self.PREFIX + ordered[0], token, nx=True, px=self.timeout_ms)]
            if obtained[0]:
                self._keep(ordered[0], token)
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in ordered:
                    pipe.set(self.PREFIX + key, token, nx=True, px=self.timeout_ms)
                obtained = await pipe.execute()
            for key, ok in zip(ordered, obtained):
                if ok:
                    self._keep(key, token)
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
                self._keep(key, token)
                held.append(key)
        except BaseException:
            await self._free(held, token)
            raise
        return held

    async def _free(self, keys: list[str], token: str) -> None:
        if not keys:
            return
        for key in keys:
            if self._held.get(key) == token:
                del self._held[key]
        try:  # one script call for all the keys: one round trip
            await self._release(keys=[self.PREFIX + key for key in keys], args=[token])
        except Exception:  # Redis gone: the keys expire by themselves
            pass
