"""Group commit: inbound messages that arrive together are stored and handled in one transaction.

Under load, the cost of an update is mostly its SQL round trips and commit, not the bot's work.
The intake takes every message waiting at that moment (at most one per person, at most
`MAX_BATCH`), holds those people's locks (sorted, so two processes never wait on each other in a
circle), and hands them to `store_and_handle`: one query finds every person, one INSERT stores
every message (platform retries skipped), one flush writes every reply and state change, one
commit. When the server is idle a message is a batch of one and goes through at once: there is no
timer, batches only grow while the previous one is being written.

`receive()` (conversations.receive) stays the one entry point: it submits here and returns when the
message is committed, so a webhook still answers 200 only once its update is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import AsyncExitStack

from bots.base import InboundMessage
from conversations.followups import after_receive

log = logging.getLogger(__name__)

MAX_BATCH = 32
LOCK_PATIENCE = 1.0  # seconds a batch waits for its people's locks before splitting up


class Intake:
    def __init__(self, rt, max_batch: int = MAX_BATCH, lock_patience: float = LOCK_PATIENCE) -> None:
        self.rt = rt
        self.max_batch = max_batch
        self.lock_patience = lock_patience
        self._waiting: deque[tuple[InboundMessage, asyncio.Future]] = deque()
        self._busy: set[str] = set()  # people whose message is being written
        self._worker: asyncio.Task | None = None  # one batch written at a time
        self._alone: set[asyncio.Task] = set()  # messages of a split batch, written one by one

    async def submit(self, inbound: InboundMessage):
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((inbound, future))
        self._ensure_worker()
        return await asyncio.shield(future)  # a client that goes away does not cancel the write

    def _ensure_worker(self) -> None:
        if self._waiting and (self._worker is None or self._worker.done()):
            self._worker = asyncio.create_task(self._work(), name="intake")

    def _next_batch(self) -> list[tuple[InboundMessage, asyncio.Future]]:
        """The oldest waiting message of each person not being written, in arrival order."""
        batch, later, people = [], deque(), set()
        while self._waiting:
            item = self._waiting.popleft()
            person = item[0].address
            if len(batch) < self.max_batch and person not in people and person not in self._busy:
                batch.append(item)
                people.add(person)
            else:
                later.append(item)
        self._waiting = later
        return batch

    async def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            people = {inbound.address for inbound, _ in batch}
            self._busy |= people
            split = False
            try:
                split = not await self._write(batch)
            except BaseException as error:  # every waiter must hear of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error if isinstance(error, Exception) else RuntimeError("stopped"))
                if not isinstance(error, Exception):
                    raise
            finally:
                if not split:
                    self._busy -= people

    async def _write(self, batch: list[tuple[InboundMessage, asyncio.Future]]) -> bool:
        """Write a batch; False if it was split up instead: a lock held for long (by another process,
        perhaps one that died: its Redis locks expire within 3 s) must not hold up everyone else, so
        each message of the batch then waits for its own person's lock, apart, as if alone."""
        from conversations.receive import store_and_handle

        rt = self.rt
        messages = [inbound for inbound, _ in batch]
        async with AsyncExitStack() as locks:
            try:
                async with asyncio.timeout(self.lock_patience):  # sorted; one round trip on Redis
                    await locks.enter_async_context(rt.locks.hold_many(m.address for m in messages))
            except TimeoutError:
                log.warning("a person's lock is held for long; %d messages are written one by one", len(batch))
                for item in batch:
                    task = asyncio.create_task(self._write_alone(item), name="intake-alone")
                    self._alone.add(task)
                    task.add_done_callback(self._alone.discard)
                return False
            done = await store_and_handle(rt, messages)
        await self._answer(batch, done)
        return True

    async def _write_alone(self, item: tuple[InboundMessage, asyncio.Future]) -> None:
        from conversations.receive import store_and_handle

        inbound, future = item
        try:
            async with self.rt.locks.hold(inbound.address):
                done = await store_and_handle(self.rt, [inbound])
            await self._answer([item], done)
        except Exception as error:  # the waiter hears of it (a webhook then answers 500)
            if not future.done():
                future.set_exception(error)
        finally:
            self._busy.discard(inbound.address)
            self._ensure_worker()  # this person's next messages may be waiting

    async def _answer(self, batch: list[tuple[InboundMessage, asyncio.Future]], done: list) -> None:
        """Committed: from here on every waiter gets its answer, whatever fails after."""
        rt = self.rt
        try:
            await rt.after_commit(*(pending for _, pending in done))
        except Exception:
            log.exception("after-commit work of a batch failed (its rows are stored; start-up sweeps resume them)")
        for (inbound, future), (received, _) in zip(batch, done):
            try:
                await after_receive(rt, inbound, received)  # fetch attached files, release held messages
            except Exception:
                log.exception("follow-up of an inbound message failed (message %s)", received.message_id)
            if not future.done():
                future.set_result(received)
