"""deliver(): send queued outbound rows after commit, in order per person, with bounded retries.

A row is claimed (queued -> sending) before the network call, so two processes never send it
twice. Network errors and 5xx are retried with exponential backoff, a 429's retry_after is
honoured, and after `delivery_max_attempts` the row is marked failed so the worker sees it.
Rows left queued or sending by a crash are swept at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update

from allervers.database import utcnow
from bots.base import Attachment, Choice, DeliveryError, OutboundMessage, OutsideWindow
from conversations.models import (
    FAILED,
    OUTBOUND,
    QUEUED,
    SENDING,
    SENT,
    Address,
    Contact,
    Conversation,
    Message,
)
from conversations.store import log_event
from conversations.window import HELD, WINDOW_CLOSED, window_context, window_failure

log = logging.getLogger(__name__)


def outbound_of(message: Message) -> OutboundMessage:
    payload = message.payload or {}
    attachment = None
    if payload.get("attachment"):
        attachment = Attachment(**payload["attachment"])
    return OutboundMessage(
        text=message.text or "",
        choices=tuple(Choice(v, t) for v, t in payload.get("choices", [])),
        request_location=bool(payload.get("request_location")),
        attachment=attachment,
        attachment_path=payload.get("attachment_path"),
    )


class Outbox:
    def __init__(self, rt) -> None:
        self.rt = rt
        self._runners: dict[int, asyncio.Task] = {}
        self._again: set[int] = set()
        self._recorder = _Recorder(rt, self._record_all, self._announce)

    def kick(self, contact_id: int) -> None:
        """Make sure queued messages of this person get sent (one runner per person, in order)."""
        runner = self._runners.get(contact_id)
        if runner is not None and not runner.done():
            self._again.add(contact_id)
            return
        self._runners[contact_id] = asyncio.create_task(self._run(contact_id), name=f"outbox-{contact_id}")

    def can_claim_at_once(self, contact_id: int, channel: str) -> bool:
        """New rows of this person may be claimed in their own transaction when nothing older can be
        waiting: no runner for them here (a runner exists while rows wait for a retry). WhatsApp keeps
        the queued path (its 24-hour window logic looks at one message at a time)."""
        runner = self._runners.get(contact_id)
        return channel != "whatsapp" and (runner is None or runner.done())

    def send_claimed(self, contact_id: int, rows: list, address: Address, contact: Contact) -> None:
        """Send rows claimed (status sending) by a committed transaction, then whatever else is queued."""
        context = {"last_inbound_at": contact.last_inbound_at, "organisation_id": contact.organisation_id}
        jobs = [_Job(message, address, contact.organisation_id, 1, outbound_of(message),
                     {**context, "worker_id": message.author_worker_id}) for message in rows]
        self._runners[contact_id] = asyncio.create_task(self._run(contact_id, jobs), name=f"outbox-{contact_id}")

    async def sweep(self) -> None:
        """At start-up: rows a crash left 'sending' go back to the queue; every queued person is kicked."""
        async with self.rt.sessionmaker() as session, session.begin():
            await session.execute(update(Message).where(Message.direction == OUTBOUND, Message.status == SENDING)
                                  .values(status=QUEUED))
            contacts = (await session.execute(
                select(Message.contact_id).where(Message.direction == OUTBOUND, Message.status == QUEUED).distinct()
            )).scalars().all()
        for contact_id in contacts:
            self.kick(contact_id)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for the runners (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            runners = [r for r in self._runners.values() if not r.done()]
            if not runners or loop.time() > deadline:
                return
            await asyncio.wait(runners, timeout=max(0.0, deadline - loop.time()))

    async def close(self) -> None:
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        for runner in runners:
            try:
                await runner
            except (asyncio.CancelledError, Exception):
                pass
        await self._recorder.finish()  # what was sent gets recorded (else it would be sent again)

    async def _run(self, contact_id: int, claimed: list | None = None) -> None:
        try:
            if claimed:
                async with self.rt.locks.hold(f"outbox:{contact_id}"):
                    delay = await self._send_jobs(claimed)
                if delay is None and contact_id not in self._again:
                    return  # all sent (or definitely failed), nothing else was queued meanwhile
                if delay:
                    await asyncio.sleep(delay)
            while True:
                delay = await self._send_burst(contact_id)
                if delay is None:
                    if contact_id in self._again:
                        self._again.discard(contact_id)
                        continue
                    return
                if delay > 0:
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox runner failed for contact %s", contact_id)
        finally:
            self._runners.pop(contact_id, None)

    async def _send_burst(self, contact_id: int) -> float | None:
        """Send this person's oldest queued messages, in order. None when none is left, else a delay.

        One transaction claims a burst of ready rows, the sends happen outside any transaction, and
        one transaction records every outcome. A retryable failure stops the burst (order is kept);
        the unsent rest goes back to the queue untouched.
        """
        rt = self.rt
        async with rt.locks.hold(f"outbox:{contact_id}"):
            try:
                async with rt.sessionmaker() as session, session.begin():
                    rows = (await session.execute(
                        select(Message, Address, Contact)
                        .join(Conversation, Conversation.id == Message.conversation_id)
                        .join(Address, Address.id == Conversation.address_id)
                        .join(Contact, Contact.id == Message.contact_id)
                        .where(Message.contact_id == contact_id, Message.direction == OUTBOUND,
                               Message.status.in_((QUEUED, SENDING)))
                        .order_by(Message.id).limit(BURST)
                    )).all()
                    if not rows:
                        return None
                    now = utcnow()
                    first = rows[0][0]
                    if first.status == SENDING:
                        return 0.2  # another process is sending it; keep the order
                    if first.next_attempt_at and first.next_attempt_at > now:
                        return (first.next_attempt_at - now).total_seconds()
                    batch = []
                    for message, address, contact in rows:
                        if message.status != QUEUED or (message.next_attempt_at and message.next_attempt_at > now):
                            break
                        batch.append((message, address, contact))
                        if address.channel == "whatsapp":
                            break  # the 24-hour window logic looks at one message at a time
                    claimed = await session.execute(
                        update(Message).where(Message.id.in_([m.id for m, _, _ in batch]), Message.status == QUEUED)
                        .values(status=SENDING, attempts=Message.attempts + 1)
                        .execution_options(synchronize_session=False))
                    if claimed.rowcount != len(batch):
                        raise _Contended()
                    jobs = []
                    for message, address, contact in batch:
                        context = {"last_inbound_at": contact.last_inbound_at,
                                   "organisation_id": contact.organisation_id, "worker_id": message.author_worker_id}
                        if address.channel == "whatsapp":
                            context.update(await window_context(rt, session, message, contact))
                        jobs.append(_Job(message, address, contact.organisation_id, message.attempts + 1,
                                         outbound_of(message), context))
            except _Contended:
                return 0.2
            delay = await self._send_jobs(jobs)
            return 0.0 if delay is None else delay

    async def _send_jobs(self, jobs: list["_Job"]) -> float:
        """Send claimed jobs in order, record their outcomes (with other runners', see _Recorder), announce them."""
        outcomes: list[tuple[_Job, _Outcome]] = []
        for job in jobs:
            outcome = await self._deliver(job)
            outcomes.append((job, outcome))
            if outcome.status == QUEUED:
                break
        unsent = [job.message.id for job in jobs[len(outcomes):]]
        await self._recorder.record(outcomes, unsent)  # and announced
        last = outcomes[-1][1]
        if last.status == QUEUED:
            return last.delay or 0.0
        return None if not unsent else 0.0

    async def _deliver(self, job: "_Job") -> "_Outcome":
        rt = self.rt
        channel = rt.channels.get(job.address.channel)
        if channel is None:
            return _Outcome(FAILED, error=f"channel {job.address.channel} is not configured")
        attempts, context = job.attempts, job.context
        try:
            prepared = await rt.prepare_outbound(job.address.channel, job.outbound, context)
            if prepared is None:  # the 24-hour window: held behind an unanswered invitation
                return _Outcome(HELD)
            result = await channel.send(job.address.external_id, prepared, account=job.address.account)
            if prepared.template and not job.outbound.template:  # invitation sent, message held
                return _Outcome(HELD, platform_id=result.platform_message_id, template_sent=prepared.template,
                                payload_update={"template": {"name": prepared.template,
                                                             "platform_message_id": result.platform_message_id}})
            return _Outcome(SENT, platform_id=result.platform_message_id)
        except OutsideWindow:
            if context.get("template") and not context.get("window_closed"):
                return _Outcome(QUEUED, delay=0.0, payload_update={"window_closed": True})
            return _Outcome(FAILED, error=WINDOW_CLOSED)
        except DeliveryError as failure:
            error = failure.reason[:300]
            if failure.retryable and attempts < rt.settings.delivery_max_attempts:
                delay = failure.retry_after if failure.retry_after is not None else \
                    rt.settings.delivery_base_backoff * (2 ** (attempts - 1))
                return _Outcome(QUEUED, error=error, delay=delay)
            return _Outcome(FAILED, error=error)
        except Exception as failure:  # a bug in an adapter must not lose the row
            log.exception("unexpected delivery error on %s", job.address.channel)
            if attempts < rt.settings.delivery_max_attempts:
                return _Outcome(QUEUED, error=type(failure).__name__,
                                delay=rt.settings.delivery_base_backoff * (2 ** (attempts - 1)))
            return _Outcome(FAILED, error=type(failure).__name__)

    async def _record_all(self, session, outcomes: list) -> None:
        """Sent rows in one executemany UPDATE; the rarer outcomes one by one."""
        plain = [outcome.status == SENT and not outcome.payload_update for _, outcome in outcomes]
        sent = [pair for pair, is_plain in zip(outcomes, plain) if is_plain]
        if sent:
            now = utcnow()
            await session.execute(update(Message), [
                {"id": job.message.id, "status": SENT, "error": None, "sent_at": now,
                 "platform_message_id": outcome.platform_id, "next_attempt_at": None} for job, outcome in sent])
            for job, _ in sent:
                log_event(session, job.message.conversation_id, "message_sent", {"message_id": job.message.id})
        for (job, outcome), is_plain in zip(outcomes, plain):
            if not is_plain:
                await self._record(session, job, outcome)

    @staticmethod
    async def _record(session, job: "_Job", outcome: "_Outcome") -> None:
        message = job.message
        values = {"status": outcome.status, "error": outcome.error}
        if outcome.payload_update:
            values["payload"] = {**(message.payload or {}), **outcome.payload_update}
        if outcome.template_sent:
            log_event(session, message.conversation_id, "template_sent",
                      {"message_id": message.id, "template": outcome.template_sent})
        if outcome.status == SENT:
            values.update(sent_at=utcnow(), platform_message_id=outcome.platform_id, next_attempt_at=None)
        elif outcome.status == QUEUED:
            values["next_attempt_at"] = utcnow() + timedelta(seconds=outcome.delay or 0)
        await session.execute(update(Message).where(Message.id == message.id).values(**values)
                              .execution_options(synchronize_session=False))
        if outcome.status in (SENT, FAILED):
            log_event(session, message.conversation_id,
                      "message_sent" if outcome.status == SENT else "message_failed",
                      {"message_id": message.id, **({"error": outcome.error} if outcome.error else {})})
        if outcome.status == FAILED:
            log.warning("message %s failed after %s attempts", message.id, job.attempts)

    async def _announce(self, outcomes: list) -> None:
        updates, seen = [], set()
        for job, outcome in outcomes:
            conversation_id = job.message.conversation_id
            event = {HELD: "message_held", SENT: "message_sent", FAILED: "message_failed"}.get(outcome.status)
            if event is None:
                continue
            topics = [f"conversation:{conversation_id}"]
            if outcome.status == FAILED:
                topics.append(f"org:{job.organisation_id}")
            for topic in topics:
                if (topic, event) not in seen:
                    seen.add((topic, event))
                    updates.append((topic, {"event": event, "conversation": conversation_id}))
        await self.rt.notifier.publish_many(updates)


class _Recorder:
    """Writes the outcomes of every runner's sends together: whatever waits when the previous
    write ends goes into one transaction (no timer; alone, a runner's outcomes are written at once),
    then announces them in one live update. A runner goes on only once its outcomes are committed,
    so its order and retries are kept. If the shared transaction fails (say, a person erased
    meanwhile), each runner's outcomes are written alone, so one cannot fail the others."""

    def __init__(self, rt, record_all, announce) -> None:
        self.rt = rt
        self.record_all = record_all
        self.announce = announce
        self._waiting: list[tuple[list, list[int], asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def record(self, outcomes: list, unsent: list[int]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((outcomes, unsent, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="outbox-recorder")
        await asyncio.shield(future)

    async def finish(self, timeout: float = 10.0) -> None:
        if self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer], timeout=timeout)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            written = await self._write_together(batch)
            try:
                await self.announce([pair for outcomes, _, _ in written for pair in outcomes])
            except Exception:  # live updates are a courtesy: pages refresh from the database
                log.exception("delivery outcomes not announced")
            for _, _, future in written:
                if not future.done():
                    future.set_result(None)

    async def _write_together(self, batch: list) -> list:
        """Write the batch in one transaction; returns the entries written (a failing one alone
        hears of its error; its rows stay 'sending' until the start-up sweep)."""
        try:
            async with self.rt.sessionmaker() as session, session.begin():
                await self.record_all(session, [pair for outcomes, _, _ in batch for pair in outcomes])
                unsent = [message_id for _, ids, _ in batch for message_id in ids]
                if unsent:
                    await session.execute(update(Message).where(Message.id.in_(unsent))
                                          .values(status=QUEUED, attempts=Message.attempts - 1)
                                          .execution_options(synchronize_session=False))
            return batch
        except Exception as error:
            if len(batch) > 1:
                log.warning("delivery outcomes of %d runners failed together; writing them one by one", len(batch))
                return [entry for one in batch for entry in await self._write_together([one])]
            future = batch[0][2]
            if not future.done():
                future.set_exception(error)
            return []


BURST = 10


class _Contended(Exception):
    """Another process claimed part of the burst first."""


@dataclass
class _Job:
    message: Message
    address: Address
    organisation_id: int
    attempts: int
    outbound: OutboundMessage
    context: dict


@dataclass
class _Outcome:
    status: str
    error: str | None = None
    platform_id: str | None = None
    delay: float | None = None
    payload_update: dict = field(default_factory=dict)
    template_sent: str | None = None


STATUS_RANK = {SENT: 1, "delivered": 2, "read": 3}


async def record_status(rt, update_) -> None:
    """A platform's delivery status (sent, delivered, read, failed) for a message we sent."""
    async with rt.sessionmaker() as session, session.begin():
        message = (await session.execute(select(Message).where(
            Message.platform_message_id == update_.platform_message_id,
            Message.direction == OUTBOUND))).scalar()
        if message is None:
            return
        requeued = None
        if update_.status == FAILED and window_failure(message, update_.error) == "requeue":
            requeued = message.contact_id  # 131047: the window is closed; try the template path
        elif update_.status == FAILED:
            if message.status != FAILED:
                message.status, message.error = FAILED, (update_.error or "failed")[:300]
            log_event(session, message.conversation_id, "message_failed",
                      {"message_id": message.id, "error": message.error})
        elif STATUS_RANK.get(update_.status, 0) > STATUS_RANK.get(message.status, 0):
            message.status = update_.status
        else:
            return
        conversation_id = message.conversation_id
    if requeued is not None:
        rt.outbox.kick(requeued)
    await rt.notifier.publish(f"conversation:{conversation_id}", {"event": f"message_{update_.status}",
                                                                  "conversation": conversation_id})
