"""Referral statistics of an organisation: what it referred, by kind, over a period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from casework.models import ACCEPTED, KINDS, RECORDED, TO_ORGANISATION, Referral


async def referral_counts(session: AsyncSession, organisation_id: int, start: datetime, end: datetime) -> dict[str, int]:
    """{"organisation": transfers the person agreed to, "partner": outside referrals recorded,
    "organisation_asked": transfers still waiting for an answer, "organisation_declined": refused},
    for referrals made by the organisation with start <= created_at < end."""
    rows = (await session.execute(select(Referral.kind, Referral.status, func.count()).where(
        Referral.organisation_id == organisation_id, Referral.created_at >= start, Referral.created_at < end)
        .group_by(Referral.kind, Referral.status))).all()
    counts = {kind: 0 for kind in KINDS} | {"organisation_asked": 0, "organisation_declined": 0}
    for kind, status, count in rows:
        if status in (ACCEPTED, RECORDED):
            counts[kind] = counts.get(kind, 0) + count
        elif kind == TO_ORGANISATION:
            counts[f"organisation_{status}"] = counts.get(f"organisation_{status}", 0) + count
    return counts
