"""The audit log: every admin change and every time a worker opens a conversation (who, what, when).

`record()` adds the entry to the caller's session, so it is written in the same transaction as the
change it describes (a change that rolls back leaves no entry). Details hold ids and field names,
never message bodies or personal data. Entries are purged with the retention period.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from kernel.database import Base, JSONType, UTCDateTime, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    # The worker or admin who acted (None: the deployment operator through the CLI).
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    # Past tense, dotted: "flow.published", "worker.invited", "conversation.opened", ...
    action: Mapped[str] = mapped_column(String(60), index=True)
    target_type: Mapped[str] = mapped_column(String(40), default="")
    target_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


def record(session: AsyncSession, *, organisation_id: int, actor_id: int | None, action: str,
           target_type: str = "", target_id: int | None = None, details: dict | None = None) -> AuditEntry:
    """Add an audit entry to the caller's transaction (no flush, no commit)."""
    entry = AuditEntry(organisation_id=organisation_id, actor_id=actor_id, action=action,
                       target_type=target_type, target_id=target_id, details=details or {})
    session.add(entry)
    return entry


def update_audited(session: AsyncSession, row, fields: dict, *, organisation_id: int, actor_id: int, action: str,
                   target_type: str) -> list[str]:
    """Set `fields` on `row`; when any value changed, an audit entry naming the changed fields
    (never their values: a first name or a phone number stays out of the log)."""
    changed = sorted(name for name, value in fields.items() if getattr(row, name) != value)
    for name, value in fields.items():
        setattr(row, name, value)
    if changed:
        record(session, organisation_id=organisation_id, actor_id=actor_id, action=action, target_type=target_type,
               target_id=row.id, details={"fields": changed})
    return changed


async def purge_audit(session: AsyncSession, now: datetime, default_days: int) -> int:
    """Delete entries older than their organisation's retention period (its own, or the deployment's)."""
    from datetime import timedelta

    from sqlalchemy import delete, select

    from handoff.models import Organisation

    own = dict((await session.execute(select(Organisation.id, Organisation.retention_days).where(
        Organisation.retention_days.is_not(None)))).all())
    deleted = 0
    for organisation_id, days in own.items():
        if days <= 0:  # 0: kept
            continue
        result = await session.execute(delete(AuditEntry).where(
            AuditEntry.organisation_id == organisation_id, AuditEntry.created_at < now - timedelta(days=days)))
        deleted += result.rowcount or 0
    if default_days <= 0:  # the deployment keeps everything (ALLERVERS_RETENTION_DAYS=0)
        return deleted
    others = delete(AuditEntry).where(AuditEntry.created_at < now - timedelta(days=default_days))
    if own:
        others = others.where(AuditEntry.organisation_id.not_in(list(own)))
    deleted += (await session.execute(others)).rowcount or 0
    return deleted
