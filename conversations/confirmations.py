"""Delivery statuses, and the WhatsApp campaign sends a crash left in doubt, confirmed by them.

Every WhatsApp send carries `ob:<organisation id>:<message id>` (OutboundMessage.tracking, sent as
the Cloud API's `biz_opaque_callback_data`: opaque, no personal data), which Meta echoes in the
statuses of that message's webhooks (sent, delivered, read, failed). A status names our row by its
platform id (wamid) once the outcome is recorded, and by that tracking before.

After a kill -9 a campaign send noted "in doubt" (deliver.IN_DOUBT: its request's last bytes were
next) may or may not have reached Meta: there is one event-loop turn between the durable note and
the body's write. Telegram's note precedes the call and it has no such field: its sends in doubt
stay "sent" at once (never twice). A WhatsApp one is held `awaiting` (a row status: durable, it
survives another crash) with `payload.awaiting_since` (the sweep's time, after the crash, so after
whatever the row's request did):

- a status naming it arrives (Meta retries a webhook that failed while we were down, with backoff,
  for up to 7 days): it is recorded sent with the wamid (delivered / read counting goes on), or
  failed with Meta's error;
- statuses arrive for sends of the same number made after `awaiting_since` (rows created later:
  they left later), so webhooks are flowing past it: `payload.flowing_since` is set, and once
  `whatsapp_confirm_grace_seconds` (1 h) have passed since with still no status for it, it never
  reached Meta: it is queued again, once (`payload.resent_after_doubt`), unless the person said
  « stop » or withdrew the news consent since (failed, NOT_RESENT); a status that arrives while it
  waits in the queue still confirms it and nothing is sent;
- no webhook at all for `whatsapp_confirm_max_seconds` (24 h: webhooks not configured, or Meta's
  down that long): recorded as sent, the old reading (never twice).

The residual risk (ARCHITECTURE.md, "Delivery guarantee"): a row's status held back by Meta longer
than the grace while statuses of later sends get through — then that person gets the news twice.

A status for a row still `sending` (its outcome not yet recorded: a live sender, or a dead process's
row the sweep has not reached yet) is noted in the sent journal ("sent", with the wamid), where the
sweep reads it: answered 200, it is never lost.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import select, update

from bots.phones import digits
from kernel.database import slices, utcnow
from conversations.models import (AWAITING, FAILED, OUTBOUND, QUEUED, SENDING, SENT, Address, Contact,
                                  Conversation, Message)
from conversations.store import log_event
from conversations.window import window_failure

log = logging.getLogger(__name__)

STATUS_RANK = {SENT: 1, "delivered": 2, "read": 3}
_TRACKING = re.compile(r"ob:([1-9][0-9]{0,9}):([1-9][0-9]{0,9})")
FLOW_MARGIN = timedelta(seconds=2)
NOT_RESENT = "not sent again: the person stopped or withdrew the news consent since the crash"  # clocks of several processes: a later row is later by this much


def tracking_of(organisation_id: int | None, message_id: int) -> str:
    """The opaque value a send carries back in its statuses (no personal data: two row ids)."""
    return f"ob:{organisation_id or 0}:{message_id}"


def tracked(value: str | None) -> tuple[int, int] | None:
    """(organisation id, message id) named by a status's tracking, or None (not ours, malformed)."""
    match = _TRACKING.fullmatch(value or "")
    if match is None:
        return None
    organisation_id, message_id = int(match.group(1)), int(match.group(2))
    return (organisation_id, message_id) if message_id < 2**31 and organisation_id < 2**31 else None


def parse_time(value) -> datetime | None:
    """An ISO time kept in a row's payload, or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def awaiting_payload(payload: dict | None, now: datetime) -> dict:
    """A row the sweep holds awaiting confirmation (see the module)."""
    return {**without_wait(payload), "awaiting_since": now.isoformat()}


def without_wait(payload: dict | None) -> dict:
    """A row's payload without the marks of its wait for a confirmation."""
    return {k: v for k, v in (payload or {}).items() if k not in ("awaiting_since", "flowing_since")}


async def record_statuses(rt, updates: list) -> None:
    """Statuses of one webhook, in one transaction: the rows they name (by wamid, else by tracking)
    move on (sent < delivered < read; failed), rows in doubt are confirmed, and rows awaiting
    confirmation learn that statuses of later sends arrive (see the module)."""
    if not updates:
        return
    requeued, topics, journal_notes = set(), [], {}
    async with rt.sessionmaker() as session, session.begin():
        wamids = list(dict.fromkeys(u.platform_message_id for u in updates))
        # the common case (a status of a recorded send) reads a few columns and writes one UPDATE;
        # (in slices: a 2 MB body holds tens of thousands of statuses, beyond a statement's parameters)
        known = {}
        for part in slices(wamids, 500):
            known.update((r.platform_message_id, r) for r in (await session.execute(select(
                Message.id, Message.platform_message_id, Message.status, Message.conversation_id, Message.contact_id,
                Message.created_at).where(Message.platform_message_id.in_(part), Message.direction == OUTBOUND))).all())
        named = {}
        for u in updates:
            if u.platform_message_id not in known and (ids := tracked(u.tracking)) is not None:
                named[ids[1]] = ids[0]
        candidates = {}
        for part in slices(list(named), 500):
            candidates.update((m.id, (m, a, org)) for m, a, org in (await session.execute(
                select(Message, Address, Contact.organisation_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(Address, Address.id == Conversation.address_id)
                .join(Contact, Contact.id == Message.contact_id)
                .where(Message.id.in_(part), Message.direction == OUTBOUND,
                       Message.channel == "whatsapp", Address.channel == "whatsapp"))).all())
        newest: dict[str, datetime] = {}  # per number: the latest-created row a status names
        status_now = {r.id: r.status for r in known.values()}
        raised: dict[int, str] = {}  # row id -> its new status (sent < delivered < read)
        for u in updates:
            row = known.get(u.platform_message_id)
            if row is None:
                message = _confirmable(rt, u, named, candidates)
                if message is None:
                    continue
                if message.status == SENDING:  # its outcome is not recorded yet: the sweep reads this
                    note = journal_notes.setdefault(message.id, {"status": SENT, "platform_id": u.platform_message_id})
                    if STATUS_RANK.get(u.status, 0) > STATUS_RANK.get(note.get("reached"), 1):
                        note["reached"] = u.status  # delivered / read: the sweep records that far
                    continue
                _confirm(session, message, u)
                topics.append((message.conversation_id, u.status))
                continue
            if u.status == FAILED:
                message = await session.get(Message, row.id)
                if window_failure(message, u.error) == "requeue":
                    requeued.add(message.contact_id)  # 131047: the window is closed; try the template path
                else:
                    if message.status != FAILED:
                        message.status, message.error = FAILED, (u.error or "failed")[:300]
                    status_now[row.id] = FAILED
                    log_event(session, message.conversation_id, "message_failed",
                              {"message_id": message.id, "error": message.error})
                    topics.append((message.conversation_id, u.status))
            elif STATUS_RANK.get(u.status, 0) > STATUS_RANK.get(status_now[row.id], 0):
                status_now[row.id] = raised[row.id] = u.status
                topics.append((row.conversation_id, u.status))
            if u.account and row.created_at is not None:
                newest[u.account] = max(newest.get(u.account, row.created_at), row.created_at)
        if raised:
            await session.execute(update(Message), [{"id": i, "status": s} for i, s in raised.items()])
        if newest and getattr(rt.outbox, "awaiting", False):
            await _mark_flowing(rt, session, newest)
    if journal_notes:
        for message_id, note in journal_notes.items():
            try:
                await rt.outbox.journal.note(message_id, note)
            except Exception:
                log.warning("sent journal unavailable for the status of message %s", message_id, exc_info=True)
    for contact_id in requeued:
        rt.outbox.kick(contact_id)
    if topics:
        await rt.notifier.publish_many([(f"conversation:{c}", {"event": f"message_{s}", "conversation": c})
                                        for c, s in dict.fromkeys(topics)])


def _confirmable(rt, u, named: dict, candidates: dict) -> Message | None:
    """The row a status names by its tracking, if the status fits it: the organisation, the person
    (recipient_id) and the number are the row's; it is in doubt (awaiting, queued again after a
    doubt and not yet sent, or still sending). Anything else changes nothing."""
    ids = tracked(u.tracking)
    if ids is None or ids[1] not in candidates:
        return None
    message, address, organisation_id = candidates[ids[1]]
    from outreach.pacing import account_of

    person = digits(u.recipient or "")  # "+33 6…" and "336…" are one person
    if organisation_id != ids[0] or not person or person != digits(address.external_id):
        return None
    if u.account != account_of(rt.settings, "whatsapp", address.account):
        return None
    resent = (message.payload or {}).get("resent_after_doubt") and message.status == QUEUED
    if message.status not in (AWAITING, SENDING) and not resent:
        return None
    return message


def _confirm(session, message: Message, u) -> None:
    """A status for a row in doubt: it reached Meta. Sent (or further) with its wamid, or failed."""
    was = message.status
    message.payload = {**without_wait(message.payload), "confirmed_by_status": True}
    message.platform_message_id = u.platform_message_id
    message.sent_at, message.next_attempt_at = message.sent_at or utcnow(), None
    if u.status == FAILED:
        message.status, message.error = FAILED, (u.error or "failed")[:300]
        log_event(session, message.conversation_id, "message_failed", {"message_id": message.id, "error": message.error})
    else:
        message.status, message.error = (u.status if u.status in STATUS_RANK else SENT), None
        log_event(session, message.conversation_id, "message_sent", {"message_id": message.id})
    log.info("message %s (%s) confirmed by a %s status", message.id, was, u.status)


async def _mark_flowing(rt, session, newest: dict[str, datetime]) -> None:
    """Statuses arrive for rows of these numbers created at `newest`: rows awaiting confirmation
    since before that learn that webhooks flow past them (the grace starts)."""
    from outreach.pacing import account_of

    now = utcnow()
    rows = (await session.execute(select(Message, Address)
                                  .join(Conversation, Conversation.id == Message.conversation_id)
                                  .join(Address, Address.id == Conversation.address_id)
                                  .where(Message.status == AWAITING))).all()
    for message, address in rows:
        payload = message.payload or {}
        since = parse_time(payload.get("awaiting_since"))
        later = newest.get(account_of(rt.settings, "whatsapp", address.account))
        if payload.get("flowing_since") or since is None or later is None or later < since + FLOW_MARGIN:
            continue
        message.payload = {**payload, "flowing_since": now.isoformat()}


async def resolve_awaiting(rt, now: datetime | None = None) -> dict[str, int]:
    """Rows awaiting confirmation past their time: queued again (webhooks flowing for the grace,
    none for them) or recorded sent (no webhook at all for the longest wait). Returns the counts."""
    settings = rt.settings
    now = now or utcnow()
    grace = timedelta(seconds=settings.whatsapp_confirm_grace_seconds)
    longest = timedelta(seconds=settings.whatsapp_confirm_max_seconds)
    from outreach.models import NEWS, Consent

    again, given_up, left = [], 0, 0
    async with rt.sessionmaker() as session, session.begin():
        rows = (await session.execute(
            select(Message, Contact.stopped_at, Consent.withdrawn_at).join(Contact, Contact.id == Message.contact_id)
            .outerjoin(Consent, (Consent.contact_id == Contact.id) & (Consent.purpose == NEWS))
            .where(Message.status == AWAITING))).all()
        for message, stopped_at, withdrawn_at in rows:
            payload = message.payload or {}
            flowing, since = parse_time(payload.get("flowing_since")), parse_time(payload.get("awaiting_since")) or now
            clean = without_wait(payload)
            if flowing is not None and now >= flowing + grace and (stopped_at or withdrawn_at):
                # never reached them, and they said « stop » (or withdrew the news) meanwhile: not sent
                values = dict(status=FAILED, error=NOT_RESENT, payload=clean)
            elif flowing is not None and now >= flowing + grace:
                values = dict(status=QUEUED, next_attempt_at=None, payload={**clean, "resent_after_doubt": True})
            elif now >= since + longest:
                values = dict(status=SENT, sent_at=now, payload=clean)
            else:
                left += 1
                continue
            done = await session.execute(update(Message).where(Message.id == message.id, Message.status == AWAITING)
                                         .values(**values).execution_options(synchronize_session=False))
            if not done.rowcount:
                continue
            if values["status"] == FAILED:
                log_event(session, message.conversation_id, "message_failed",
                          {"message_id": message.id, "error": NOT_RESENT})
            elif values["status"] == QUEUED:
                again.append(message.contact_id)
                log.info("message %s: no status %ds after later sends' statuses; sent again", message.id,
                         settings.whatsapp_confirm_grace_seconds)
            else:
                given_up += 1
                log_event(session, message.conversation_id, "message_sent", {"message_id": message.id})
                log.warning("message %s: no webhook at all in %ds; recorded as sent", message.id,
                            settings.whatsapp_confirm_max_seconds)
    rt.outbox.awaiting = left > 0
    for contact_id in dict.fromkeys(again):
        rt.outbox.kick(contact_id)
    return {"resent": len(again), "recorded": given_up, "awaiting": left}


async def watch_awaiting(rt) -> None:
    """Every process, every `whatsapp_confirm_check_seconds`: resolve_awaiting (one indexed query)."""
    while True:
        await asyncio.sleep(rt.settings.whatsapp_confirm_check_seconds)
        try:
            await resolve_awaiting(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rows awaiting confirmation not looked at")
