"""The flow store: an organisation's drafts and immutable published revisions.

The YAML files of flows/definitions/ are the shipped defaults (and the seed of a new organisation);
an organisation's latest published revision of a flow overrides the file. One `FlowDraft` row per
(organisation, flow id) holds the draft being edited (or none: `source` NULL) and a version counter
bumped by every change (save, import, publish, discard, rollback): an editor sends the version it
loaded, and a change from a stale copy is refused (two admins editing). A `FlowRevision` is never
updated: a rollback publishes an old text again as a new number.

Saving a draft never changes what people see: the runtime (allervers/runtime.py) serves each
organisation the set `effective_sources` returns, reloaded when a revision is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from admin.audit import record
from kernel.database import Base, JSONType, UTCDateTime, utcnow
from flows.library import shipped_sources


class FlowDraft(Base):
    __tablename__ = "flow_drafts"
    __table_args__ = (UniqueConstraint("organisation_id", "flow_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    flow_id: Mapped[str] = mapped_column(String(60))
    source: Mapped[str | None] = mapped_column(Text, nullable=True)  # NULL: no draft pending
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FlowRevision(Base):
    __tablename__ = "flow_revisions"
    __table_args__ = (UniqueConstraint("organisation_id", "flow_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    flow_id: Mapped[str] = mapped_column(String(60))
    number: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    # The plain-words change summary shown before publishing (a list of French lines).
    summary: Mapped[list] = mapped_column(JSONType, default=list)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StaleCopy(Exception):
    """The editor's copy is older than the stored draft: someone else changed it meanwhile."""


@dataclass
class FlowEntry:
    """One line of the list: a flow of the organisation, where its text comes from."""

    flow_id: str
    published: FlowRevision | None
    draft: FlowDraft | None
    shipped: bool

    @property
    def version(self) -> int:
        return self.draft.version if self.draft else 0

    @property
    def has_draft(self) -> bool:
        return self.draft is not None and self.draft.source is not None


_SHIPPED: dict[str, str] | None = None


def shipped() -> dict[str, str]:
    """The shipped YAML texts by flow id (read once: they change only with a deployment)."""
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = shipped_sources()
    return _SHIPPED


async def latest_revisions(session: AsyncSession, organisation_id: int) -> dict[str, FlowRevision]:
    newest = (select(FlowRevision.flow_id, func.max(FlowRevision.number).label("number"))
              .where(FlowRevision.organisation_id == organisation_id).group_by(FlowRevision.flow_id).subquery())
    rows = (await session.execute(select(FlowRevision).join(
        newest, (FlowRevision.flow_id == newest.c.flow_id) & (FlowRevision.number == newest.c.number))
        .where(FlowRevision.organisation_id == organisation_id))).scalars().all()
    return {row.flow_id: row for row in rows}


async def effective_sources(session: AsyncSession, organisation_id: int) -> dict[str, str]:
    """What the organisation's people are served: shipped texts overridden by published revisions."""
    sources = dict(shipped())
    sources.update({flow_id: row.source for flow_id, row in (await latest_revisions(session, organisation_id)).items()})
    return sources


async def revision_marks(session: AsyncSession) -> dict[int, int]:
    """organisation id -> id of its newest revision (the runtime's cheap "anything new?" check)."""
    rows = await session.execute(select(FlowRevision.organisation_id, func.max(FlowRevision.id))
                                 .group_by(FlowRevision.organisation_id))
    return {organisation_id: mark for organisation_id, mark in rows.all()}


async def entries(session: AsyncSession, organisation_id: int) -> list[FlowEntry]:
    published = await latest_revisions(session, organisation_id)
    drafts = {d.flow_id: d for d in (await session.execute(
        select(FlowDraft).where(FlowDraft.organisation_id == organisation_id))).scalars().all()}
    ids = sorted(set(shipped()) | set(published) | {k for k, d in drafts.items() if d.source is not None})
    return [FlowEntry(flow_id, published.get(flow_id), drafts.get(flow_id), flow_id in shipped()) for flow_id in ids]


async def entry(session: AsyncSession, organisation_id: int, flow_id: str) -> FlowEntry | None:
    published = (await latest_revisions(session, organisation_id)).get(flow_id)
    draft = await get_draft(session, organisation_id, flow_id)
    if published is None and flow_id not in shipped() and (draft is None or draft.source is None):
        return None
    return FlowEntry(flow_id, published, draft, flow_id in shipped())


def published_source(found: FlowEntry) -> str | None:
    if found.published is not None:
        return found.published.source
    return shipped().get(found.flow_id)


def current_source(found: FlowEntry) -> str:
    """What the editor opens: the draft if any, else what is published (or shipped)."""
    if found.has_draft:
        return found.draft.source
    return published_source(found) or ""


async def get_draft(session: AsyncSession, organisation_id: int, flow_id: str) -> FlowDraft | None:
    return (await session.execute(select(FlowDraft).where(
        FlowDraft.organisation_id == organisation_id, FlowDraft.flow_id == flow_id))).scalar()


async def _bump(session: AsyncSession, organisation_id: int, flow_id: str, expected: int | None,
                source: str | None, actor_id: int | None) -> int:
    """Set the draft's source and bump its version, if the caller's copy is the current one
    (`expected`: the version it loaded, 0 when there was no row; None: no check). Returns the new
    version; raises StaleCopy otherwise. One conditional UPDATE: two admins cannot both win."""
    query = update(FlowDraft).where(FlowDraft.organisation_id == organisation_id, FlowDraft.flow_id == flow_id)
    if expected is not None:
        query = query.where(FlowDraft.version == expected)
    result = await session.execute(query.values(source=source, version=FlowDraft.version + 1,
                                                updated_by=actor_id, updated_at=utcnow())
                                   .returning(FlowDraft.version))
    version = result.scalar()
    if version is not None:
        return version
    if expected not in (None, 0):
        raise StaleCopy()
    try:
        async with session.begin_nested():
            session.add(FlowDraft(organisation_id=organisation_id, flow_id=flow_id, source=source, version=1,
                                  updated_by=actor_id))
            await session.flush()
    except IntegrityError:
        if expected is None:
            return await _bump(session, organisation_id, flow_id, None, source, actor_id)
        raise StaleCopy() from None
    return 1


async def save_draft(session: AsyncSession, organisation_id: int, flow_id: str, source: str, expected: int,
                     actor_id: int, action: str = "flow.draft_saved") -> int:
    version = await _bump(session, organisation_id, flow_id, expected, source, actor_id)
    record(session, organisation_id=organisation_id, actor_id=actor_id, action=action, target_type="flow",
           details={"flow": flow_id, "version": version})
    return version


async def discard_draft(session: AsyncSession, organisation_id: int, flow_id: str, expected: int,
                        actor_id: int) -> int:
    version = await _bump(session, organisation_id, flow_id, expected, None, actor_id)
    record(session, organisation_id=organisation_id, actor_id=actor_id, action="flow.draft_discarded",
           target_type="flow", details={"flow": flow_id, "version": version})
    return version


async def _new_revision(session: AsyncSession, organisation_id: int, flow_id: str, source: str, summary: list[str],
                        actor_id: int) -> FlowRevision:
    number = (await session.execute(select(func.max(FlowRevision.number)).where(
        FlowRevision.organisation_id == organisation_id, FlowRevision.flow_id == flow_id))).scalar() or 0
    revision = FlowRevision(organisation_id=organisation_id, flow_id=flow_id, number=number + 1, source=source,
                            summary=summary, published_by=actor_id)
    session.add(revision)
    await session.flush()  # the unique (organisation, flow, number) refuses a concurrent twin
    return revision


async def publish(session: AsyncSession, organisation_id: int, flow_id: str, expected: int, summary: list[str],
                  actor_id: int) -> FlowRevision:
    """The draft becomes the next numbered revision; the draft is emptied. The caller validated the
    whole set and commits; then it announces the revision (runtime.announce_flows)."""
    draft = await get_draft(session, organisation_id, flow_id)
    if draft is None or draft.source is None or draft.version != expected:
        raise StaleCopy()
    source = draft.source
    await _bump(session, organisation_id, flow_id, expected, None, actor_id)
    revision = await _new_revision(session, organisation_id, flow_id, source, summary, actor_id)
    record(session, organisation_id=organisation_id, actor_id=actor_id, action="flow.published", target_type="flow",
           target_id=revision.id, details={"flow": flow_id, "number": revision.number})
    return revision


async def rollback(session: AsyncSession, organisation_id: int, flow_id: str, number: int, actor_id: int,
                   summary: list[str]) -> FlowRevision | None:
    """Publish an old revision's text again, as a new number (revisions are never changed)."""
    old = (await session.execute(select(FlowRevision).where(
        FlowRevision.organisation_id == organisation_id, FlowRevision.flow_id == flow_id,
        FlowRevision.number == number))).scalar()
    if old is None:
        return None
    revision = await _new_revision(session, organisation_id, flow_id, old.source,
                                   [f"Retour à la révision n° {number}", *summary], actor_id)
    draft = await get_draft(session, organisation_id, flow_id)
    if draft is not None:  # open editors must reload: what they were based on changed
        await _bump(session, organisation_id, flow_id, None, draft.source, actor_id)
    record(session, organisation_id=organisation_id, actor_id=actor_id, action="flow.rolled_back", target_type="flow",
           target_id=revision.id, details={"flow": flow_id, "from": number, "number": revision.number})
    return revision


async def revisions(session: AsyncSession, organisation_id: int, flow_id: str) -> list[FlowRevision]:
    return list((await session.execute(select(FlowRevision).where(
        FlowRevision.organisation_id == organisation_id, FlowRevision.flow_id == flow_id)
        .order_by(FlowRevision.number.desc()))).scalars().all())


async def revision(session: AsyncSession, organisation_id: int, flow_id: str, number: int) -> FlowRevision | None:
    return (await session.execute(select(FlowRevision).where(
        FlowRevision.organisation_id == organisation_id, FlowRevision.flow_id == flow_id,
        FlowRevision.number == number))).scalar()
