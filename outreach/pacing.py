"""The platforms' send limits, per bot and per number, shared by every process (outreach/).

Telegram allows about 30 messages a second per bot and 1 a second per chat; WhatsApp 80 a second
per phone number id (higher tiers on request). Every outbound send of a bot goes through here
(deliver._paced): ordinary replies and campaign sends count toward the same budget, so a campaign
can never push the bot past its limit, and replies come first:

- a sliding log per bot: never more than `limit` sends in any window of 1 / campaign_headroom
  seconds (about 1.03 s at 97 %). The platform counts `limit` per second at its end; the extra
  30 ms is the margin for the jitter between our clock and its arrival times, so even a burst
  (a catch-up, replies on top of the campaign) stays inside the platform's window;
- campaign sends also leave on a fixed grid, one every window / limit seconds (evenly spaced: they
  must not bunch): each slot is the previous slot + spacing, not "now + spacing", so a late wake-up
  does not push every later send back (lateness used to add up to 7 % of the rate); a slot missed by
  more than CATCH_UP_SLOTS spacings is given up (no burst after a pause, at most 3 sends together). So a reply finds room within about one
  spacing (34 ms at 30/s), whatever the campaign;
- in one process, waiting replies are admitted before waiting campaign sends (a local gate per bot,
  which sleeps until the next slot and is woken early by a reply);
- per chat (Telegram): the first message to a chat leaves at once; the next ones of a multi-message
  answer leave `per_chat_seconds` (+ a small margin for the network) after the previous one was
  let out.

Storage: Redis when configured (two small Lua scripts, Redis's own clock: processes agree on time),
memory otherwise (one process). Limits per account come from the settings (`send_limits`: the tiers).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import itertools
import logging
import os
import time

log = logging.getLogger(__name__)

REPLY, CAMPAIGN = "reply", "campaign"
STORE_CONCURRENCY = 4  # store round trips in flight at once per process
CHAT_MARGIN = 0.2  # seconds added to the per-chat interval (arrival jitter at the platform under load)
CATCH_UP_SLOTS = 2  # a campaign slot missed by more spacings is given up (the grid restarts from now)
_members = itertools.count()


class PacerClosed(Exception):
    """The process is stopping (SendPacer.close): this send was not let out; its row goes back to
    the queue for whichever process sends next (ops/shutdown.py)."""

# KEYS: the bot's log (a sorted set of send times), the campaign's next slot.
# ARGV: capacity, window (s), spacing (0 for a reply), catch-up (s), a unique member.
# Returns "0" (admitted) or the wait (s).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local spacing = tonumber(ARGV[3])
local slot = 0
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if spacing > 0 then
  slot = tonumber(redis.call('GET', KEYS[2]) or '0')
  if slot > now then return string.format('%.6f', slot - now) end
end
if redis.call('ZCARD', KEYS[1]) >= capacity then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return string.format('%.6f', math.max(0.0005, tonumber(oldest[2]) + window - now))
end
redis.call('ZADD', KEYS[1], string.format('%.6f', now), ARGV[5])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 2000)
if spacing > 0 then
  local nxt = slot + spacing
  if slot < now - tonumber(ARGV[4]) then nxt = now + spacing end
  redis.call('SET', KEYS[2], string.format('%.6f', nxt), 'PX', 3000)
end
return '0'
"""
# KEYS: the bot's log. ARGV: a member admitted earlier: its time becomes now (the send is on the wire).
_RESTAMP = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000), ARGV[1])
return 0
"""
# KEYS: the chat's next free time. ARGV: the interval (0: only read it). Returns the wait (s).
_CHAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
if interval > 0 then
  redis.call('SET', KEYS[1], string.format('%.6f', now + interval), 'PX', math.ceil(interval * 1000) + 1000)
  return '0'
end
return string.format('%.6f', math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now))
"""


def limits_of(settings, channel: str) -> tuple[float, float]:
    """(sends per second per account, seconds between two sends to one chat) for a channel."""
    per_chat = settings.campaign_telegram_per_chat_seconds if channel == "telegram" else 0.0
    rate = {"telegram": settings.campaign_telegram_per_second, "whatsapp": settings.campaign_whatsapp_per_second,
            }.get(channel, settings.campaign_webchat_per_second)
    return rate, per_chat


def account_of(settings, channel: str, account: str | None) -> str | None:
    """The account a send goes out from: an address without one uses the channel's default (the
    adapter sends from settings.whatsapp_phone_number_id), which is the same budget as the
    addresses that name it (people who wrote in: their address has the number's id)."""
    if account:
        return account
    return getattr(settings, "whatsapp_phone_number_id", None) if channel == "whatsapp" else None


def rate_for(settings, channel: str, account: str | None) -> float:
    """The account's tier when the settings name one (`send_limits["whatsapp:<phone number id>"]`)."""
    tiers = getattr(settings, "send_limits", None) or {}
    specific = tiers.get(f"{channel}:{account}") if account else None
    return float(specific or tiers.get(channel) or limits_of(settings, channel)[0])


class _MemoryStore:
    def __init__(self) -> None:
        self.windows: dict[str, list[float]] = {}  # per bot: the send times of its log, sorted
        self.stamps: dict[str, dict[str, float]] = {}  # per bot: member -> its time in the log
        self.next_slot: dict[str, float] = {}
        self.chats: dict[str, float] = {}

    def _prune(self, key: str, window: float, now: float) -> list[float]:
        sends = self.windows.setdefault(key, [])
        cut = bisect.bisect_right(sends, now - window)
        if cut:
            del sends[:cut]
            stamps = self.stamps.get(key, {})
            for member in [m for m, at in stamps.items() if at <= now - window]:
                del stamps[member]
        return sends

    async def admit(self, key: str, capacity: int, window: float, spacing: float, member: str) -> float:
        now = time.monotonic()
        sends = self._prune(key, window, now)
        slot = 0.0
        if spacing > 0:
            slot = self.next_slot.get(key, 0.0)
            if slot > now:
                return slot - now
        if len(sends) >= capacity:
            return max(0.0005, sends[0] + window - now)
        sends.append(now)
        self.stamps.setdefault(key, {})[member] = now
        if spacing > 0:
            self.next_slot[key] = slot + spacing if slot >= now - CATCH_UP_SLOTS * spacing else now + spacing
        return 0.0

    def restamp(self, key: str, member: str) -> None:
        """The send is on the wire now: its place in the log moves to now (added again if it left it)."""
        now = time.monotonic()
        sends, stamps = self.windows.setdefault(key, []), self.stamps.setdefault(key, {})
        old = stamps.get(member)
        if old is not None:
            at = bisect.bisect_left(sends, old)
            if at < len(sends) and sends[at] == old:
                del sends[at]
        bisect.insort(sends, now)
        stamps[member] = now

    async def chat(self, key: str, interval: float) -> float:
        """interval > 0: the chat was just sent to (its next send waits that long); 0: the wait left."""
        now = time.monotonic()
        if interval > 0:
            self.chats[key] = now + interval
            if len(self.chats) > 100_000:  # old chats forgotten (their next slot is long past)
                self.chats = {k: v for k, v in self.chats.items() if v > now}
            return 0.0
        return max(0.0, self.chats.get(key, 0.0) - now)


class _RedisStore:
    PREFIX = "allervers:pace:"

    def __init__(self, redis) -> None:
        self.redis = redis
        self._admit = redis.register_script(_ADMIT)
        self._chat = redis.register_script(_CHAT)
        self._restamp = redis.register_script(_RESTAMP)
        self._restamps: set[asyncio.Task] = set()

    def restamp(self, key: str, member: str) -> None:
        """As the memory store's, in the background (the request's last bytes must not wait for it)."""
        task = asyncio.get_running_loop().create_task(self._restamp_now(key, member))
        self._restamps.add(task)
        task.add_done_callback(self._restamps.discard)

    async def _restamp_now(self, key: str, member: str) -> None:
        try:
            await self._restamp(keys=[self.PREFIX + "bot:" + key], args=[member])
        except Exception:
            log.warning("send pacer: shared store unavailable", exc_info=True)

    async def admit(self, key: str, capacity: int, window: float, spacing: float, member: str) -> float:
        wait = await self._admit(keys=[self.PREFIX + "bot:" + key, self.PREFIX + "next:" + key],
                                 args=[capacity, f"{window:.6f}", f"{spacing:.6f}", f"{CATCH_UP_SLOTS * spacing:.6f}", member])
        return float(wait)

    async def chat(self, key: str, interval: float) -> float:
        return float(await self._chat(keys=[self.PREFIX + "chat:" + key], args=[f"{interval:.6f}"]))


class _Gate:
    """One bot's waiting sends in this process: replies first, then campaign sends, in order."""

    def __init__(self) -> None:
        self.waiting = {REPLY: collections.deque(), CAMPAIGN: collections.deque()}
        self.runner: asyncio.Task | None = None
        self.reply_came = asyncio.Event()  # wakes the runner sleeping until a campaign slot


class SendPacer:
    def __init__(self, settings, redis=None) -> None:
        self.settings = settings
        self.store = _RedisStore(redis) if redis is not None else _MemoryStore()
        self.gates: dict[str, _Gate] = {}
        self.admitted = collections.Counter()  # (channel, priority) -> sends admitted here
        self.chat_waits: collections.deque = collections.deque(maxlen=1000)  # (chat key, seconds waited)
        # Hundreds of sends may wait at once: they share a few store round trips, not a connection each.
        self._store_calls = asyncio.Semaphore(STORE_CONCURRENCY)
        self.on_campaign_send = None  # the campaign sender's hook (its lead of written rows, see finished())
        self._tag = f"{os.getpid()}-{id(self)}"
        self.closed = False
        self._naps: set[asyncio.Future] = set()  # sends sleeping until their chat's turn

    def close(self) -> None:
        """Shutdown: every send waiting here (for its chat's turn or the bot's budget) and every
        later one raises PacerClosed at once, instead of waiting its turn behind a backlog."""
        self.closed = True
        waiters = list(self._naps)
        for gate in self.gates.values():
            for waiting in gate.waiting.values():
                waiters += waiting
                waiting.clear()
            if gate.runner is not None:
                gate.runner.cancel()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(PacerClosed())

    async def _nap(self, seconds: float) -> None:
        """asyncio.sleep that close() ends early (with PacerClosed)."""
        loop = asyncio.get_running_loop()
        nap = loop.create_future()
        timer = loop.call_later(seconds, lambda: nap.done() or nap.set_result(None))
        self._naps.add(nap)
        try:
            await nap
        finally:
            timer.cancel()
            self._naps.discard(nap)

    async def acquire(self, channel: str, account: str | None, chat: str, priority: str = REPLY) -> tuple | None:
        """Wait until this send may leave: the chat's turn (Telegram: `per_chat_seconds` after the
        previous send to it, counted from when that one was let out), then room in the bot's budget.
        A person's sends are sequential (their outbox runner, their lock), so read-then-mark is safe.
        Returns the send's ticket: `on_the_wire(ticket)` when its request actually leaves.
        Raises PacerClosed once the pacer is closed (the process stops)."""
        if self.closed:
            raise PacerClosed()
        account = account_of(self.settings, channel, account)  # one budget per number, named or not
        rate = rate_for(self.settings, channel, account)
        _, per_chat = limits_of(self.settings, channel)
        bot = f"{channel}:{account or 'default'}"
        chat_key = f"{bot}:{chat}"
        if per_chat > 0:
            wait = await self._chat(chat_key, 0.0)
            self.chat_waits.append((chat_key, wait))
            if wait > 0:
                await self._nap(wait)
        if self.closed:  # (closed during the chat's store call)
            raise PacerClosed()
        gate = self.gates.get(bot)
        if gate is None:
            gate = self.gates[bot] = _Gate()
        future = asyncio.get_running_loop().create_future()
        gate.waiting[priority].append(future)
        if priority == REPLY:
            gate.reply_came.set()
        if gate.runner is None or gate.runner.done():
            gate.runner = asyncio.create_task(self._run(gate, bot, rate), name=f"pacer-{bot}")
        ticket = await future
        if per_chat > 0:
            await self._chat(chat_key, per_chat + CHAT_MARGIN)
        self.admitted[(channel, priority)] += 1
        return ticket

    def on_the_wire(self, ticket: tuple | None) -> None:
        """The send admitted with this ticket is leaving now (an adapter's hook right before its
        request's last bytes, bots/base.on_the_wire): its time in the log becomes now. A send that
        waited after its admission (the loop busy, a slow file) then counts from when it really
        left, so the next ones keep the platform's window whatever that wait was."""
        if ticket is not None:
            self.store.restamp(*ticket)

    def finished(self, channel: str, priority: str) -> None:
        """A send let out is over (answered, or failed): the campaign writer may write one more."""
        if priority == CAMPAIGN and self.on_campaign_send is not None:
            self.on_campaign_send(channel)

    async def _chat(self, key: str, interval: float) -> float:
        try:
            async with self._store_calls:
                return await self.store.chat(key, interval)
        except Exception:  # Redis away: better a send on time than none
            log.warning("send pacer: shared store unavailable", exc_info=True)
            return 0.0

    async def _run(self, gate: _Gate, bot: str, rate: float) -> None:
        # Replies and campaign sends share the log (`limit` sends in any window of 1 / headroom
        # seconds); replies go first here and are not spaced; campaign sends keep to the grid.
        capacity = max(1, int(rate))
        window = 1.0 / self.settings.campaign_headroom
        spacing = window / capacity
        while True:
            gate.reply_came.clear()  # (before looking: a reply coming from now on wakes the nap below)
            for waiting in gate.waiting.values():
                while waiting and waiting[0].done():  # a cancelled waiter (its runner stopped)
                    waiting.popleft()
            if not gate.waiting[REPLY] and not gate.waiting[CAMPAIGN]:
                return
            is_reply = bool(gate.waiting[REPLY])
            queue = gate.waiting[REPLY] if is_reply else gate.waiting[CAMPAIGN]
            member = f"{self._tag}-{next(_members)}"
            try:
                async with self._store_calls:
                    wait = await self.store.admit(bot, capacity, window, 0.0 if is_reply else spacing, member)
            except Exception:
                log.warning("send pacer: shared store unavailable", exc_info=True)
                wait = spacing
            if wait <= 0:
                future = queue.popleft()
                if not future.done():
                    future.set_result((bot, member))
                continue
            if is_reply:
                await asyncio.sleep(wait)
                continue
            # Until the campaign's slot, unless a reply comes meanwhile (it must not wait behind it).
            try:
                await asyncio.wait_for(gate.reply_came.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass


def pacer_of(rt) -> SendPacer:
    """The runtime's pacer (made on first use)."""
    pacer = getattr(rt, "send_pacer", None)
    if pacer is None:
        pacer = SendPacer(rt.settings, rt.redis)
        rt.send_pacer = pacer
    return pacer
