"""Background passes of the app (escalation, follow-ups, the retention purge): one loop for all.

    task = start_periodic("escalation", settings.routing_escalation_interval, lambda: escalate_due(rt))
    ...
    await stop_periodic(task)

A pass runs every `seconds` (0 or less: never); a failing pass is logged and the next one runs as
planned. `wait_first` says whether the first pass waits a period (passes that just started with
the app have nothing due yet) or runs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


async def repeat(name: str, seconds: float, work: Callable[[], Awaitable[object]], wait_first: bool) -> None:
    if wait_first and seconds and seconds > 0:
        await asyncio.sleep(seconds)
    while seconds and seconds > 0:
        try:
            await work()
        except Exception:
            log.exception("%s pass failed", name)
        await asyncio.sleep(seconds)


def start_periodic(name: str, seconds: float, work: Callable[[], Awaitable[object]], *,
                   wait_first: bool = True) -> asyncio.Task:
    return asyncio.create_task(repeat(name, seconds, work, wait_first), name=name)


async def stop_periodic(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
