"""The only writer of conversation status besides conversations.receive.

Every transition runs inside the caller's transaction, appends its past-tense event, and queues
what the person must be told. Nothing is sent here: the caller delivers after commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import utcnow
from bots.base import OutboundMessage
from ops.metrics import first_reply
from conversations.models import ASSIGNED, BOT, CLOSED, WAITING, Event, Message
from conversations.store import Pending, Thread, add_event, queue_message
from handoff.hours import is_open, next_opening, spoken_time
from handoff.models import Organisation, Team, Worker
from handoff.routing import Route, need_of, organisation_map, queue_team, route
from words.catalogue import language_of, room

WORDS = room(__file__)  # handoff/words/<language>.yaml


def locale_of(thread: Thread) -> str:
    """The language the person reads (Contact.locale, French when unknown)."""
    return language_of(thread.contact.locale)


def introduction(worker: Worker, hours: str | None = None, again: bool = False, locale: str = "fr") -> str:
    """Who answers, their role and structure, and when: the person always knows who is there.
    `again`: the person's previous worker answers them again ("Camille vous répond")."""
    where = WORDS.text("where", locale, structure=worker.structure) if worker.structure else ""
    when = WORDS.text("later", locale, hours=hours) if hours and not worker.is_online else WORDS.text("soon", locale)
    who = WORDS.text("continuity" if again else "introduction", locale,
                     first_name=worker.first_name, job_title=worker.job_title, where=where)
    return f"{who}\n{when}"


def reached(worker: Worker, again: bool, locale: str) -> str:
    return f"{WORDS.text('reached', locale)}\n{introduction(worker, again=again, locale=locale)}"


def queued_text(organisation: Organisation, team: Team | None, hours_team: Team | None, need, now: datetime,
                locale: str = "fr") -> str:
    """What a person waiting in a queue is told: passed on, and when (out of hours: the team's next
    opening, Paris time, and the emergency numbers for an urgent need). The team's own words
    (out_of_hours_message) are French: shown as such to a French reader, the catalogue's otherwise."""
    who = (WORDS.text("team", locale, name=team.name) if team
           else WORDS.text("organisation", locale, name=organisation.name))
    if hours_team is None or is_open(hours_team.opening_hours, now, hours_team.closed_on_holidays):
        return WORDS.text("queued", locale, who=who, hours=organisation.opening_hours_text)
    opening = next_opening(hours_team.opening_hours, now, hours_team.closed_on_holidays)
    own = (hours_team.out_of_hours_message or "").strip() if locale == "fr" else ""
    lines = [WORDS.text("passed_on", locale, who=who), own or WORDS.text("closed_now", locale),
             WORDS.text("expected", locale, when=spoken_time(opening, now, locale)) if opening
             else WORDS.text("expected_unknown", locale)]
    if need.urgent:
        from directory.emergency import numbers_for

        numbers = "\n".join(WORDS.text("number", locale, text=entry.text) for entry in numbers_for(need.need)[:3])
        lines.append(WORDS.text("urgent", locale, numbers=numbers))
    return "\n".join(lines)


def signed(worker: Worker, text: str) -> str:
    return f"{text}\n— {worker.first_name}"


def _set_status(thread: Thread, status: str, assignee_id: int | None) -> None:
    thread.conversation.status = status
    thread.conversation.assignee_id = assignee_id
    thread.conversation.updated_at = utcnow()


async def request_handoff(session: AsyncSession, thread: Thread, reason: str, pending: Pending, *,
                          now: datetime | None = None, presence_seconds: float = 0) -> Worker | None:
    """Hand the conversation to a named worker (`handoff.routing.route`) or a queue, and tell the
    person that their message arrived, who answers, and when."""
    conversation = thread.conversation
    if conversation.status in (WAITING, ASSIGNED):
        return None
    now = now or utcnow()
    add_event(session, conversation, "handoff_requested", {"reason": reason}, pending=pending)
    found: Route = await route(session, conversation, thread.contact, now=now, presence_seconds=presence_seconds,
                               new_contact=thread.created)
    worker = found.worker
    if worker is not None:
        _set_status(thread, ASSIGNED, worker.id)
        conversation.team_id = found.team.id if found.team else conversation.team_id
        add_event(session, conversation, "conversation_assigned",
                  {"worker": worker.first_name, "worker_id": worker.id, "by": "routing", "rule": found.rule},
                  pending=pending)
        locale = locale_of(thread)
        text = reached(worker, found.rule == "continuity", locale)
        await queue_message(session, thread, OutboundMessage(text, locale=locale), pending)
        pending.notify.append((f"worker:{worker.id}", {"event": "conversation_assigned",
                                                      "conversation": conversation.id}))
        return worker
    team = found.team
    organisation = await queued_organisation(session, conversation.organisation_id)
    _set_status(thread, WAITING, None)
    conversation.team_id = team.id if team else None
    add_event(session, conversation, "conversation_queued",
              {"team": team.name if team else None, "team_id": team.id if team else None, "rule": found.rule},
              pending=pending)
    locale = locale_of(thread)
    text = queued_text(organisation, team, found.hours_team, need_of(conversation, thread.contact), now, locale)
    await queue_message(session, thread, OutboundMessage(text, locale=locale), pending)
    return None


async def queued_organisation(session: AsyncSession, organisation_id: int) -> Organisation:
    """The organisation's row as routing read it in this transaction (with its teams: no query
    of its own per handoff), else read now."""
    organisation = (await organisation_map(session, organisation_id)).organisation
    return organisation if organisation is not None else await session.get(Organisation, organisation_id)


async def assign(session: AsyncSession, thread: Thread, worker: Worker, by: Worker | None, pending: Pending) -> None:
    """A worker takes the conversation (from the queue, or by transfer): the person is told who."""
    previous = thread.conversation.assignee_id
    _set_status(thread, ASSIGNED, worker.id)
    kind = "conversation_transferred" if previous and previous != worker.id else "conversation_assigned"
    add_event(session, thread.conversation, kind,
              {"worker": worker.first_name, "worker_id": worker.id, "from_worker_id": previous,
               "by": by.first_name if by else "routing"},
              worker_id=by.id if by else None, pending=pending)
    organisation = await session.get(Organisation, thread.conversation.organisation_id)
    locale = locale_of(thread)
    await queue_message(session, thread, OutboundMessage(
        introduction(worker, organisation.opening_hours_text, locale=locale), locale=locale), pending)
    pending.notify.append((f"worker:{worker.id}", {"event": kind, "conversation": thread.conversation.id}))


async def reply(session: AsyncSession, thread: Thread, worker: Worker, text: str, pending: Pending,
                attachment_path: str | None = None) -> Message:
    """A worker's reply: a row signed with their first name, sent after commit."""
    if thread.conversation.status != ASSIGNED or thread.conversation.assignee_id != worker.id:
        await assign(session, thread, worker, worker, pending)
    message = await queue_message(session, thread, OutboundMessage(signed(worker, text),
                                                                   attachment_path=attachment_path),
                                  pending, worker_id=worker.id, flush=True)
    add_event(session, thread.conversation, "worker_replied", {"message_id": message.id, "worker": worker.first_name},
              worker_id=worker.id, pending=pending)
    await first_reply(session, thread.conversation.id, message.id)  # ops.metrics: time to first human reply
    return message


async def add_note(session: AsyncSession, thread: Thread, worker: Worker, text: str, pending: Pending) -> None:
    add_event(session, thread.conversation, "note_added", {"text": text, "worker": worker.first_name},
              worker_id=worker.id, pending=pending)


async def close(session: AsyncSession, thread: Thread, worker: Worker | None, outcome: str, pending: Pending,
                tell_person: bool = True) -> None:
    conversation = thread.conversation
    from casework.transfers import withdraw_pending

    await withdraw_pending(session, thread, pending)  # a transfer question still open lapses
    _set_status(thread, CLOSED, conversation.assignee_id)
    conversation.outcome = outcome
    conversation.closed_at = utcnow()
    add_event(session, conversation, "conversation_closed",
              {"outcome": outcome, "worker": worker.first_name if worker else None},
              worker_id=worker.id if worker else None, pending=pending)
    if tell_person:
        locale = locale_of(thread)
        who = worker.first_name if worker else WORDS.text("the_team", locale)
        await queue_message(session, thread, OutboundMessage(WORDS.text("closed", locale, who=who), locale=locale),
                            pending)
        from outreach.inbound import ask_news_once

        await ask_news_once(session, thread, pending)  # a quiet moment: news from time to time?
    if thread.contact.consent is False:
        # Consent refused: nothing is kept beyond the conversation (sent messages are purged later).
        conversation.summary = {}
        conversation.flow_state = {}
        await session.execute(delete(Event).where(Event.conversation_id == conversation.id,
                                                  Event.type.in_(("answer_saved", "note_added"))))
        await session.execute(delete(Message).where(Message.conversation_id == conversation.id,
                                                    Message.status.notin_(("queued", "sending", "awaiting"))))


async def return_to_bot(session: AsyncSession, thread: Thread, worker: Worker, pending: Pending) -> None:
    _set_status(thread, BOT, None)
    thread.conversation.flow_state = {}
    add_event(session, thread.conversation, "conversation_returned_to_bot", {"worker": worker.first_name},
              worker_id=worker.id, pending=pending)


async def return_to_queue(session: AsyncSession, thread: Thread, by: Worker | None, pending: Pending) -> None:
    """The assigned worker is no longer there (deactivated by an admin): the conversation goes back
    to the team queue and the person is told that someone else will answer."""
    conversation = thread.conversation
    previous = conversation.assignee_id
    leaving = await session.get(Worker, previous) if previous else None
    team = await session.get(Team, conversation.team_id) if conversation.team_id else None
    team = team or await queue_team(session, conversation.organisation_id)
    organisation = await session.get(Organisation, conversation.organisation_id)
    _set_status(thread, WAITING, None)
    conversation.team_id = team.id if team else None
    add_event(session, conversation, "conversation_requeued",
              {"from_worker_id": previous, "by": by.first_name if by else None, "team": team.name if team else None},
              worker_id=by.id if by else None, pending=pending)
    locale = locale_of(thread)
    who = (WORDS.text("team", locale, name=team.name) if team
           else WORDS.text("organisation", locale, name=organisation.name))
    name = leaving.first_name if leaving else WORDS.text("someone", locale)
    await queue_message(session, thread, OutboundMessage(WORDS.text(
        "requeued", locale, name=name, who=who, hours=organisation.opening_hours_text), locale=locale), pending)


async def team_of(session: AsyncSession, worker: Worker) -> Team | None:
    return await session.get(Team, worker.team_id) if worker.team_id else None


async def escalate(session: AsyncSession, thread: Thread, to_team: Team | None, waited_minutes: int,
                   leads: list[int], pending: Pending) -> None:
    """Nobody of the team took the conversation in time: it is offered to `to_team` (None: no other
    team is left, it stays) and flagged to team leads (an event and a live update to each)."""
    conversation = thread.conversation
    from_team_id = conversation.team_id
    if to_team is not None:
        conversation.team_id = to_team.id
    add_event(session, conversation, "conversation_escalated",
              {"from_team_id": from_team_id, "to_team_id": to_team.id if to_team else None,
               "team": to_team.name if to_team else None, "waited_minutes": waited_minutes}, pending=pending)
    for lead_id in leads:
        pending.notify.append((f"worker:{lead_id}", {"event": "conversation_escalated",
                                                    "conversation": conversation.id}))


async def reopen_for(session: AsyncSession, thread: Thread, worker_id: int | None, reason: str, pending: Pending, *,
                     presence_seconds: float = 0) -> Worker | None:
    """The person asks for help again after a closed conversation (a follow-up's « J'ai besoin
    d'aide »): their conversation goes to the same worker while they are active in the organisation
    (« Camille vous répond, comme la dernière fois »), through routing otherwise."""
    conversation = thread.conversation
    if conversation.status in (WAITING, ASSIGNED):
        if conversation.assignee_id:
            pending.notify.append((f"worker:{conversation.assignee_id}", {"event": "followup_answered",
                                                                          "conversation": conversation.id}))
        return None
    worker = await session.get(Worker, worker_id) if worker_id else None
    if worker is None or not worker.is_active or worker.organisation_id != conversation.organisation_id:
        return await request_handoff(session, thread, reason, pending, presence_seconds=presence_seconds)
    add_event(session, conversation, "handoff_requested", {"reason": reason}, pending=pending)
    _set_status(thread, ASSIGNED, worker.id)
    conversation.team_id = worker.team_id or conversation.team_id
    add_event(session, conversation, "conversation_assigned",
              {"worker": worker.first_name, "worker_id": worker.id, "by": "routing", "rule": "continuity"},
              pending=pending)
    locale = locale_of(thread)
    await queue_message(session, thread, OutboundMessage(reached(worker, True, locale), locale=locale), pending)
    pending.notify.append((f"worker:{worker.id}", {"event": "conversation_assigned", "conversation": conversation.id}))
    return worker


async def move_to_organisation(session: AsyncSession, thread: Thread, organisation: Organisation, pending: Pending, *,
                               label: str, presence_seconds: float = 0) -> Worker | None:
    """The person agreed to be followed by another organisation of the deployment (casework's
    transfer): the conversation (its messages, answers and summary) and the person move there, and
    its routing says who answers — the person is told who. The first organisation loses access."""
    conversation = thread.conversation
    add_event(session, conversation, "conversation_moved",  # announced to the first organisation's lists
              {"to_organisation_id": organisation.id, "label": label}, pending=pending)
    conversation.organisation_id = organisation.id
    thread.contact.organisation_id = organisation.id
    conversation.team_id = None
    _set_status(thread, BOT, None)
    return await request_handoff(session, thread, "transfer", pending, presence_seconds=presence_seconds)
