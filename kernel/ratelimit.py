"""Rate limits: named rules (Settings.rate_limits) counted per key, in Redis when configured, in
memory otherwise, with the `limits` library (moving windows: a refused hit is not counted, so a
key is free again as soon as its oldest counted hit leaves the window: never a permanent lockout).

    await rt.limiter.hit("login_address", address)   # raises RateLimited(retry_after, rule)

Keys are hashed before they reach the storage: a web chat identity or an e-mail address is never
written to Redis as it is.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from kernel.settings import RATE_LIMITS


class RateLimited(Exception):
    """Too many hits of `rule` for one key: try again in `retry_after` seconds."""

    def __init__(self, rule: str, retry_after: int):
        super().__init__(f"rate limit {rule}: retry after {retry_after} s")
        self.rule, self.retry_after = rule, retry_after


class Limiter:
    def __init__(self, rules: dict[str, str], redis_url: str | None = None, enabled: bool = True):
        self.rules: dict[str, list[RateLimitItem]] = {name: parse_many(text) for name, text in
                                                      {**RATE_LIMITS, **rules}.items()}
        self.enabled = enabled
        if redis_url:
            self.storage = RedisStorage("async+" + redis_url, implementation="redispy",
                                        key_prefix="allervers:ratelimit")
        else:
            self.storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)

    @classmethod
    def from_settings(cls, settings) -> "Limiter":
        return cls(settings.rate_limits, settings.redis_url, settings.rate_limits_enabled)

    async def hit(self, rule: str, key: str) -> None:
        """Count one hit of `rule` for `key`; RateLimited if one of the rule's limits is reached."""
        if not self.enabled:
            return
        hashed = _hashed(key)
        for item in self.rules[rule]:
            if not await self.strategy.hit(item, rule, hashed):
                raise RateLimited(rule, await self._retry_after(item, rule, hashed))

    async def check(self, rule: str, key: str) -> None:
        """Like hit() without counting: RateLimited if the next hit would be refused."""
        if not self.enabled:
            return
        hashed = _hashed(key)
        for item in self.rules[rule]:
            if not await self.strategy.test(item, rule, hashed):
                raise RateLimited(rule, await self._retry_after(item, rule, hashed))

    async def reset(self, rule: str, key: str) -> None:
        hashed = _hashed(key)
        for item in self.rules[rule]:
            await self.strategy.clear(item, rule, hashed)

    async def _retry_after(self, item: RateLimitItem, rule: str, hashed: str) -> int:
        stats = await self.strategy.get_window_stats(item, rule, hashed)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def close(self) -> None:
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()


def _hashed(key: str) -> str:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def client_address(request) -> str:
    """The client's address, the key of the per-address rules (uvicorn resolves X-Forwarded-For
    from trusted proxies only: --forwarded-allow-ips)."""
    return request.client.host if request.client else "unknown"
