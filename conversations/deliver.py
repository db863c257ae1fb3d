"""deliver(): send queued outbound rows after commit, in order per person, with bounded retries.

A row is claimed (queued -> sending) before the network call, so two processes never send it
twice. Network errors and 5xx are retried with exponential backoff and use up an attempt; rate
limits (429) wait their retry_after without using one; after `delivery_max_attempts` attempts or
`delivery_max_seconds` of retries the row is marked failed so the worker sees it. Each success is
noted in the sent journal (conversations/sent_journal.py) as soon as the send returns, before its
outcome is written with others; rows a crash left sending are recorded as sent at start-up when the
journal names them, queued again otherwise (the delivery guarantee: ARCHITECTURE.md); a WhatsApp
campaign send left in doubt awaits the status webhook naming it (conversations/confirmations.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta

from sqlalchemy import select, update

from kernel.database import one_of, utcnow
from bots.base import Attachment, Choice, DeliveryError, Link, OutboundMessage, OutsideWindow, Venue, on_the_wire
from conversations.models import (
    AWAITING,
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
from conversations.confirmations import awaiting_payload, parse_time, tracking_of
from conversations.sent_journal import FileJournal, RedisJournal
from conversations.store import log_event
from conversations.window import HELD, WINDOW_CLOSED, window_context

from ops.metrics import delivery_outcomes
from outreach.pacing import PacerClosed
from storage.media import sendable

log = logging.getLogger(__name__)


def outbound_of(message: Message) -> OutboundMessage:
    payload = message.payload or {}
    attachment = None
    if payload.get("attachment"):
        attachment = Attachment(**payload["attachment"])
    return OutboundMessage(
        text=message.text or "",
        choices=tuple(Choice(v, t) for v, t in payload.get("choices", [])),
        # payload "links": [[title, url], ...]; "venue": {latitude, longitude, title, address}
        links=tuple(Link(t, u) for t, u in payload.get("links", [])),
        venue=Venue(**payload["venue"]) if payload.get("venue") else None,
        locale=payload.get("locale") or "fr",
        request_location=bool(payload.get("request_location")),
        attachment=attachment,
        attachment_path=payload.get("attachment_path"),
        # A campaign's WhatsApp message: its approved template, whatever the 24-hour window (outreach/).
        template=(payload.get("campaign_template") or {}).get("name"),
        template_params=tuple((payload.get("campaign_template") or {}).get("params") or ()),
    )


PARTIAL = "partial"  # a sent-journal note: the first parts of a message went out, not all


def parts_of(channel, message: OutboundMessage) -> list[OutboundMessage]:
    """The calls a message takes on `channel`: one, or (for a channel with `venue_apart`) its
    words and buttons first, then the venue alone (an OutboundMessage with no text)."""
    from dataclasses import replace

    if message.venue is None or message.template or not getattr(channel, "venue_apart", False):
        return [message]
    if not (message.text or message.choices or message.links or message.attachment_path or message.attachment):
        return [message]
    return [replace(message, venue=None), OutboundMessage(text="", venue=message.venue, locale=message.locale)]


def _int(value) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


WINDOW_MARGIN = timedelta(minutes=5)  # a reply claimed this long before the 24-hour window closes needs no template
OUTBOX_BUSY_RETRY = 0.5  # seconds before a runner looks again at a person another runner is sending to


class Outbox:
    def __init__(self, rt) -> None:
        self.rt = rt
        self._runners: dict[int, asyncio.Task] = {}
        self._again: set[int] = set()
        self.journal = journal_for(rt)
        # Sends awaiting the platform's answer at once: a crash can send these again (nothing else).
        self._in_flight = asyncio.Semaphore(rt.settings.delivery_max_in_flight)
        self._recorder = _Recorder(rt, self._record_all, self._announce, self.journal)
        self.in_hand: set[int] = set()  # rows claimed here, not yet recorded (handed back at shutdown)
        self.awaiting = False  # rows may await a status's confirmation (conversations/confirmations.py)
        self.stopping = False

    def stop(self) -> set[int]:
        """Shutdown (ops/shutdown.py): no new send starts here. Sends waiting for the pacer give up
        at once (PacerClosed), runners stop after the send in flight, and what they had claimed but
        not sent goes back to the queue with their outcomes. Returns the people this process was
        sending to (their queued rows are for another process now)."""
        self.stopping = True
        pacer = getattr(self.rt, "send_pacer", None)
        if pacer is not None:
            pacer.close()
        return {contact_id for contact_id, runner in self._runners.items() if not runner.done()} | self._again

    def kick(self, contact_id: int) -> None:
        """Make sure queued messages of this person get sent (one runner per person, in order)."""
        if self.stopping:
            return  # handed back: another process (or the next start-up sweep) sends them
        runner = self._runners.get(contact_id)
        if runner is not None and not runner.done():
            self._again.add(contact_id)
            return
        self._runners[contact_id] = asyncio.create_task(self._run(contact_id), name=f"outbox-{contact_id}")

    def can_claim_at_once(self, contact_id: int, channel: str, *, window_free: bool = False) -> bool:
        """New rows of this person may be claimed in their own transaction when nothing older can be
        waiting: no runner for them here (a runner exists while rows wait for a retry). On WhatsApp
        only when they need no 24-hour window context (`window_free`): replies to a person who has
        just written (the window is open for a day) and has nothing held, or approved templates;
        otherwise its window logic looks at one message at a time (the queued path)."""
        runner = self._runners.get(contact_id)
        return (channel != "whatsapp" or window_free) and (runner is None or runner.done())

    def send_claimed(self, contact_id: int, rows: list, address: Address, contact: Contact) -> None:
        """Send rows claimed (status sending) by a committed transaction, then whatever else is queued."""
        context = {"last_inbound_at": contact.last_inbound_at, "organisation_id": contact.organisation_id}
        jobs = [_Job(message, address, contact.organisation_id, 1, outbound_of(message),
                     {**context, "worker_id": message.author_worker_id}) for message in rows]
        if address.channel == "whatsapp":  # (can_claim_at_once: the window is open, no context read)
            for job in jobs:
                if not job.outbound.template:
                    job.context["window_unchecked"] = True  # a refusal puts it back for the template path
        self._runners[contact_id] = asyncio.create_task(self._run(contact_id, jobs), name=f"outbox-{contact_id}")

    async def sweep(self) -> None:
        """At start-up: rows a crash left 'sending' are recorded as sent when the sent journal says
        their send succeeded, else go back to the queue; every queued person is kicked.

        With Redis other processes may be sending right now: a person's rows are then swept under
        their outbox lock (which a live sender holds from claim to record), and only rows older than
        SWEEP_GRACE (a row claimed in the transaction that wrote it is 'sending' a moment before its
        sender takes the lock); younger ones are looked at again once that old."""
        shared = self.rt.redis is not None
        async with self.rt.sessionmaker() as session:
            stuck = (await session.execute(select(Message.id, Message.contact_id, Message.created_at).where(
                Message.direction == OUTBOUND, Message.status == SENDING))).all()
        notes: dict[int, dict] = {}
        if not shared:
            notes = await self._sweep_rows(None)
        else:
            cutoff = utcnow() - timedelta(seconds=SWEEP_GRACE)
            notes = await self._sweep_people([row for row in stuck if row.created_at <= cutoff])
            young = [row for row in stuck if row.created_at > cutoff]
            if young:
                self.rt.spawn(self._sweep_later(young))
        await self._after_sweep(notes)

    async def _sweep_people(self, rows: list) -> dict[int, dict]:
        notes: dict[int, dict] = {}
        for contact_id in sorted({row.contact_id for row in rows}):
            async with self.rt.locks.hold(f"outbox:{contact_id}"):  # a live sender holds it claim to record
                notes.update(await self._sweep_rows([row.id for row in rows if row.contact_id == contact_id]))
        return notes

    async def _sweep_later(self, rows: list) -> None:
        """Rows too young to tell at start-up: once SWEEP_GRACE old, those still 'sending' with
        nobody holding their person's lock were a dead process's."""
        await asyncio.sleep(SWEEP_GRACE)
        await self._after_sweep(await self._sweep_people(rows))

    async def _after_sweep(self, notes: dict) -> None:
        try:
            await self.journal.forget(notes)
            await self.journal.swept()
        except Exception:
            log.exception("sent journal not cleaned after the sweep")
        async with self.rt.sessionmaker() as session:
            contacts = (await session.execute(
                select(Message.contact_id).where(Message.direction == OUTBOUND, Message.status == QUEUED).distinct()
            )).scalars().all()
        for contact_id in contacts:
            self.kick(contact_id)

    async def _sweep_rows(self, ids: list[int] | None) -> dict[int, dict]:
        """Resolve the rows left 'sending' (all of them, or those of `ids` still so)."""
        async with self.rt.sessionmaker() as session, session.begin():
            query = select(Message).where(Message.direction == OUTBOUND, Message.status == SENDING)
            if ids is not None:
                query = query.where(one_of(session, Message.id, ids))
            stuck = (await session.execute(query)).scalars().all()
            notes: dict[int, dict] = {}
            try:  # (also finds the files of dead processes, dropped by the caller)
                notes = await self.journal.read([message.id for message in stuck])
            except Exception:  # no journal: every stuck row is sent again (at least once)
                log.exception("sent journal not readable; rows left sending are queued again")
            now = utcnow()
            for message in stuck:
                note = _resolved(message, notes.get(message.id))
                if note is None:
                    message.status = QUEUED
                elif note.get("status") == PARTIAL:  # crashed between the parts: the rest only
                    message.status = QUEUED
                    message.payload = {**(message.payload or {}), "parts_sent": _int(note.get("parts_sent")),
                                       "first_platform_id": note.get("platform_id")}
                elif note.get("status") == AWAITING:  # a WhatsApp campaign send in doubt
                    message.status = AWAITING
                    message.payload = awaiting_payload(message.payload, now)
                    self.awaiting = True
                elif note.get("status") == HELD:
                    message.status = HELD
                    message.payload = {**(message.payload or {}), "template": {
                        "name": note.get("template"), "platform_message_id": note.get("platform_id")}}
                    log_event(session, message.conversation_id, "template_sent",
                              {"message_id": message.id, "template": note.get("template")})
                else:  # (a status webhook's note may say how far it got: delivered, read)
                    reached = note.get("reached") if note.get("reached") in ("delivered", "read") else SENT
                    message.status, message.error, message.next_attempt_at = reached, None, None
                    message.sent_at, message.platform_message_id = now, note.get("platform_id")
                    log_event(session, message.conversation_id, "message_sent", {"message_id": message.id})
        if stuck:
            log.info("start-up sweep: %d rows left sending, %d recorded from the sent journal, %d queued again",
                     len(stuck), len(notes), len(stuck) - len(notes))
        return notes

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
        try:
            await self.journal.close()
        except Exception:
            log.exception("sent journal not closed")

    async def _run(self, contact_id: int, claimed: list | None = None) -> None:
        try:
            if claimed:
                async with self.rt.locks.hold(f"outbox:{contact_id}"):
                    delay = await self._send_jobs(claimed)
                if delay is None and contact_id not in self._again:
                    return  # all sent (or definitely failed), nothing else was queued meanwhile
                if delay:
                    await asyncio.sleep(delay)
            while not self.stopping:
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
        """`_send_burst_held` under the person's outbox lock, if it is free. If another runner holds it
        (another process: the person's updates came through several), that one sends every queued
        row of theirs, ours included (it reads them all, in order, until none is left): look again
        after OUTBOX_BUSY_RETRY rather than poll the lock (it was SET NX every 10 ms, for as long as
        the holder waited for the pacer: under a backlog, most of the processes' CPU)."""
        async with self.rt.locks.try_hold(f"outbox:{contact_id}") as held:
            if not held:
                return OUTBOX_BUSY_RETRY
            return await self._send_burst_held(contact_id)

    async def _send_burst_held(self, contact_id: int) -> float | None:
        """Send this person's oldest queued messages, in order (their outbox lock held). None when
        none is left, else a delay.

        One transaction claims a burst of ready rows, the sends happen outside any transaction, and
        one transaction records every outcome. A retryable failure stops the burst (order is kept);
        the unsent rest goes back to the queue untouched.
        """
        rt = self.rt
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
                batch, windowed = [], False
                for message, address, contact in rows:
                    if message.status != QUEUED or (message.next_attempt_at and message.next_attempt_at > now):
                        break
                    if address.channel == "whatsapp" and not self._surely_open(address.channel, contact, message, now):
                        # The 24-hour window logic looks at one message at a time (an invitation,
                        # then the rest held behind it): this one alone, after those before it.
                        if not batch:
                            batch.append((message, address, contact))
                            windowed = True
                        break
                    batch.append((message, address, contact))
                claimed = await session.execute(
                    update(Message).where(one_of(session, Message.id, [m.id for m, _, _ in batch]), Message.status == QUEUED)
                    .values(status=SENDING, attempts=Message.attempts + 1)
                    .execution_options(synchronize_session=False))
                if claimed.rowcount != len(batch):
                    raise _Contended()
                jobs = []
                for message, address, contact in batch:
                    context = {"last_inbound_at": contact.last_inbound_at,
                               "organisation_id": contact.organisation_id, "worker_id": message.author_worker_id}
                    if windowed:
                        context.update(await window_context(rt, session, message, contact))
                    elif address.channel == "whatsapp":
                        context["window_unchecked"] = True  # open for long enough: sent as it is (_deliver)
                    jobs.append(_Job(message, address, contact.organisation_id, message.attempts + 1,
                                     outbound_of(message), context))
        except _Contended:
            return 0.2
        delay = await self._send_jobs(jobs)
        if delay is None and len(batch) == len(rows) < BURST:
            return None  # that was every row of theirs: no last look (a row written since kicked us: Outbox._again)
        return 0.0 if delay is None else delay

    def _surely_open(self, channel_name: str, contact: Contact, message: Message, now) -> bool:
        """The person's window stays open WINDOW_MARGIN past now: the message goes out as it is,
        without its window context (3-4 queries), and with the rows after it in one burst. If the
        window closed anyway before the send (a long wait), the row is queued again (_deliver)."""
        window_open = getattr(self.rt.channels.get(channel_name), "window_open", None)
        return (window_open is not None and not (message.payload or {}).get("window_closed")
                and window_open(contact.last_inbound_at, now + WINDOW_MARGIN))

    async def _send_jobs(self, jobs: list["_Job"]) -> float:
        """Send claimed jobs in order, record their outcomes (with other runners', see _Recorder), announce them."""
        outcomes: list[tuple[_Job, _Outcome]] = []
        self.in_hand.update(job.message.id for job in jobs)
        for job in jobs:
            if self.stopping:
                break  # shutdown: this one and the rest go back to the queue, unsent
            try:
                outcome = await self._deliver(job)
            except PacerClosed:
                break
            if (job.message.payload or {}).get("campaign_id"):
                outcome.noted = True  # its note before the send goes once the outcome is recorded
                _campaign_send_over(self.rt, job)
            outcomes.append((job, outcome))
            if outcome.status == QUEUED:
                break
        unsent = [job.message.id for job in jobs[len(outcomes):]]
        await self._recorder.record(outcomes, unsent)  # and announced
        self.in_hand.difference_update(job.message.id for job in jobs)
        delivery_outcomes(outcomes)  # ops.metrics: outcomes, failures by reason
        if self.stopping:
            return None
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
            # Statuses name the row even before its platform id is recorded (conversations/confirmations.py)
            prepared = replace(prepared, tracking=tracking_of(job.organisation_id, job.message.id))
            ticket = await _paced(rt, job)  # outreach/pacing: the bot's and the chat's limits, replies first
            async with self._in_flight, sendable(rt, prepared) as prepared:  # (an S3 file: a temporary copy)
                pieces = parts_of(channel, prepared)
                on_wire = len(pieces) == 1 and getattr(channel, "notes_on_the_wire", False)
                if not on_wire:
                    await self._note_intent(job)  # a campaign send is noted "in doubt" before it leaves
                if len(pieces) > 1:  # text, then the venue: each part noted once sent, never sent twice
                    return await self._deliver_parts(job, channel, pieces)
                # Else as late as possible: by the adapter, right before the request's last bytes
                # (bots/base.on_the_wire); a send that fails before never leaves a note behind.
                token = on_the_wire.set(functools.partial(self._on_the_wire, job, ticket)) if on_wire else None
                try:
                    result = await channel.send(job.address.external_id, prepared, account=job.address.account)
                finally:
                    if token is not None:
                        on_the_wire.reset(token)
                held = bool(prepared.template and not job.outbound.template)
                await self._note(job, {"status": HELD if held else SENT, "platform_id": result.platform_message_id,
                                       **({"template": prepared.template} if held else {})})
            if held:  # invitation sent, message held
                return _Outcome(HELD, platform_id=result.platform_message_id, template_sent=prepared.template,
                                payload_update={"template": {"name": prepared.template,
                                                             "platform_message_id": result.platform_message_id}},
                                noted=True)
            return _Outcome(SENT, platform_id=result.platform_message_id, noted=True)
        except PacerClosed:
            raise  # shutdown: not sent, handed back (_send_jobs)
        except OutsideWindow:
            if context.get("window_unchecked"):  # it closed since the claim: again, with the window's context
                return _Outcome(QUEUED, delay=0.0, free=True, payload_update={"window_closed": True})
            if context.get("template") and not context.get("window_closed"):
                return _Outcome(QUEUED, delay=0.0, payload_update={"window_closed": True})
            return _Outcome(FAILED, error=WINDOW_CLOSED)
        except DeliveryError as failure:
            error = failure.reason[:300]
            if failure.retryable and (failure.rate_limited or attempts < rt.settings.delivery_max_attempts):
                return self._retry(job, error, failure.retry_after, free=failure.rate_limited)
            return _Outcome(FAILED, error=error)
        except Exception as failure:  # a bug in an adapter must not lose the row
            log.exception("unexpected delivery error on %s", job.address.channel)
            if attempts < rt.settings.delivery_max_attempts:
                return self._retry(job, type(failure).__name__, None, free=False)
            return _Outcome(FAILED, error=type(failure).__name__)

    async def _deliver_parts(self, job: "_Job", channel, pieces: list[OutboundMessage]) -> "_Outcome":
        """A message the channel sends as several calls (Telegram: sendMessage then sendVenue;
        WhatsApp: the text then a location message). Each part sent is noted in the sent journal
        ({"status": "partial", "parts_sent": n}) and, on a failure, in the row's payload
        ("parts_sent"): a retry, or the start-up sweep after a crash, sends only what is left, so
        the text never goes twice. A later part that fails for good leaves the row sent (the words
        arrived; the error is kept in the payload as "part_error")."""
        payload = job.message.payload or {}
        done = _int(payload.get("parts_sent"))
        first_id = payload.get("first_platform_id")
        for index, piece in enumerate(pieces):
            if index < done:
                continue
            if index:
                try:
                    await _paced(rt=self.rt, job=job)  # each part is a send: the chat's and the bot's limits
                except PacerClosed:  # shutdown between the parts: the next process sends the rest only
                    return _Outcome(QUEUED, delay=0.0, free=True, noted=True,
                                    payload_update={"parts_sent": index, "first_platform_id": first_id})
            try:
                result = await channel.send(job.address.external_id, piece, account=job.address.account)
            except Exception as failure:
                if index == 0:
                    raise
                progress = {"parts_sent": index, "first_platform_id": first_id}
                retryable = isinstance(failure, DeliveryError) and failure.retryable
                if not isinstance(failure, DeliveryError):
                    log.exception("unexpected delivery error on %s (part %d)", job.address.channel, index + 1)
                reason = failure.reason[:300] if isinstance(failure, DeliveryError) else type(failure).__name__
                limited = isinstance(failure, DeliveryError) and failure.rate_limited
                if (retryable or not isinstance(failure, DeliveryError)) and \
                        (limited or job.attempts < self.rt.settings.delivery_max_attempts):
                    outcome = self._retry(job, reason, getattr(failure, "retry_after", None), free=limited)
                    if outcome.status == QUEUED:
                        outcome.payload_update = {**outcome.payload_update, **progress}
                        outcome.noted = True  # the journal's partial note is in the row now
                        return outcome
                return _Outcome(SENT, platform_id=first_id, noted=True,
                                payload_update={**progress, "part_error": reason})
            first_id = first_id or result.platform_message_id
            last = index == len(pieces) - 1
            await self._note(job, {"status": SENT, "platform_id": first_id} if last else
                             {"status": PARTIAL, "parts_sent": index + 1, "platform_id": first_id})
        return _Outcome(SENT, platform_id=first_id, noted=True,
                        payload_update={"parts_sent": len(pieces)} if done else {})

    def _retry(self, job: "_Job", error: str, retry_after: float | None, *, free: bool) -> "_Outcome":
        """Queued again after a delay (a rate limit's `free` retry gives its attempt back), unless
        the row has been retried for longer than delivery_max_seconds: then it fails."""
        settings = self.rt.settings
        if retry_after is not None:
            delay = max(0.0, retry_after)
        elif free:
            delay = 1.0
        else:
            delay = min(settings.delivery_base_backoff * (2 ** (job.attempts - 1)), settings.delivery_max_backoff)
        now = utcnow()
        since = parse_time((job.message.payload or {}).get("retrying_since")) or now
        if (now - since).total_seconds() + delay > settings.delivery_max_seconds:
            return _Outcome(FAILED, error=f"{error} (still failing after {settings.delivery_max_seconds:.0f} s)"[:300])
        update_ = {} if "retrying_since" in (job.message.payload or {}) else {"retrying_since": now.isoformat()}
        return _Outcome(QUEUED, error=error, delay=delay, free=free, payload_update=update_)

    async def _on_the_wire(self, job: "_Job", ticket) -> None:
        """The request's last bytes are next (bots/base.on_the_wire): a campaign send is noted in
        doubt, and the pacer counts the send from now (outreach/pacing.SendPacer.on_the_wire)."""
        await self._note_intent(job)
        pacer = getattr(self.rt, "send_pacer", None)
        if pacer is not None:
            pacer.on_the_wire(ticket)

    async def _note_intent(self, job: "_Job") -> None:
        """A campaign send is about to leave: noted before the request (the idempotency record).
        A crash after this note and before the "sent" one leaves the send in doubt: the sweep
        records a campaign row in doubt as sent (at most once: never a second copy of a campaign)."""
        if not (job.message.payload or {}).get("campaign_id"):
            return
        try:
            await self.journal.note(job.message.id, {"status": IN_DOUBT})
        except Exception:
            log.warning("sent journal unavailable for message %s", job.message.id, exc_info=True)

    async def _note(self, job: "_Job", entry: dict) -> None:
        """The send succeeded: say so at once, where a restart will look (see sent_journal)."""
        try:
            await self.journal.note(job.message.id, entry)
        except Exception:  # the outcome still gets recorded below; only a crash now would resend it
            log.warning("sent journal unavailable for message %s", job.message.id, exc_info=True)

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
            if outcome.free:  # a rate limit: the attempt claimed for it is given back
                values["attempts"] = Message.attempts - 1
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


RECORD_GATHER = 0.05  # seconds the recorder lets outcomes gather before writing a few of them
GATHERED = 8  # runners' outcomes waiting: written at once, without gathering more


class _Recorder:
    """Writes the outcomes of every runner's sends together: whatever waits when the previous
    write ends goes into one transaction, then announces them in one live update. When fewer than
    GATHERED runners wait, it lets RECORD_GATHER s pass first, so that replies sent apart (people
    writing one at a time) share a transaction instead of one each: the sends themselves are not
    delayed, every sent one is already noted in the sent journal (a crash meanwhile loses nothing),
    only the row's "sent" and the runner's next burst wait that long. A runner goes on only once
    its outcomes are committed, so its order and retries are kept. If the shared transaction fails (say, a person erased
    meanwhile), each runner's outcomes are written alone, so one cannot fail the others."""

    def __init__(self, rt, record_all, announce, journal) -> None:
        self.rt = rt
        self.record_all = record_all
        self.announce = announce
        self.journal = journal
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
            if len(self._waiting) < GATHERED:
                await asyncio.sleep(RECORD_GATHER)
            batch, self._waiting = self._waiting, []
            written = await self._write_together(batch)
            try:
                await self.announce([pair for outcomes, _, _ in written for pair in outcomes])
            except Exception:  # live updates are a courtesy: pages refresh from the database
                log.exception("delivery outcomes not announced")
            for _, _, future in written:
                if not future.done():
                    future.set_result(None)
            noted = [job.message.id for outcomes, _, _ in written for job, outcome in outcomes if outcome.noted]
            if noted:  # recorded: the journal's notes of them are no longer needed
                try:
                    await self.journal.forget(noted)
                except Exception:
                    log.warning("sent journal notes not dropped (they expire or go at the next start-up)")

    async def _write_together(self, batch: list) -> list:
        """Write the batch in one transaction; returns the entries written (a failing one alone
        hears of its error; its rows stay 'sending' until the start-up sweep)."""
        try:
            async with self.rt.sessionmaker() as session, session.begin():
                await self.record_all(session, [pair for outcomes, _, _ in batch for pair in outcomes])
                unsent = [message_id for _, ids, _ in batch for message_id in ids]
                if unsent:
                    await session.execute(update(Message).where(one_of(session, Message.id, unsent))
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
IN_DOUBT = "in_doubt"  # the sent journal's note before a campaign send (see Outbox._note_intent)


async def _paced(rt, job: "_Job"):
    """Wait for the platform's limits (outreach/pacing.py): per bot / number, per chat, replies first."""
    from outreach.pacing import CAMPAIGN, REPLY, pacer_of

    priority = CAMPAIGN if (job.message.payload or {}).get("campaign_id") else REPLY
    return await pacer_of(rt).acquire(job.address.channel, job.address.account, job.address.external_id, priority)


def _campaign_send_over(rt, job: "_Job") -> None:
    """A campaign send is over (sent, failed or put back): the campaign writes the next row (outreach/)."""
    pacer = getattr(rt, "send_pacer", None)
    if pacer is not None:
        pacer.finished(job.address.channel, "campaign")


def _resolved(message: Message, note: dict | None) -> dict | None:
    """A sweep's reading of a row's journal note: a campaign send in doubt on WhatsApp awaits the
    status webhook that would name it (conversations/confirmations.py); on Telegram (no such field,
    its note precedes the call) it counts as sent (never twice); any other row in doubt goes back
    to the queue (at least once, as before)."""
    if note is None or note.get("status") != IN_DOUBT:
        return note
    if (message.payload or {}).get("campaign_id"):
        if message.channel == "whatsapp":
            log.info("start-up sweep: campaign message %s was in flight at the crash; awaiting its status", message.id)
            return {"status": AWAITING}
        log.info("start-up sweep: campaign message %s was in flight at the crash; recorded as sent", message.id)
        return {"status": SENT, "platform_id": None}
    return None


SWEEP_GRACE = 5.0  # seconds: younger 'sending' rows may be a live process's, about to be sent


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
    noted: bool = False  # in the sent journal (dropped from it once recorded)
    free: bool = False  # a rate limit: does not use up an attempt


def journal_for(rt):
    """Redis when configured (shared by every process), else a directory of this host."""
    if rt.redis is not None:
        return RedisJournal(rt.redis)
    settings = rt.settings
    return FileJournal(settings.delivery_journal_dir or settings.media_dir.parent / "outbox-journal")


async def stale_press(session, conversation_id: int, reply_to: str | None) -> bool:
    """Is a button press (`InboundMessage.reply_to`: the platform id of the message whose button
    was pressed) on an old question? See `stale_in`; reads the conversation's recent rows."""
    if not reply_to:
        return False
    from conversations.store import recent_outbound

    return stale_in((await recent_outbound(session, [conversation_id]))[conversation_id], reply_to)


def stale_in(recent: list, reply_to: str | None) -> bool:
    """True when the pressed message is one of ours with buttons but not the conversation's latest
    one with buttons (the person answered it already, or the bot moved on); False when it is the
    latest, or unknown (not recorded yet: the benefit of the doubt). `recent`: the conversation's
    newest outbound rows, newest first (conversations.store.recent_outbound)."""
    if not reply_to:
        return False
    questions = [platform_id for platform_id, payload in recent if (payload or {}).get("choices")]
    if not questions or reply_to not in questions:
        return False
    return questions[0] != reply_to
