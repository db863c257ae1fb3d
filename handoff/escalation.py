"""Never lost: a conversation waiting longer than its team's `escalate_after_minutes` (counted in the
team's open hours) is offered to the next team of the organisation and flagged to team leads (to
the admins when those teams have none). The organisation's queue follows its first team's rules
and is offered to that team first.

`waiting` lists every waiting conversation with the time it has waited (GET /inbox/waiting);
`escalate_due` runs one pass; `start_escalation` runs it every ALLERVERS_ROUTING_ESCALATION_INTERVAL
seconds from the app's lifespan.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import utcnow
from kernel.periodic import start_periodic, stop_periodic
from conversations.models import WAITING, Address, Conversation, Event
from conversations.store import Pending, load_thread
from handoff import transitions
from handoff.hours import is_open, opened_at
from handoff.models import Team, Worker

log = logging.getLogger(__name__)

# The events that start (or restart) a wait.
WAIT_EVENTS = ("conversation_queued", "conversation_requeued", "conversation_escalated")


@dataclass
class Waiting:
    conversation: Conversation
    channel: str
    since: datetime
    team: Team | None

    def minutes(self, now: datetime) -> int:
        return max(0, int((now - self.since).total_seconds() // 60))


async def waiting(session: AsyncSession, organisation_id: int | None = None) -> list[Waiting]:
    """Waiting conversations (of one organisation, or all), the longest wait first."""
    since = func.max(Event.created_at).label("since")
    query = (select(Conversation, Address.channel, since)
             .join(Address, Address.id == Conversation.address_id)
             .join(Event, (Event.conversation_id == Conversation.id) & Event.type.in_(WAIT_EVENTS), isouter=True)
             .where(Conversation.status == WAITING)
             .group_by(Conversation.id, Address.channel))
    if organisation_id is not None:
        query = query.where(Conversation.organisation_id == organisation_id)
    rows = (await session.execute(query)).all()
    team_ids = {c.team_id for c, _, _ in rows if c.team_id}
    teams = {t.id: t for t in (await session.execute(select(Team).where(Team.id.in_(team_ids)))).scalars()} \
        if team_ids else {}
    items = [Waiting(c, channel, since or c.updated_at, teams.get(c.team_id)) for c, channel, since in rows]
    return sorted(items, key=lambda item: item.since)


def due(item: Waiting, now: datetime, team: Team | None) -> bool:
    """Waited longer than `team` (its own, or the organisation's first for its queue) allows,
    counting from the team's opening when it opened since."""
    if team is None or not team.escalate_after_minutes or team.escalate_after_minutes <= 0:
        return False
    if not is_open(team.opening_hours, now, team.closed_on_holidays):
        return False  # nobody is expected to take it now: counted again at the opening
    start = max(item.since, opened_at(team.opening_hours, now, team.closed_on_holidays) or item.since)
    return (now - start).total_seconds() >= team.escalate_after_minutes * 60


async def next_team(session: AsyncSession, conversation: Conversation) -> Team | None:
    """The next team of the organisation (by id, going round) this conversation has not been offered to."""
    teams = (await session.execute(select(Team).where(Team.organisation_id == conversation.organisation_id)
                                   .order_by(Team.id))).scalars().all()
    offered = {conversation.team_id}
    for data in (await session.execute(select(Event.data).where(
            Event.conversation_id == conversation.id, Event.type == "conversation_escalated"))).scalars():
        offered.add((data or {}).get("from_team_id"))
    later = [t for t in teams if t.id > (conversation.team_id or 0)] + [t for t in teams if t.id < (conversation.team_id or 0)]
    return next((t for t in later if t.id not in offered), None)


async def team_leads(session: AsyncSession, organisation_id: int, team_ids: set[int]) -> list[int]:
    """The active team leads of these teams (the organisation's admins when they have none)."""
    rows = (await session.execute(select(Worker.id, Worker.team_id, Worker.is_team_lead, Worker.is_admin).where(
        Worker.organisation_id == organisation_id, Worker.is_active.is_(True)))).all()
    leads = [r.id for r in rows if r.is_team_lead and r.team_id in team_ids]
    return leads or [r.id for r in rows if r.is_admin]


async def escalate_due(rt, now: datetime | None = None) -> int:
    """One pass: every conversation due is offered to the next team. Returns how many were."""
    now = now or utcnow()
    async with rt.sessionmaker() as session:
        items = await waiting(session)
        first_teams = {}  # the organisation's queue follows the rules of its first team
        if any(item.team is None for item in items):
            for team in (await session.execute(select(Team).order_by(Team.id.desc()))).scalars():
                first_teams[team.organisation_id] = team
        candidates = [(item.conversation.id, item.conversation.team_id, item.minutes(now)) for item in items
                      if due(item, now, item.team or first_teams.get(item.conversation.organisation_id))]
    count = 0
    for conversation_id, team_id, minutes in candidates:
        async with rt.sessionmaker() as session:
            thread = await load_thread(session, conversation_id)
        if thread is None:
            continue
        pending = Pending.empty()
        async with rt.locks.hold(thread.address.key):
            async with rt.sessionmaker() as session, session.begin():
                thread = await load_thread(session, conversation_id)
                conversation = thread.conversation if thread else None
                if conversation is None or conversation.status != WAITING or conversation.team_id != team_id:
                    continue  # taken (or moved) meanwhile
                to_team = await next_team(session, conversation)
                leads = await team_leads(session, conversation.organisation_id,
                                         {team_id, to_team.id if to_team else None} - {None})
                await transitions.escalate(session, thread, to_team, minutes, leads, pending)
        await rt.after_commit(pending)
        count += 1
    if count:
        log.info("escalation: %s waiting conversation(s) offered to the next team", count)
    return count


def start_escalation(rt) -> asyncio.Task:
    return start_periodic("escalation", rt.settings.routing_escalation_interval, lambda: escalate_due(rt))


stop_escalation = stop_periodic
