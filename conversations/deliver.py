"""deliver(): send queued outbound rows after commit, in order per person, with bounded retries.

A row is claimed (queued -> sending) before the network call, so two processes never send it
twice. Network errors and 5xx are retried with exponential backoff, a 429's retry_after is
honoured, and after `delivery_max_attempts` the row is marked failed so the worker sees it.
Rows left queued or sending by a crash are swept at start-up.
"""

from __future__ import annotations

import asyncio
import logging
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
    Event,
    Message,
)
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

    def kick(self, contact_id: int) -> None:
        """Make sure queued messages of this person get sent (one runner per person, in order)."""
        runner = self._runners.get(contact_id)
        if runner is not None and not runner.done():
            self._again.add(contact_id)
            return
        self._runners[contact_id] = asyncio.create_task(self._run(contact_id), name=f"outbox-{contact_id}")

    async def kick_messages(self, message_ids: list[int]) -> None:
        if not message_ids:
            return
        async with self.rt.sessionmaker() as session:
            contacts = (await session.execute(
                select(Message.contact_id).where(Message.id.in_(message_ids)).distinct())).scalars().all()
        for contact_id in contacts:
            self.kick(contact_id)

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

    async def _run(self, contact_id: int) -> None:
        try:
            while True:
                delay = await self._send_next(contact_id)
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

    async def _send_next(self, contact_id: int) -> float | None:
        """Send the oldest queued message of this person. Returns None when none is left, else a delay."""
        rt = self.rt
        async with rt.locks.hold(f"outbox:{contact_id}"):
            async with rt.sessionmaker() as session, session.begin():
                row = (await session.execute(
                    select(Message, Address, Contact)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .join(Address, Address.id == Conversation.address_id)
                    .join(Contact, Contact.id == Message.contact_id)
                    .where(Message.contact_id == contact_id, Message.direction == OUTBOUND,
                           Message.status.in_((QUEUED, SENDING)))
                    .order_by(Message.id).limit(1)
                )).first()
                if row is None:
                    return None
                message, address, contact = row
                if message.status == SENDING:
                    return 0.2  # another process is sending it; keep the order
                now = utcnow()
                if message.next_attempt_at and message.next_attempt_at > now:
                    return (message.next_attempt_at - now).total_seconds()
                attempts = message.attempts + 1
                claimed = await session.execute(
                    update(Message).where(Message.id == message.id, Message.status == QUEUED)
                    .values(status=SENDING, attempts=attempts)
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount != 1:
                    return 0.0
                outbound = outbound_of(message)
                conversation_id, organisation_id = message.conversation_id, contact.organisation_id
                context = {"last_inbound_at": contact.last_inbound_at, "organisation_id": organisation_id,
                           "worker_id": message.author_worker_id}
                if address.channel == "whatsapp":
                    context.update(await window_context(rt, session, message, contact))
            channel = rt.channels.get(address.channel)
            status, error, platform_id, delay = SENT, None, None, None
            payload_update, template_sent = {}, None
            if channel is None:
                status, error = FAILED, f"channel {address.channel} is not configured"
            else:
                try:
                    prepared = await rt.prepare_outbound(address.channel, outbound, context)
                    if prepared is None:  # the 24-hour window: held behind an unanswered invitation
                        status = HELD
                    else:
                        result = await channel.send(address.external_id, prepared, account=address.account)
                        platform_id = result.platform_message_id
                        if prepared.template and not outbound.template:  # invitation sent, message held
                            status, template_sent = HELD, prepared.template
                            payload_update = {"template": {"name": prepared.template,
                                                           "platform_message_id": platform_id}}
                except OutsideWindow:
                    if context.get("template") and not context.get("window_closed"):
                        status, delay, payload_update = QUEUED, 0.0, {"window_closed": True}
                    else:
                        status, error = FAILED, WINDOW_CLOSED
                except DeliveryError as failure:
                    error = failure.reason[:300]
                    if failure.retryable and attempts < rt.settings.delivery_max_attempts:
                        status = QUEUED
                        delay = failure.retry_after if failure.retry_after is not None else \
                            rt.settings.delivery_base_backoff * (2 ** (attempts - 1))
                    else:
                        status = FAILED
                except Exception as failure:  # a bug in an adapter must not lose the row
                    log.exception("unexpected delivery error on %s", address.channel)
                    error = type(failure).__name__
                    status = QUEUED if attempts < rt.settings.delivery_max_attempts else FAILED
                    delay = rt.settings.delivery_base_backoff * (2 ** (attempts - 1))
            async with rt.sessionmaker() as session, session.begin():
                values = {"status": status, "error": error}
                if payload_update:
                    values["payload"] = {**(message.payload or {}), **payload_update}
                if template_sent:
                    session.add(Event(conversation_id=conversation_id, type="template_sent",
                                      data={"message_id": message.id, "template": template_sent},
                                      created_at=utcnow()))
                if status == SENT:
                    values.update(sent_at=utcnow(), platform_message_id=platform_id, next_attempt_at=None)
                elif status == QUEUED:
                    values["next_attempt_at"] = utcnow() + timedelta(seconds=delay or 0)
                await session.execute(update(Message).where(Message.id == message.id).values(**values))
                if status in (SENT, FAILED):
                    session.add(Event(conversation_id=conversation_id,
                                      type="message_sent" if status == SENT else "message_failed",
                                      data={"message_id": message.id, **({"error": error} if error else {})},
                                      created_at=utcnow()))
            if status == HELD:
                await rt.notifier.publish(f"conversation:{conversation_id}",
                                          {"event": "message_held", "conversation": conversation_id})
            if status in (SENT, FAILED):
                payload = {"event": "message_sent" if status == SENT else "message_failed",
                           "conversation": conversation_id}
                await rt.notifier.publish(f"conversation:{conversation_id}", payload)
                if status == FAILED:
                    await rt.notifier.publish(f"org:{organisation_id}", payload)
            if status == FAILED:
                log.warning("message %s failed after %s attempts", message.id, attempts)
            return delay or 0.0 if status == QUEUED else 0.0


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
            session.add(Event(conversation_id=message.conversation_id, type="message_failed",
                              data={"message_id": message.id, "error": message.error}, created_at=utcnow()))
        elif STATUS_RANK.get(update_.status, 0) > STATUS_RANK.get(message.status, 0):
            message.status = update_.status
        else:
            return
        conversation_id = message.conversation_id
    if requeued is not None:
        rt.outbox.kick(requeued)
    await rt.notifier.publish(f"conversation:{conversation_id}", {"event": f"message_{update_.status}",
                                                                  "conversation": conversation_id})
