"""Graceful shutdown.

On SIGTERM (an orchestrator's stop, a rolling upgrade) the process first starts *draining*: /readyz
answers 503 (the load balancer stops sending), and platform webhooks and the web chat's writes get
503 + Retry-After (Telegram and WhatsApp retry later; another process takes them), while the
requests already in progress run to their end. Then, before the runtime closes:

1. the intake finishes the batch being written (a webhook answered 200 only once its update is
   committed: nothing the platform believes delivered is lost);
2. the outbox stops: no new send starts, the sends waiting for the send pacer (a backlog behind
   the platform's rate limit) give up at once and their rows go back to the queue; the sends in
   flight get `shutdown_grace_seconds` to finish and be recorded; a row still held after that
   ('sending') is recorded as sent when the sent journal says so, queued again otherwise; the other
   processes are told to pick up every person this one was sending to at once (OUTBOX_TOPIC);
3. the locks this process still holds are released (Redis), so nobody waits for them to expire.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

OUTBOX_TOPIC = "ops:outbox"  # {"event": "handed_back", "contacts": [ids]}
DRAINED_PREFIXES = ("/bots/", "/chat/api/")
RETRY_AFTER = "5"


class DrainingMiddleware:
    """While draining: 503 for writes on the public entry points (webhooks, web chat)."""

    def __init__(self, app, state) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if (scope["type"] == "http" and getattr(self.state, "draining", False)
                and scope.get("method") == "POST" and scope.get("path", "").startswith(DRAINED_PREFIXES)):
            response = JSONResponse({"ok": False, "error": "⚠️ Le service redémarre. Réessayez dans quelques secondes."},
                                    status_code=503, headers={"Retry-After": RETRY_AFTER, "Connection": "close"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def begin_draining(app) -> None:
    if not getattr(app.state, "draining", False):
        app.state.draining = True
        log.info("draining: new webhooks are refused (503), requests in progress finish")


def install_signal_hook(app) -> None:
    """Start draining the moment SIGTERM/SIGINT arrives, then let the server's own handler (uvicorn's)
    stop it. Only in the main thread (a server run in a thread, as in tests, keeps its handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(number, frame, previous=previous):
            begin_draining(app)
            previous(number, frame)

        signal.signal(sig, handler)


async def finish_intake(rt, timeout: float) -> None:
    intake = rt.intake
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        busy = [t for t in (intake._worker, *intake._alone) if t is not None and not t.done()]
        if not busy and not intake._waiting:
            return
        if busy:
            await asyncio.wait(busy, timeout=max(0.0, deadline - loop.time()))
        else:
            await asyncio.sleep(0.01)
    log.warning("shutdown: the intake did not finish in %.1f s", timeout)


async def hand_back_outbox(rt, timeout: float) -> int:
    """Stop the outbox (no new send; the sends waiting for the pacer give up), finish the sends in
    flight (up to `timeout`), then hand back the rows still held and tell the other processes about
    every person this one was sending to. Returns how many rows were resolved from the journal."""
    outbox = rt.outbox
    people = outbox.stop()  # a backlog's rows go back to the queue at once, not sent one by one here
    runners = [r for r in outbox._runners.values() if not r.done()]
    if runners:
        await asyncio.wait(runners, timeout=timeout)
    for runner in list(outbox._runners.values()):
        runner.cancel()
    for runner in list(outbox._runners.values()):
        try:
            await runner
        except (asyncio.CancelledError, Exception):
            pass
    await outbox._recorder.finish()
    held = sorted(outbox.in_hand)
    if held:  # (a send that outlived the grace: cancelled, the journal decides)
        notes = await outbox._sweep_rows(held)  # sent, held or queued again
        try:
            await outbox.journal.forget(notes)
        except Exception:
            log.warning("sent journal notes not dropped after the hand-back")
        outbox.in_hand.clear()
        from sqlalchemy import select

        from conversations.models import Message

        async with rt.sessionmaker() as session:
            people |= set((await session.execute(
                select(Message.contact_id).where(Message.id.in_(held)))).scalars().all())
    if not people:
        return len(held)
    try:
        await rt.notifier.publish(OUTBOX_TOPIC, {"event": "handed_back", "contacts": sorted(people)})
    except Exception:
        log.warning("outbox hand-back not announced (the next start-up sweep sends them)")
    log.info("shutdown: the outbox handed back %d people's rows (%d resolved from the sent journal)",
             len(people), len(held))
    return len(held)


async def release_locks(rt) -> int:
    locks = rt.locks
    held = dict(getattr(locks, "_held", {}) or {})
    by_token: dict[str, list[str]] = {}
    for key, token in held.items():
        by_token.setdefault(token, []).append(key)
    for token, keys in by_token.items():
        await locks._free(keys, token)
    renewer = getattr(locks, "_renewer", None)
    if renewer is not None:
        renewer.cancel()
    return len(held)


async def graceful_stop(app, rt) -> None:
    begin_draining(app)
    grace = rt.settings.shutdown_grace_seconds
    await finish_intake(rt, grace)
    try:
        await hand_back_outbox(rt, grace)
    except Exception:
        log.exception("outbox hand-back failed (the start-up sweep of any process resolves the rows)")
    try:
        released = await release_locks(rt)
        if released:
            log.info("shutdown: %d locks released", released)
    except Exception:
        log.warning("locks not released (they expire within seconds)")


async def follow_hand_backs(rt, ready: asyncio.Event | None = None) -> None:
    """Every process: rows another one handed back at its shutdown are sent from here at once."""
    async with rt.notifier.subscribe(OUTBOX_TOPIC) as subscription:
        if ready is not None:
            ready.set()
        while True:
            message = await subscription.get(None)
            if not message or message.get("event") != "handed_back":
                continue
            for contact_id in message.get("contacts") or []:
                if isinstance(contact_id, int):
                    rt.outbox.kick(contact_id)
