"""Who answers: v1 picks the least busy available worker of the organisation, else a team queue."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import and_, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.models import ASSIGNED, Conversation
from conversations.store import transaction_memo
from handoff.models import Team, Worker


async def open_load(session: AsyncSession, worker_ids: list[int]) -> dict[int, int]:
    """Open conversations per worker: what the database holds, plus what this transaction changed
    and has not written yet (a batch of the intake hands several people over in one transaction)."""
    if not worker_ids:
        return {}
    rows = await session.execute(
        select(Conversation.assignee_id, func.count())
        .where(Conversation.assignee_id.in_(worker_ids), Conversation.status == ASSIGNED)
        .group_by(Conversation.assignee_id)
    )
    load = Counter(dict(rows.all()))
    load.update(_unwritten_load(session))
    return {worker_id: load[worker_id] for worker_id in worker_ids}


def _unwritten_load(session: AsyncSession) -> Counter:
    """+1 / -1 per worker for conversations assigned / unassigned in this session, not flushed yet."""
    delta: Counter = Counter()
    for obj in (*session.new, *session.dirty):
        if not isinstance(obj, Conversation):
            continue
        state = inspect(obj)
        before = (_written(state, "status"), _written(state, "assignee_id"))
        after = (obj.status, obj.assignee_id)
        if before == after:
            continue
        if before[0] == ASSIGNED and before[1] is not None:
            delta[before[1]] -= 1
        if after[0] == ASSIGNED and after[1] is not None:
            delta[after[1]] += 1
    return delta


def _written(state, key: str):
    """The value as the database holds it (None for a row not written yet)."""
    if state.pending or state.transient:
        return None
    history = state.attrs[key].history
    if history.deleted:
        return history.deleted[0]
    return history.unchanged[0] if history.unchanged else getattr(state.obj(), key)


async def pick_worker(session: AsyncSession, organisation_id: int, exclude: int | None = None) -> Worker | None:
    """The available (online, active) worker with the fewest open conversations, under capacity."""
    memo = transaction_memo(session)  # one query per transaction (a batch hands several people over)
    key = ("available_workers", organisation_id)
    if key not in memo:
        memo[key] = (
            await session.execute(
                select(Worker).where(and_(Worker.organisation_id == organisation_id, Worker.is_active.is_(True),
                                          Worker.is_online.is_(True)))
                .order_by(Worker.id)
            )
        ).scalars().all()
    workers = [w for w in memo[key] if w.id != exclude]
    load = await open_load(session, [w.id for w in workers])
    candidates = [w for w in workers if load.get(w.id, 0) < w.capacity]
    if not candidates:
        return None
    return min(candidates, key=lambda w: (load.get(w.id, 0), w.id))


async def queue_team(session: AsyncSession, organisation_id: int) -> Team | None:
    memo = transaction_memo(session)
    key = ("queue_team", organisation_id)
    if key not in memo:
        memo[key] = (await session.execute(
            select(Team).where(Team.organisation_id == organisation_id).order_by(Team.id).limit(1))).scalar()
    return memo[key]
