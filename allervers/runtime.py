"""The Runtime: everything built once from Settings and passed explicitly (no module globals)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kernel.database import make_engine, make_sessionmaker
from kernel.live import MemoryNotifier, RedisNotifier
from kernel.locks import MemoryLocks, RedisLocks
from allervers.migrate import upgrade
from kernel.settings import Settings
from bots.base import OutboundMessage
from conversations.store import Pending, Thread
from flows.engine import Engine
from flows.library import FlowLibrary
from handoff.models import Organisation

log = logging.getLogger(__name__)

FLOWS_TOPIC = "flows"  # notifier topic: {"event": "flows_published", "organisation": id}

# An action runs outside any transaction: (runtime, conversation id, args, answers) -> result.
Action = Callable[["Runtime", int, dict, dict], Awaitable[Any]]


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker
    library: FlowLibrary
    flow_engine: Engine
    notifier: MemoryNotifier
    locks: MemoryLocks
    redis: Any = None
    channels: dict = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    outbox: Any = None
    intake: Any = None
    rights: Any = None
    directory: Any = None
    limiter: Any = None  # kernel.ratelimit.Limiter
    audio: Any = None  # conversations.media.AudioChecker (voice notes checked off the event loop)
    media: Any = None  # storage.media: people's files (local disk or an S3-compatible store)
    tasks: set = field(default_factory=set)
    _default_org: int | None = None
    _organisation_names: dict = field(default_factory=dict)
    # Flows per organisation: the engines of organisations that published revisions (the others
    # use `flow_engine`, built from the shipped files); each replaced whole (one assignment).
    flow_engines: dict[int, Engine] = field(default_factory=dict)
    flow_marks: dict[int, int] = field(default_factory=dict)  # organisation -> newest revision id loaded
    flow_sync: Any = None  # the task that hears publishes (allervers/runtime.py: flow_sync_loop)
    # Reloads take turns: a slower read of an older set never overwrites a newer one.
    _flow_reload: asyncio.Lock = field(default_factory=asyncio.Lock)

    # Flows per organisation ---------------------------------------------------------------------
    def engine_for(self, organisation_id: int | None) -> Engine:
        """The engine serving an organisation's people: its published set, else the shipped one.
        Lookups (commune resolver, positions) are the default engine's, shared."""
        engine = self.flow_engines.get(organisation_id) if organisation_id is not None else None
        if engine is None:
            return self.flow_engine
        if engine.locate is not self.flow_engine.locate:
            engine.locate = self.flow_engine.locate
        if engine.resolvers is not self.flow_engine.resolvers:
            engine.resolvers = self.flow_engine.resolvers
        return engine

    async def reload_flows(self, organisation_id: int) -> bool:
        """Rebuild an organisation's engine from the database (shipped files + published revisions)
        and swap it in. An invalid set (never published: the console validates first) is refused
        and the current one stays. Returns whether the engine changed."""
        async with self._flow_reload:
            return await self._reload_flows(organisation_id)

    async def _reload_flows(self, organisation_id: int) -> bool:
        from admin.flow_store import effective_sources, revision_marks
        from flows.library import load_sources

        async with self.sessionmaker() as session:
            sources = await effective_sources(session, organisation_id)
            mark = (await revision_marks(session)).get(organisation_id)
        if mark is None:
            changed = organisation_id in self.flow_engines
            self.flow_engines = {k: v for k, v in self.flow_engines.items() if k != organisation_id}
            return changed
        flows, errors = load_sources(sources, set(self.actions))
        if errors:
            log.error("published flows of organisation %s refused (%d problems)", organisation_id, len(errors))
            return False
        engine = Engine(flows, resolvers=self.flow_engine.resolvers, locate=self.flow_engine.locate)
        self.flow_engines = {**self.flow_engines, organisation_id: engine}
        self.flow_marks = {**self.flow_marks, organisation_id: mark}
        return True

    async def check_flow_revisions(self) -> list[int]:
        """Reload every organisation whose newest revision is not the one loaded. Returns them."""
        from admin.flow_store import revision_marks

        async with self.sessionmaker() as session:
            marks = await revision_marks(session)
        stale = [org for org, mark in marks.items() if self.flow_marks.get(org) != mark]
        stale += [org for org in self.flow_engines if org not in marks]
        for organisation_id in stale:
            await self.reload_flows(organisation_id)
        return stale

    async def announce_flows(self, organisation_id: int) -> None:
        """After a publish committed: this process reloads at once, every other one hears it."""
        await self.reload_flows(organisation_id)
        try:
            await self.notifier.publish(FLOWS_TOPIC, {"event": "flows_published", "organisation": organisation_id})
        except Exception:  # the periodic check catches up (settings.flows_refresh_seconds)
            log.exception("flows publish not announced")

    # Helpers used by the inbound path ---------------------------------------------------------
    async def default_organisation_id(self, session: AsyncSession) -> int:
        if self._default_org is None:
            self._default_org = (await session.execute(
                select(Organisation.id).where(Organisation.slug == self.settings.default_organisation))).scalar()
            if self._default_org is None:
                organisation = Organisation(slug=self.settings.default_organisation,
                                            name=self.settings.default_organisation.capitalize())
                session.add(organisation)
                await session.flush()
                self._default_org = organisation.id
        return self._default_org

    def locale_for(self, language_code: str | None) -> str:
        """A new contact's language from the platform's hint (words.catalogue.LANGUAGES; French otherwise)."""
        from words.catalogue import language_of

        return language_of(language_code)

    async def flow_context(self, session: AsyncSession, thread: Thread) -> dict:
        """Constants the flow texts may show. Organisation names are cached for a minute."""
        organisation_id = thread.conversation.organisation_id
        cached = self._organisation_names.get(organisation_id)
        now = time.monotonic()
        if cached is None or now - cached[1] > 60:
            organisation = await session.get(Organisation, organisation_id)
            retention = self.settings.retention_days if organisation.retention_days is None else organisation.retention_days
            cached = (organisation.name, now, retention)
            self._organisation_names[organisation_id] = cached
        return {"organisation": cached[0], "retention_days": cached[2], "channel": thread.address.channel}

    async def prepare_outbound(self, channel: str, message: OutboundMessage, context: dict) -> OutboundMessage:
        """Channel rules applied at send time (WhatsApp's 24-hour window plugs in here)."""
        prepare = getattr(self.channels.get(channel), "prepare", None)
        if prepare is None:
            return message
        return await prepare(message, context)

    def spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def after_commit(self, *pendings: Pending) -> None:
        """Deliver, notify and start actions once the transaction that produced them is committed
        (several at once after a batch: their live updates go out in one round trip)."""
        from conversations.actions import run_action

        updates, seen = [], set()
        for pending in pendings:
            for contact_id in pending.outbound:
                claimed = pending.direct.get(contact_id)
                if claimed:
                    self.outbox.send_claimed(contact_id, claimed, *pending.direct_to[contact_id])
                else:
                    self.outbox.kick(contact_id)
            for topic, payload in pending.notify:
                key = (topic, payload.get("event"), payload.get("conversation"))
                if key not in seen:
                    seen.add(key)
                    updates.append((topic, payload))
        try:
            await self.notifier.publish_many(updates)
        except Exception:  # live updates are a courtesy (pages refresh from the database): go on
            log.exception("live updates not published")
        from handoff import push

        push.notify_after_commit(self, updates)  # Web Push to workers' phones, in a task of its own
        for pending in pendings:
            for conversation_id in pending.actions:
                self.spawn(run_action(self, conversation_id))
            if pending.erase_contact_id is not None:
                from conversations.receive import erase_now

                pending.files_to_delete.extend(await erase_now(self, pending.erase_contact_id))
            if pending.farewell:
                self.spawn(self._farewell(*pending.farewell))
            for path in pending.files_to_delete:
                try:
                    os.remove(path)
                except OSError:
                    pass

    async def _farewell(self, channel: str, user_id: str, account: str | None, text: str) -> None:
        """The one message sent without a row: its recipient no longer exists in the database."""
        sender = self.channels.get(channel)
        if sender is None:
            return
        for attempt in range(3):
            try:
                await sender.send(user_id, OutboundMessage(text), account=account)
                return
            except Exception:
                await asyncio.sleep(0.5 * (attempt + 1))

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until background work (actions, deliveries) is done. For tests and shutdown."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            tasks = [t for t in self.tasks if not t.done()]
            if tasks:
                await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            await self.outbox.drain(max(0.0, deadline - loop.time()))
            if not [t for t in self.tasks if not t.done()]:
                return

    async def close(self) -> None:
        if self.flow_sync is not None:
            self.flow_sync.cancel()
            try:
                await self.flow_sync
            except (asyncio.CancelledError, Exception):
                pass
        pending = list(self.tasks)
        for task in pending:
            task.cancel()
        if pending:  # unwound before the engine closes: none keeps a connection checked out
            await asyncio.wait(pending, timeout=5.0)
        if self.outbox:
            await self.outbox.close()
        for channel in self.channels.values():
            await channel.close()
        await self.notifier.close()
        if self.limiter is not None:
            await self.limiter.close()
        if self.audio is not None:
            self.audio.close()
        if self.media is not None:
            await self.media.close()
        if self.rights is not None and hasattr(self.rights, "close"):
            self.rights.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


async def build_runtime(settings: Settings, *, migrate: bool = True, channels: dict | None = None) -> Runtime:
    from conversations.actions import ACTIONS
    from conversations.deliver import Outbox
    from conversations.intake import Intake

    engine = make_engine(settings.database_url, settings.database_pool_size, settings.database_max_overflow)
    if migrate:
        await upgrade(engine)
    redis = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(settings.redis_url)
        notifier = RedisNotifier(redis)
        locks = RedisLocks(redis)
    else:
        notifier, locks = MemoryNotifier(), MemoryLocks()
    await notifier.start()
    library = FlowLibrary(actions=set(ACTIONS))
    errors = library.load()
    if errors:
        raise RuntimeError("invalid flows: " + "; ".join(errors))
    rt = Runtime(settings=settings, engine=engine, sessionmaker=make_sessionmaker(engine), library=library,
                 flow_engine=Engine(library.flows), notifier=notifier, locks=locks, redis=redis,
                 actions=dict(ACTIONS))
    from storage.media import build_media_store

    rt.media = build_media_store(settings)
    await rt.media.start()
    rt.outbox = Outbox(rt)
    await start_flow_sync(rt)
    from kernel.ratelimit import Limiter
    from conversations.media import AudioChecker

    rt.limiter = Limiter.from_settings(settings)
    rt.audio = AudioChecker(settings)
    # One batch written at a time: the next one grows meanwhile (measured on PostgreSQL: 177 updates/s
    # with two writers, 310 with one; on SQLite there is one writer connection anyway).
    rt.intake = Intake(rt)
    rt.channels = channels if channels is not None else build_channels(settings, notifier)
    return rt


async def start_flow_sync(rt: Runtime) -> None:
    """Load every organisation's published flows, then follow publishes: a notifier message on
    FLOWS_TOPIC (from any process, through Redis when configured) reloads that organisation; a
    check of the newest revision every `flows_refresh_seconds` catches a missed message."""
    try:
        await rt.check_flow_revisions()
    except Exception:  # no flow tables yet (migrate=False on an old schema): the shipped flows serve
        log.warning("published flows not loaded; the shipped flows serve everyone")
    ready = asyncio.Event()
    rt.flow_sync = asyncio.create_task(flow_sync_loop(rt, ready), name="flow-sync")
    waiting = asyncio.ensure_future(ready.wait())
    await asyncio.wait({rt.flow_sync, waiting}, return_when=asyncio.FIRST_COMPLETED)  # subscribed (or failed)
    waiting.cancel()


async def flow_sync_loop(rt: Runtime, ready: asyncio.Event) -> None:
    interval = rt.settings.flows_refresh_seconds
    async with rt.notifier.subscribe(FLOWS_TOPIC) as subscription:
        ready.set()
        loop = asyncio.get_running_loop()
        next_check = loop.time() + interval
        while True:
            timeout = max(0.0, next_check - loop.time()) if interval else None
            message = await subscription.get(timeout)
            try:
                if message and isinstance(message.get("organisation"), int):
                    await rt.reload_flows(message["organisation"])
                if interval and loop.time() >= next_check:
                    next_check = loop.time() + interval
                    await rt.check_flow_revisions()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("flows reload failed; retried at the next check")


def build_channels(settings: Settings, notifier) -> dict:
    from bots.webchat import WebChatChannel

    channels: dict = {"webchat": WebChatChannel(notifier)}
    if settings.telegram_bot_token:
        from bots.telegram import TelegramChannel  # imports aiogram (slow): only when configured

        channels["telegram"] = TelegramChannel.from_settings(settings)
    if settings.whatsapp_access_token:
        from bots.whatsapp import WhatsAppChannel

        channels["whatsapp"] = WhatsAppChannel.from_settings(settings)
    return channels


async def start_background(rt: Runtime) -> None:
    """After start-up: resume what a crash interrupted, then freeze the start-up heap (faster GC)."""
    from conversations.actions import sweep_actions
    from conversations.receive import handle_stored
    from conversations.models import INBOUND, Message

    await rt.outbox.sweep()
    await sweep_actions(rt)
    async with rt.sessionmaker() as session:
        unhandled = (await session.execute(select(Message.id).where(
            Message.direction == INBOUND, Message.handled_at.is_(None)).order_by(Message.id))).scalars().all()
    for message_id in unhandled:
        await handle_stored(rt, message_id)
    gc.collect()
    gc.freeze()
