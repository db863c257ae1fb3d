"""Plain counts for the statistics dashboard (built elsewhere): what campaigns reached, who came
through which source. Counts only: no names, no text."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.models import DELIVERED, FAILED, READ, SENT, Contact, Message
from outreach.models import NEWS, R_QUEUED, R_SKIPPED, Campaign, CampaignRecipient, Consent, ContactSource, Source


async def campaign_reach(session: AsyncSession, organisation_id: int, start: datetime, end: datetime) -> dict:
    """Over the campaigns started in [start, end): recipients, sent, delivered, read, replied
    (wrote after the campaign reached them), stopped (« stop » or news withdrawn after it),
    failed, skipped. WhatsApp reports delivered and read; Telegram and the web chat only sent."""
    campaigns = select(Campaign.id).where(Campaign.organisation_id == organisation_id,
                                          Campaign.started_at >= start, Campaign.started_at < end)
    base = (select(CampaignRecipient.state, Message.status, CampaignRecipient.queued_at, Contact.last_inbound_at,
                   Contact.stopped_at, Consent.withdrawn_at)
            .join(Contact, Contact.id == CampaignRecipient.contact_id)
            .outerjoin(Message, Message.id == CampaignRecipient.message_id)
            .outerjoin(Consent, and_(Consent.contact_id == Contact.id, Consent.purpose == NEWS))
            .where(CampaignRecipient.campaign_id.in_(campaigns)))
    counts = {"campaigns": 0, "recipients": 0, "sent": 0, "delivered": 0, "read": 0, "replied": 0, "stopped": 0,
              "failed": 0, "skipped": 0}
    counts["campaigns"] = (await session.execute(select(func.count()).select_from(campaigns.subquery()))).scalar()
    for state, status, queued_at, last_inbound, stopped_at, withdrawn_at in (await session.execute(base)).all():
        counts["recipients"] += 1
        if state == R_SKIPPED:
            counts["skipped"] += 1
            continue
        if state != R_QUEUED:
            continue
        if status in (SENT, DELIVERED, READ):
            counts["sent"] += 1
        if status in (DELIVERED, READ):
            counts["delivered"] += 1
        if status == READ:
            counts["read"] += 1
        if status == FAILED:
            counts["failed"] += 1
        if queued_at is not None:
            if last_inbound is not None and last_inbound > queued_at:
                counts["replied"] += 1
            if (stopped_at is not None and stopped_at > queued_at) or (withdrawn_at is not None and withdrawn_at > queued_at):
                counts["stopped"] += 1
    return counts


async def contacts_by_source(session: AsyncSession, organisation_id: int, start: datetime, end: datetime) -> list[dict]:
    """Per source and channel, over [start, end): people who came (distinct contacts), of whom for
    the first time (their first source), and conversations."""
    rows = (await session.execute(
        select(Source.id, Source.name, Source.kind, ContactSource.channel,
               func.count(func.distinct(ContactSource.contact_id)),
               func.count(func.distinct(ContactSource.conversation_id)),
               func.sum(func.cast(ContactSource.first, type_=Message.attempts.type)))
        .join(ContactSource, ContactSource.source_id == Source.id)
        .where(Source.organisation_id == organisation_id, ContactSource.at >= start, ContactSource.at < end)
        .group_by(Source.id, Source.name, Source.kind, ContactSource.channel)
        .order_by(Source.name, ContactSource.channel))).all()
    return [{"source_id": sid, "name": name, "kind": kind, "channel": channel, "contacts": contacts,
             "conversations": conversations, "first": int(first or 0)}
            for sid, name, kind, channel, contacts, conversations, first in rows]
