"""One-time links for workers: an invitation (choose a password, the account becomes active) or a
password reset. The token has 256 bits of randomness; only its SHA-256 is stored; a link expires
after INVITATION_VALID_FOR and is used once. Issuing a new link revokes the worker's previous ones.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import utcnow
from handoff.models import Worker, WorkerInvitation

INVITATION_VALID_FOR = timedelta(days=7)
TOKEN_BYTES = 32  # 256 bits
PURPOSES = ("invite", "reset")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invitation_url(public_url: str, token: str) -> str:
    return public_url.rstrip("/") + "/invite/" + token


async def issue(session: AsyncSession, worker: Worker, purpose: str, created_by_id: int | None) -> str:
    """A new link for the worker (inside the caller's transaction). Returns the token, shown once."""
    assert purpose in PURPOSES
    now = utcnow()
    await session.execute(update(WorkerInvitation).where(
        WorkerInvitation.worker_id == worker.id, WorkerInvitation.used_at.is_(None)).values(used_at=now))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(WorkerInvitation(worker_id=worker.id, token_hash=token_hash(token), purpose=purpose,
                                 created_by_id=created_by_id, created_at=now, expires_at=now + INVITATION_VALID_FOR))
    return token


async def find_valid(session: AsyncSession, token: str, *, for_update: bool = False
                     ) -> tuple[WorkerInvitation, Worker] | None:
    """The unused, unexpired invitation of this token and its worker (None otherwise)."""
    if not token or len(token) > 100:
        return None
    query = select(WorkerInvitation, Worker).join(Worker, Worker.id == WorkerInvitation.worker_id).where(
        WorkerInvitation.token_hash == token_hash(token))
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    if row is None:
        return None
    invitation, worker = row
    if invitation.used_at is not None or invitation.expires_at <= utcnow():
        return None
    if invitation.purpose == "reset" and worker.deactivated_at is not None:
        return None  # a deactivated account is not reopened by an old reset link
    return invitation, worker


async def consume(session: AsyncSession, invitation: WorkerInvitation) -> bool:
    """Mark the link used; False when another request used it first (one use, even when racing)."""
    result = await session.execute(update(WorkerInvitation).where(
        WorkerInvitation.id == invitation.id, WorkerInvitation.used_at.is_(None)).values(used_at=utcnow()))
    return result.rowcount == 1


async def revoke_all(session: AsyncSession, worker_id: int) -> None:
    await session.execute(update(WorkerInvitation).where(
        WorkerInvitation.worker_id == worker_id, WorkerInvitation.used_at.is_(None)).values(used_at=utcnow()))
