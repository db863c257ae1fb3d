"""Campaigns: the audience (opted-in people only), the message per channel, quiet hours, and the
sender, paced at the platforms' limits.

How one person is sent to, once: when the campaign starts, every person of the audience becomes a
`campaign_recipients` row (`pending`). The sender claims a few rows at a time (under the campaign's
lock: one sender, whatever the number of processes) and, in one transaction per batch, writes each
person's outbox row and marks the recipient `queued` with that row's id. A kill -9 leaves each
recipient before that transaction (still pending: claimed again after the restart) or after it (its
outbox row exists: the outbox sends it; a send in flight at the kill was noted `in_doubt` in the
sent journal before its request: on Telegram it is recorded as sent, never sent twice; on WhatsApp
it awaits the status webhook that confirms it, see conversations/confirmations.py; the campaign
is not done while one awaits). Rows are claimed in the
producing transaction (`Pending.direct`) so they leave right after the commit.

Pace: the send pacer's (outreach/pacing.py: per bot or number, every send counted, replies first,
shared through Redis). This sender only keeps LEAD_SECONDS of rows written and not yet sent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from datetime import datetime, time as dtime, timedelta

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import slices, utcnow
from bots.base import Choice, OutboundMessage
from conversations.models import Address, Contact, Conversation
from conversations.store import Pending, Thread, queue_message
from handoff.hours import PARIS, is_holiday
from outreach.models import (
    CANCELLED,
    DONE,
    NEWS,
    PAUSED,
    R_PENDING,
    R_QUEUED,
    R_SKIPPED,
    SCHEDULED,
    SENDING,
    Campaign,
    CampaignRecipient,
    Consent,
    ContactSource,
)

log = logging.getLogger(__name__)
CHANNELS = ("telegram", "whatsapp", "webchat")
# Campaign buttons: what a press does (outreach.inbound turns it into the command).
BUTTONS = {"cmp:menu": "menu", "cmp:human": "humain", "cmp:stop": "news_stop"}
SLICE_SECONDS = 0.1
LEAD_SECONDS = 1.0  # rows written and not yet sent, in seconds of the channel's rate (a stall of the
# writer's transaction shorter than that does not leave the bot idle; 0.5 s left gaps of 0.25-0.5 s)
STALL_SECONDS = 3.0


# -- quiet hours -----------------------------------------------------------------------------------
def _clock(value: str) -> dtime:
    hours, minutes = value.split(":")
    return dtime(int(hours), int(minutes))


def quiet(settings, at: datetime | None = None) -> bool:
    """No campaign sends now (Paris time): at night, on Sundays, on French public holidays."""
    if not settings.campaign_quiet_enabled:
        return False
    local = (at or utcnow()).astimezone(PARIS)
    if settings.campaign_quiet_sundays and local.weekday() == 6:
        return True
    if settings.campaign_quiet_holidays and is_holiday(local.date()):
        return True
    start, end, now = _clock(settings.campaign_quiet_start), _clock(settings.campaign_quiet_end), local.time()
    if start == end:
        return False
    return (now >= start or now < end) if start > end else (start <= now < end)


def next_send_time(settings, at: datetime | None = None) -> datetime | None:
    """The first quarter hour outside quiet hours (within 10 days), for the page."""
    at = at or utcnow()
    if not quiet(settings, at):
        return at
    probe = at.replace(second=0, microsecond=0)
    for _ in range(10 * 24 * 4):
        probe += timedelta(minutes=15)
        if not quiet(settings, probe):
            return probe
    return None


# -- audience --------------------------------------------------------------------------------------
async def audience(session: AsyncSession, organisation_id: int, filters: dict, channels: set[str],
                   now: datetime | None = None) -> list[tuple[int, str]]:
    """(contact id, channel) of the people a campaign would reach: opted in to news (granted, not
    withdrawn), not stopped, reachable on a channel the campaign has a message for, and matching
    the filters (sources, language, last contact; territory and topic from their conversations)."""
    now = now or utcnow()
    query = (select(Contact.id, Contact.locale)
             .join(Consent, and_(Consent.contact_id == Contact.id, Consent.purpose == NEWS))
             .where(Contact.organisation_id == organisation_id, Contact.stopped_at.is_(None),
                    Consent.granted_at.is_not(None), Consent.withdrawn_at.is_(None)))
    if filters.get("source_ids"):
        query = query.where(Contact.id.in_(select(ContactSource.contact_id).where(
            ContactSource.source_id.in_(filters["source_ids"]))))
    if filters.get("language"):
        query = query.where(Contact.locale == filters["language"])
    if filters.get("active_within_days"):
        query = query.where(Contact.last_inbound_at >= now - timedelta(days=filters["active_within_days"]))
    if filters.get("inactive_for_days"):
        query = query.where(Contact.last_inbound_at < now - timedelta(days=filters["inactive_for_days"]))
    contacts = [row[0] for row in (await session.execute(query.order_by(Contact.id))).all()]
    if not contacts:
        return []
    channel_of: dict[int, str] = {}
    needs: dict[int, list[Conversation]] = {}
    territory, topic = filters.get("territory"), filters.get("topic")
    for chunk in slices(contacts, 2000):
        rows = (await session.execute(
            select(Conversation, Address.channel).join(Address, Address.id == Conversation.address_id)
            .where(Conversation.contact_id.in_(chunk)).order_by(Conversation.id))).all()
        for conversation, channel in rows:
            channel_of[conversation.contact_id] = channel  # the latest conversation's channel
            if territory or topic:
                needs.setdefault(conversation.contact_id, []).append(conversation)
    chosen = []
    for contact_id in contacts:
        channel = channel_of.get(contact_id)
        if channel is None or channel not in channels:
            continue
        if (territory or topic) and not _matches(needs.get(contact_id, []), territory, topic):
            continue
        chosen.append((contact_id, channel))
    return chosen


def _matches(conversations: list[Conversation], territory: str | None, topic: str | None) -> bool:
    from handoff.routing import need_of, plain

    for conversation in conversations:
        need = need_of(conversation, None)
        if territory and not (need.commune == territory or need.departement == territory):
            continue
        if topic and plain(topic) not in need.topics:
            continue
        return True
    return False


def channels_of(campaign: Campaign) -> set[str]:
    messages = campaign.messages or {}
    found = set()
    if (messages.get("telegram") or {}).get("text"):
        found.add("telegram")
    if (messages.get("whatsapp") or {}).get("template"):
        found.add("whatsapp")
    if (messages.get("webchat") or {}).get("text"):
        found.add("webchat")
    return found


def outbound_for(campaign: Campaign, channel: str, *, reminder: bool = False) -> tuple[OutboundMessage, dict]:
    """The message for one channel (and its extra payload: a WhatsApp template)."""
    messages = campaign.messages or {}
    if channel == "whatsapp":
        spec = messages.get("whatsapp") or {}
        params = [str(p) for p in spec.get("params") or []]
        text = spec.get("preview") or f"[modèle {spec.get('template')}] " + " · ".join(params)
        return OutboundMessage(text), {"campaign_template": {"name": spec.get("template"), "params": params}}
    spec = messages.get(channel) or {}
    text = campaign.reminder_text if reminder and campaign.reminder_text else spec.get("text", "")
    buttons = tuple(Choice(value, label) for value, label in (spec.get("buttons") or []) if value in BUTTONS)
    return OutboundMessage(text, buttons), {}


# -- starting, pausing ----------------------------------------------------------------------------
async def snapshot(session: AsyncSession, campaign: Campaign) -> int:
    """The audience becomes the campaign's recipients (once: the unique (campaign, contact) keeps a
    second snapshot from adding anyone twice)."""
    people = await audience(session, campaign.organisation_id, campaign.audience or {}, channels_of(campaign))
    already = set((await session.execute(select(CampaignRecipient.contact_id).where(
        CampaignRecipient.campaign_id == campaign.id))).scalars().all())
    rows = [{"campaign_id": campaign.id, "contact_id": contact_id, "channel": channel, "state": R_PENDING,
             "reason": "", "reminder_state": ""} for contact_id, channel in people if contact_id not in already]
    for chunk in slices(rows, 1000):
        await session.execute(insert(CampaignRecipient.__table__), chunk)
    return len(rows)


async def progress(session: AsyncSession, campaign_id: int) -> dict:
    from conversations.models import AWAITING, DELIVERED, FAILED, QUEUED, READ, SENDING as MSG_SENDING, SENT, Message

    states = dict((await session.execute(select(CampaignRecipient.state, func.count()).where(
        CampaignRecipient.campaign_id == campaign_id).group_by(CampaignRecipient.state))).all())
    statuses = dict((await session.execute(
        select(Message.status, func.count()).join(CampaignRecipient, CampaignRecipient.message_id == Message.id)
        .where(CampaignRecipient.campaign_id == campaign_id).group_by(Message.status))).all())
    total = sum(states.values())
    sent = sum(statuses.get(s, 0) for s in (SENT, DELIVERED, READ))
    done = sent + statuses.get(FAILED, 0) + states.get(R_SKIPPED, 0)
    return {"total": total, "pending": states.get(R_PENDING, 0), "queued": states.get(R_QUEUED, 0),
            "skipped": states.get(R_SKIPPED, 0), "sent": sent, "failed": statuses.get(FAILED, 0),
            # awaiting: in flight at a crash, waiting for the status that confirms it (not done yet)
            "awaiting": statuses.get(AWAITING, 0),
            "waiting": statuses.get(QUEUED, 0) + statuses.get(MSG_SENDING, 0) + statuses.get(AWAITING, 0),
            "percent": round(100 * done / total) if total else 100}


# -- the sender -----------------------------------------------------------------------------------
class CampaignSender:
    """One loop per process: starts scheduled campaigns, sends sending ones (one task each), starts
    reminders. Everything it needs is in the database: a restart carries on where it stopped."""

    def __init__(self, rt) -> None:
        self.rt = rt
        self.tasks: dict[int, asyncio.Task] = {}
        self.loop: asyncio.Task | None = None
        # Rows written and not yet sent, per channel: the writer keeps LEAD_SECONDS of the rate
        # ahead, so a slow transaction never leaves the bot idle, and never more, so replies to
        # people writing meanwhile never queue behind a backlog of campaign sends.
        self.outstanding: collections.Counter = collections.Counter()
        self.progressed: dict[str, float] = {}
        from outreach.pacing import pacer_of

        pacer_of(rt).on_campaign_send = self._sent_one

    def start(self) -> None:
        self.loop = asyncio.create_task(self._forever(), name="campaigns")

    def _rate(self, channel: str) -> float:
        from outreach.pacing import limits_of

        return limits_of(self.rt.settings, channel)[0]

    def _sent_one(self, channel: str) -> None:
        """One of the campaign sends is over (outreach/pacing.py, SendPacer.finished)."""
        self.outstanding[channel] = max(0, self.outstanding[channel] - 1)
        self.progressed[channel] = asyncio.get_running_loop().time()

    async def stop(self) -> None:
        for task in [self.loop, *self.tasks.values()]:
            if task is not None:
                task.cancel()
        for task in [self.loop, *self.tasks.values()]:
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass

    async def _forever(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign tick failed")
            await asyncio.sleep(self.rt.settings.campaign_tick_seconds)

    async def tick(self) -> None:
        """One read-only transaction when nothing is due (every process runs this every
        `campaign_tick_seconds`, idle or not): the campaigns due, ended with a reminder to start,
        and sending are read together; read again only after one of them changed status."""
        rt, now = self.rt, utcnow()
        async with rt.sessionmaker() as session:
            statuses = (await session.execute(select(Campaign.id, Campaign.status).where(
                ((Campaign.status == SCHEDULED) & (Campaign.scheduled_at <= now)) | (Campaign.status == SENDING)
                | ((Campaign.status == DONE) & (Campaign.reminder_after_hours > 0)
                   & Campaign.reminder_started_at.is_(None) & Campaign.finished_at.is_not(None))))).all()
        due = [campaign_id for campaign_id, status in statuses if status == SCHEDULED]
        for campaign_id in due:
            await self.begin(campaign_id)
        reminded = any(status == DONE for _, status in statuses) and await self._start_reminders(now)
        if quiet(rt.settings, now):
            return
        sending = [campaign_id for campaign_id, status in statuses if status == SENDING]
        if due or reminded:  # some may be sending now
            async with rt.sessionmaker() as session:
                sending = (await session.execute(select(Campaign.id).where(
                    Campaign.status == SENDING))).scalars().all()
        for campaign_id in sending:
            task = self.tasks.get(campaign_id)
            if task is None or task.done():
                self.tasks[campaign_id] = asyncio.create_task(self.send(campaign_id), name=f"campaign-{campaign_id}")

    async def begin(self, campaign_id: int) -> None:
        """Scheduled -> sending: the audience is taken now (a conditional update: one process does it)."""
        async with self.rt.locks.hold(f"campaign:{campaign_id}"):
            async with self.rt.sessionmaker() as session, session.begin():
                campaign = await session.get(Campaign, campaign_id)
                if campaign is None or campaign.status != SCHEDULED:
                    return
                await snapshot(session, campaign)
                campaign.status, campaign.started_at = SENDING, utcnow()

    async def _start_reminders(self, now: datetime) -> bool:
        """Once, `reminder_after_hours` after a campaign ended: the people who were sent it, did not
        answer, did not stop and were reachable get the reminder. True if one was started."""
        from conversations.models import DELIVERED, READ, SENT, Message

        async with self.rt.sessionmaker() as session:
            done = (await session.execute(select(Campaign).where(
                Campaign.status == DONE, Campaign.reminder_after_hours > 0, Campaign.reminder_started_at.is_(None),
                Campaign.finished_at.is_not(None)))).scalars().all()
        started = False
        for campaign in done:
            if campaign.finished_at + timedelta(hours=campaign.reminder_after_hours) > now:
                continue
            started = True
            async with self.rt.locks.hold(f"campaign:{campaign.id}"):
                async with self.rt.sessionmaker() as session, session.begin():
                    fresh = await session.get(Campaign, campaign.id)
                    if fresh.reminder_started_at is not None or fresh.status != DONE:
                        continue
                    eligible = (select(CampaignRecipient.id)
                                .join(Message, Message.id == CampaignRecipient.message_id)
                                .join(Contact, Contact.id == CampaignRecipient.contact_id)
                                .join(Consent, and_(Consent.contact_id == Contact.id, Consent.purpose == NEWS))
                                .where(CampaignRecipient.campaign_id == fresh.id, CampaignRecipient.state == R_QUEUED,
                                       Message.status.in_((SENT, DELIVERED, READ)), Contact.stopped_at.is_(None),
                                       Consent.withdrawn_at.is_(None),
                                       (Contact.last_inbound_at.is_(None))
                                       | (Contact.last_inbound_at < CampaignRecipient.queued_at)))
                    ids = (await session.execute(eligible)).scalars().all()
                    for chunk in slices(list(ids), 1000):
                        await session.execute(update(CampaignRecipient).where(CampaignRecipient.id.in_(chunk))
                                              .values(reminder_state=R_PENDING))
                    fresh.reminder_started_at = now
                    fresh.status = SENDING if ids else DONE
        return started

    async def send(self, campaign_id: int) -> None:
        """Send the campaign's pending recipients (then its pending reminders) until none is left,
        it is paused or cancelled, or quiet hours begin. The pace is the pacer's (at the send, per
        bot or number: outreach/pacing.py); this loop only keeps LEAD_SECONDS of rows written ahead."""
        rt = self.rt
        loop = asyncio.get_running_loop()
        idle_channels: set[str] = set()
        try:
            while True:
                if quiet(rt.settings):
                    return
                active = [c for c in CHANNELS if c not in idle_channels]
                if not active:
                    await self._finish(campaign_id)
                    return
                wrote = False
                for channel in active:
                    rate = self._rate(channel)
                    # rows ahead wait in the pacer, behind any reply (its gate lets replies out first)
                    lead = max(1, int(rate * LEAD_SECONDS))
                    now = loop.time()
                    if self.outstanding[channel] >= lead and now - self.progressed.get(channel, now) > STALL_SECONDS:
                        self.outstanding[channel] = 0  # rows that failed before the pacer: not waiting
                    room = lead - self.outstanding[channel]
                    if room < max(1, int(rate * SLICE_SECONDS)):
                        continue
                    outcome = await self._batch(campaign_id, channel, min(room, max(1, int(rate * SLICE_SECONDS))))
                    if outcome == "stopped":
                        return
                    if outcome == 0:
                        idle_channels.add(channel)
                        continue
                    wrote = True
                if not wrote:
                    await asyncio.sleep(SLICE_SECONDS / 2)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("campaign %s: sender failed (it resumes at the next tick)", campaign_id)

    async def _batch(self, campaign_id: int, channel: str, size: int):
        """One transaction: up to `size` pending recipients of the channel get their outbox row.
        Returns how many were handled, or "stopped" when the campaign is no longer sending."""
        rt = self.rt
        pending = Pending.empty()
        async with rt.locks.hold(f"campaign:{campaign_id}"):
            async with rt.sessionmaker() as session, session.begin():
                campaign = await session.get(Campaign, campaign_id)
                if campaign is None or campaign.status != SENDING:
                    return "stopped"
                reminder = campaign.reminder_started_at is not None
                state_column = CampaignRecipient.reminder_state if reminder else CampaignRecipient.state
                recipients = (await session.execute(
                    select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id,
                                                    CampaignRecipient.channel == channel, state_column == R_PENDING)
                    .order_by(CampaignRecipient.id).limit(size))).scalars().all()
                if not recipients:
                    return 0
                ids = [r.contact_id for r in recipients]
                contacts = {c.id: c for c in (await session.execute(
                    select(Contact).where(Contact.id.in_(ids)))).scalars().all()}
                granted = set((await session.execute(select(Consent.contact_id).where(
                    Consent.contact_id.in_(ids), Consent.purpose == NEWS, Consent.granted_at.is_not(None),
                    Consent.withdrawn_at.is_(None)))).scalars().all())
                latest = {}
                for conversation, address in (await session.execute(
                        select(Conversation, Address).join(Address, Address.id == Conversation.address_id)
                        .where(Conversation.contact_id.in_(ids)).order_by(Conversation.id))).all():
                    if address.channel == channel:
                        latest[conversation.contact_id] = (conversation, address)
                now = utcnow()
                outbound, extra = outbound_for(campaign, channel, reminder=reminder)
                written = []
                for recipient in recipients:
                    contact = contacts.get(recipient.contact_id)
                    where = latest.get(recipient.contact_id)
                    reason = ("erased" if contact is None else "stopped" if contact.stopped_at is not None
                              else "consent" if recipient.contact_id not in granted else "address" if where is None else "")
                    if reason:
                        if reminder:
                            recipient.reminder_state = R_SKIPPED
                        else:
                            recipient.state, recipient.reason = R_SKIPPED, reason
                        continue
                    conversation, address = where
                    thread = Thread(contact, address, conversation)
                    # A WhatsApp campaign row is an approved template: no 24-hour window to look at,
                    # so it may be claimed at once like the other channels' rows.
                    if rt.outbox.can_claim_at_once(contact.id, channel, window_free=bool(extra.get("campaign_template"))):
                        pending.direct.setdefault(contact.id, [])
                        pending.direct_to[contact.id] = (address, contact)
                    row = await queue_message(session, thread, outbound, pending)
                    if extra:
                        row.payload = {**(row.payload or {}), **extra}
                    row.payload = {**(row.payload or {}), "campaign_id": campaign_id}
                    written.append((recipient, row))
                if written:
                    await session.flush()
                for recipient, row in written:
                    if reminder:
                        recipient.reminder_state, recipient.reminder_message_id = R_QUEUED, row.id
                    else:
                        recipient.state, recipient.message_id, recipient.queued_at = R_QUEUED, row.id, now
        self.outstanding[channel] += len(written)
        self.progressed.setdefault(channel, asyncio.get_running_loop().time())
        await rt.after_commit(pending)
        return len(recipients)

    async def _finish(self, campaign_id: int) -> None:
        async with self.rt.locks.hold(f"campaign:{campaign_id}"):
            async with self.rt.sessionmaker() as session, session.begin():
                campaign = await session.get(Campaign, campaign_id)
                if campaign is None or campaign.status != SENDING:
                    return
                column = CampaignRecipient.reminder_state if campaign.reminder_started_at else CampaignRecipient.state
                left = (await session.execute(select(func.count()).where(
                    CampaignRecipient.campaign_id == campaign_id, column == R_PENDING))).scalar()
                if left or await _awaiting(session, campaign_id, campaign.reminder_started_at is not None):
                    return
                campaign.status = DONE
                if campaign.finished_at is None:
                    campaign.finished_at = utcnow()


async def _awaiting(session: AsyncSession, campaign_id: int, reminder: bool) -> int:
    """The campaign's sends not over yet: queued (retries included), sending, or left in doubt by a
    crash and waiting for the status that confirms them (conversations/confirmations.py). The
    campaign is done once each is sent, failed or sent again."""
    from conversations.models import AWAITING, QUEUED, SENDING as MSG_SENDING, Message

    column = CampaignRecipient.reminder_message_id if reminder else CampaignRecipient.message_id
    return (await session.execute(select(func.count()).select_from(CampaignRecipient)
                                  .join(Message, Message.id == column)
                                  .where(CampaignRecipient.campaign_id == campaign_id,
                                         Message.status.in_((QUEUED, MSG_SENDING, AWAITING))))).scalar()


async def set_status(session: AsyncSession, campaign: Campaign, action: str) -> str | None:
    """pause / resume / cancel; returns the new status, or None if the action does not apply."""
    allowed = {"pause": ({SENDING, SCHEDULED}, PAUSED), "resume": ({PAUSED}, SENDING),
               "cancel": ({SENDING, SCHEDULED, PAUSED}, CANCELLED)}
    if action not in allowed or campaign.status not in allowed[action][0]:
        return None
    new = allowed[action][1]
    if action == "resume" and campaign.started_at is None:
        new = SCHEDULED  # paused before it started: back to its schedule
    campaign.status = new
    if new == CANCELLED:
        campaign.finished_at = utcnow()
    return new


def start_campaigns(rt) -> CampaignSender:
    sender = CampaignSender(rt)
    rt.campaigns = sender
    sender.start()
    return sender


async def stop_campaigns(sender: CampaignSender) -> None:
    await sender.stop()
