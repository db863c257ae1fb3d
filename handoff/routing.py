"""Who answers: v1 picks the least busy available worker of the organisation, else a team queue."""

from __future__ import annotations

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.models import ASSIGNED, Conversation
from handoff.models import Team, Worker


async def open_load(session: AsyncSession, worker_ids: list[int]) -> dict[int, int]:
    if not worker_ids:
        return {}
    rows = await session.execute(
        select(Conversation.assignee_id, func.count())
        .where(Conversation.assignee_id.in_(worker_ids), Conversation.status == ASSIGNED)
        .group_by(Conversation.assignee_id)
    )
    return dict(rows.all())


async def pick_worker(session: AsyncSession, organisation_id: int, exclude: int | None = None) -> Worker | None:
    """The available (online, active) worker with the fewest open conversations, under capacity."""
    workers = (
        await session.execute(
            select(Worker).where(and_(Worker.organisation_id == organisation_id, Worker.is_active.is_(True),
                                      Worker.is_online.is_(True)))
            .order_by(Worker.id)
        )
    ).scalars().all()
    workers = [w for w in workers if w.id != exclude]
    load = await open_load(session, [w.id for w in workers])
    candidates = [w for w in workers if load.get(w.id, 0) < w.capacity]
    if not candidates:
        return None
    return min(candidates, key=lambda w: (load.get(w.id, 0), w.id))


async def queue_team(session: AsyncSession, organisation_id: int) -> Team | None:
    return (
        await session.execute(select(Team).where(Team.organisation_id == organisation_id).order_by(Team.id).limit(1))
    ).scalar()
