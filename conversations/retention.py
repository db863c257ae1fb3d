"""The retention period: contacts silent for longer than their organisation's retention period (set
in the admin console, else settings.retention_days; 0 = never) are deleted, with every row about them (cascades) and their stored files. Run hourly by the app and by `allervers purge`.

A contact's last activity is its latest message either way (the person's or a worker's), or its
creation when there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from kernel.database import checkpoint, utcnow
from kernel.periodic import repeat, stop_periodic
from conversations import tombstones
from conversations.media import sweep_fetches
from conversations.models import Contact, Media, Message
from handoff.models import Organisation

log = logging.getLogger(__name__)


async def retention_days_by_organisation(session, default_days: int) -> dict[int, int]:
    """Each organisation's retention period: its own (set in the admin console), else the
    deployment's ALLERVERS_RETENTION_DAYS; 0 means never."""
    rows = await session.execute(select(Organisation.id, Organisation.retention_days))
    return {organisation_id: default_days if days is None else days for organisation_id, days in rows.all()}


def retention_days_of(settings, organisation) -> int:
    """What the person is told (the consent text) and what the purge applies for their organisation."""
    days = getattr(organisation, "retention_days", None)
    return settings.retention_days if days is None else days


async def expired_contacts(session, now: datetime, default_days: int) -> list[int]:
    """Contacts silent for longer than their organisation's retention period."""
    expired: list[int] = []
    for organisation_id, days in (await retention_days_by_organisation(session, default_days)).items():
        if days <= 0:
            continue
        cutoff = now - timedelta(days=days)
        recent = select(Message.contact_id).where(Message.created_at >= cutoff)
        expired += (await session.execute(select(Contact.id).where(
            Contact.organisation_id == organisation_id,
            Contact.created_at < cutoff,
            func.coalesce(Contact.last_inbound_at, Contact.created_at) < cutoff,
            Contact.id.not_in(recent),
        ))).scalars().all()
    return expired


async def purge_expired(rt, now: datetime | None = None, dry_run: bool = False) -> int:
    """Delete contacts past their organisation's retention period and their files. Returns how many."""
    now = now or utcnow()
    if not dry_run:
        await purge_audit_log(rt, now)
    async with rt.sessionmaker() as session, session.begin():
        ids = await expired_contacts(session, now, rt.settings.retention_days)
        if dry_run:
            return len(ids)
        forgotten = await tombstones.forget_old(session, now)  # past the platforms' retry window
        if not ids:
            return 0
        paths = list((await session.execute(select(Media.path).where(Media.contact_id.in_(ids)))).scalars().all())
        # A retention shorter than the retry window: their last updates may still be retried.
        await tombstones.bury(session, rt.settings.secret_key, ids, now)
        await session.execute(delete(Contact).where(Contact.id.in_(ids)))
    await rt.media.delete_contacts(ids, paths)  # storage.media: files and folders, or objects
    await checkpoint(rt.engine)  # SQLite: nothing of them left in the WAL
    log.info("retention purge: %s contact(s) and %s file(s) deleted (%s old tombstone(s) forgotten)",
             len(ids), len(paths), forgotten)
    return len(ids)


async def purge_audit_log(rt, now: datetime) -> int:
    """The admin audit log keeps entries for the organisation's retention period (admin/audit.py)."""
    from admin.audit import purge_audit

    async with rt.sessionmaker() as session, session.begin():
        deleted = await purge_audit(session, now, rt.settings.retention_days)
    if deleted:
        log.info("retention purge: %s audit entr(y/ies) deleted", deleted)
    return deleted


async def housekeeping(rt) -> None:
    """Background loop of the app: refetch files a crash left behind, then purge every interval."""
    with contextlib.suppress(Exception):
        await sweep_fetches(rt)
    await repeat("retention purge", rt.settings.retention_purge_interval, lambda: purge_expired(rt), wait_first=False)


def start_housekeeping(rt) -> asyncio.Task:
    return asyncio.create_task(housekeeping(rt), name="housekeeping")


stop_housekeeping = stop_periodic


def run_cli(dry_run: bool) -> int:
    """`allervers purge`: one purge now, with the app's settings."""
    from allervers.runtime import build_runtime
    from kernel.settings import Settings

    async def run() -> int:
        rt = await build_runtime(Settings(), channels={})
        try:
            return await purge_expired(rt, dry_run=dry_run)
        finally:
            await rt.close()

    count = asyncio.run(run())
    print(f"{count} contact(s) past the retention period" + (" (dry run: nothing deleted)" if dry_run else " deleted"))
    return 0


__all__ = ["purge_expired", "start_housekeeping", "stop_housekeeping", "run_cli"]
