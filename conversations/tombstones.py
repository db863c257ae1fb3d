"""Erasure tombstones: platform retries after "supprimer mes données" are duplicates.

Erasing a person deletes their messages, and with them the dedupe keys (channel, platform message
id). A platform that retries the confirming update (or an earlier one) afterwards would create the
person again and welcome them again. So the erasure leaves, for each of the person's inbound
messages of the last RETRY_WINDOW, one row holding only HMAC-SHA256(secret key, channel ‖ message
id): no user id, no text, nothing that names the person or can be turned back into a platform id
without the key. The intake treats an update whose digest is tombstoned as a duplicate (stored
nothing, answered 200). Housekeeping deletes tombstones older than the window.

RETRY_WINDOW: WhatsApp retries a webhook for up to 7 days; Telegram keeps an undelivered update for
24 hours; the web chat's page retries while it is open. 7 days covers all three.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import insert_for, one_of, utcnow
from conversations.models import INBOUND, ErasureTombstone, Message

RETRY_WINDOW = timedelta(days=7)


def digest(secret: str, channel: str, external_id: str) -> str:
    message = f"{channel}\0{external_id}".encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode("utf-8", "surrogatepass"), message, hashlib.sha256).hexdigest()


async def bury(session: AsyncSession, secret: str, contact_ids: list[int], now: datetime | None = None) -> int:
    """Inside the erasing transaction, before the delete: tombstone the recent inbound messages of
    these contacts. Returns how many."""
    now = now or utcnow()
    rows = (await session.execute(select(Message.channel, Message.external_id).where(
        one_of(session, Message.contact_id, contact_ids), Message.direction == INBOUND, Message.external_id.is_not(None),
        Message.created_at >= now - RETRY_WINDOW))).all()
    digests = sorted({digest(secret, channel, external_id) for channel, external_id in rows})
    if not digests:
        return 0
    insert = insert_for(session)
    await session.execute(insert(ErasureTombstone.__table__).on_conflict_do_nothing(index_elements=["digest"]),
                          [{"digest": d, "created_at": now} for d in digests])
    return len(digests)


async def buried(session: AsyncSession, secret: str, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (channel, external id) keys among these that belong to an erased person's recent messages."""
    by_digest = {digest(secret, channel, external_id): (channel, external_id) for channel, external_id in keys}
    if not by_digest:
        return set()
    found = (await session.execute(select(ErasureTombstone.digest).where(
        one_of(session, ErasureTombstone.digest, by_digest)))).scalars().all()
    return {by_digest[d] for d in found}


async def forget_old(session: AsyncSession, now: datetime | None = None) -> int:
    """Delete tombstones past the retry window (housekeeping). Returns how many."""
    cutoff = (now or utcnow()) - RETRY_WINDOW
    result = await session.execute(delete(ErasureTombstone).where(ErasureTombstone.created_at < cutoff))
    return result.rowcount or 0
