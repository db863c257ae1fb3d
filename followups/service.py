"""Appointments, follow-ups and their scheduler. Writes run inside the caller's transaction and
queue what the person reads as outbox rows (sent after commit by conversations/deliver.py).

Scheduler (`send_due`, every ALLERVERS_FOLLOWUPS_INTERVAL s from the lifespan): due rows are
claimed with `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL (another process skips them) and a
conditional UPDATE (`… WHERE status = 'scheduled'`, one row changed or nothing is sent) on every
backend; the row is marked sent in the transaction that queues the outbox message, so a crash
before the commit sends nothing and a crash after it leaves the outbox to send (once) what is queued.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from urllib.parse import quote_plus

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import utcnow
from kernel.periodic import start_periodic, stop_periodic
from bots.base import Choice, InboundMessage, Link, OutboundMessage
from conversations.models import ASSIGNED, BOT, WAITING, Conversation
from conversations.store import Pending, Thread, add_event, load_thread, queue_message
from followups import texts
from words.catalogue import language_of
from followups.models import (
    ANSWERED,
    ANSWERS,
    CANCELLED,
    NEXT_STEP_OUTCOMES,
    NONE,
    PLANNED,
    SCHEDULED,
    SENT,
    SKIPPED,
    Appointment,
    Followup,
)
from followups.timing import MIN_NOTICE, Quiet, allowed, followup_time, next_allowed, reminder_time, spoken_date
from handoff import transitions
from handoff.hours import PARIS
from handoff.models import Worker

log = logging.getLogger(__name__)
BUTTON_PREFIX = "fu:"
BATCH = 20


def outcome_key(conversation: Conversation) -> str | None:
    """The key of the closing outcome (handoff/inbox.py OUTCOMES), from its stored label."""
    from handoff.inbox import OUTCOMES

    label = (conversation.outcome or "").split(" — ", 1)[0]
    return next((key for key, text in OUTCOMES.items() if text == label), None)


def map_link_for(address: str) -> str:
    return f"https://www.openstreetmap.org/search?query={quote_plus(address)}" if address else ""


def place_text(appointment: Appointment) -> str:
    return ", ".join(part for part in (appointment.place_name, appointment.place_address) if part)


# Appointments -----------------------------------------------------------------------------------
def _plan_reminder(appointment: Appointment, now: datetime, quiet: Quiet) -> str:
    when = reminder_time(appointment.starts_at, now, quiet)
    appointment.remind_at = when
    appointment.reminder_status = SCHEDULED if when else NONE
    appointment.reminder_sent_at = None
    return texts.label("reminder_planned", when=spoken_date(when)) if when else texts.label("reminder_impossible")


async def note_appointment(session: AsyncSession, thread: Thread, worker: Worker, starts_at: datetime,
                           place: dict, quiet: Quiet, pending: Pending, *, appointment: Appointment | None = None,
                           now: datetime | None = None) -> Appointment:
    """A new appointment (or a change to `appointment`) and its reminder's time."""
    now = now or utcnow()
    changed = appointment is not None
    if appointment is None:
        appointment = Appointment(organisation_id=thread.conversation.organisation_id,
                                  conversation_id=thread.conversation.id, contact_id=thread.contact.id,
                                  created_at=now)
        session.add(appointment)
    appointment.worker_id = worker.id
    appointment.starts_at = starts_at
    appointment.place_name = place.get("name", "")[:200]
    appointment.place_address = place.get("address", "")[:300]
    appointment.place_id = place.get("id")
    appointment.map_link = (place.get("map_link") or map_link_for(appointment.place_address))[:600]
    appointment.status = PLANNED
    appointment.updated_at = now
    reminder = _plan_reminder(appointment, now, quiet)
    await session.flush()
    label = texts.label("appointment_changed" if changed else "appointment_noted",
                        when=spoken_date(starts_at), place=place_text(appointment), reminder=reminder)
    add_event(session, thread.conversation, "appointment_changed" if changed else "appointment_noted",
              {"appointment_id": appointment.id, "label": label, "worker": worker.first_name},
              worker_id=worker.id, pending=pending)
    return appointment


async def cancel_appointment(session: AsyncSession, thread: Thread, worker: Worker, appointment: Appointment,
                             pending: Pending, now: datetime | None = None) -> None:
    appointment.status = CANCELLED
    if appointment.reminder_status == SCHEDULED:
        appointment.reminder_status = NONE
    appointment.updated_at = now or utcnow()
    add_event(session, thread.conversation, "appointment_cancelled",
              {"appointment_id": appointment.id, "label": texts.label(
                  "appointment_cancelled", when=spoken_date(appointment.starts_at)), "worker": worker.first_name},
              worker_id=worker.id, pending=pending)


# Follow-ups ---------------------------------------------------------------------------------------
async def schedule_followup(session: AsyncSession, thread: Thread, worker: Worker, days: int, quiet: Quiet,
                            pending: Pending, now: datetime | None = None) -> Followup:
    """"Ça a marché ?" N days after, the person having agreed (the route checks the box and the outcome)."""
    now = now or utcnow()
    due = followup_time(now, days, quiet)
    row = Followup(organisation_id=thread.conversation.organisation_id, conversation_id=thread.conversation.id,
                   contact_id=thread.contact.id, worker_id=worker.id, outcome=outcome_key(thread.conversation) or "",
                   days=days, due_at=due, status=SCHEDULED, agreed_at=now, created_at=now)
    session.add(row)
    await session.flush()
    add_event(session, thread.conversation, "followup_scheduled",
              {"followup_id": row.id, "days": days, "label": texts.label("followup_scheduled", when=spoken_date(due)),
               "worker": worker.first_name}, worker_id=worker.id, pending=pending)
    return row


async def cancel_followup(session: AsyncSession, thread: Thread, worker: Worker, row: Followup,
                          pending: Pending) -> None:
    row.status = CANCELLED
    add_event(session, thread.conversation, "followup_cancelled",
              {"followup_id": row.id, "label": texts.label("followup_cancelled"), "worker": worker.first_name},
              worker_id=worker.id, pending=pending)


def parse_button(choice: str | None) -> tuple[int, str] | None:
    if not choice or not choice.startswith(BUTTON_PREFIX):
        return None
    parts = choice.split(":")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 10 or parts[2] not in ANSWERS:
        return None
    return int(parts[1]), parts[2]


async def on_inbound(rt, session: AsyncSession, thread: Thread, inbound: InboundMessage, pending: Pending) -> bool:
    """The hook of conversations.receive.handle: a press on a "Ça a marché ?" button. Records the
    answer on the follow-up and on its conversation; "J'ai besoin d'aide" hands the person's
    current conversation back to the same worker (handoff.transitions.reopen_for). True: handled."""
    parsed = parse_button(inbound.choice)
    if parsed is None:
        return False
    followup_id, answer = parsed
    locale = language_of(thread.contact.locale)
    row = await session.get(Followup, followup_id)
    if row is None or row.contact_id != thread.contact.id:
        return False  # not theirs: the bot handles it as any unknown choice
    if row.status == ANSWERED:
        if thread.conversation.status == BOT:
            await queue_message(session, thread, OutboundMessage(texts.person("already", locale), locale=locale), pending)
        return True
    if row.status != SENT:
        return False
    now = utcnow()
    row.status, row.answer, row.answered_at = ANSWERED, answer, now
    label = texts.label("followup_answered", answer=texts.answer_label(answer))
    origin = await session.get(Conversation, row.conversation_id)
    if origin is not None:
        origin.summary = {**(origin.summary or {}), "followup": {"answer": answer, "label": texts.answer_label(answer),
                                                                 "answered_at": now.isoformat()}}
        add_event(session, origin, "followup_answered", {"followup_id": row.id, "answer": answer, "label": label},
                  pending=pending)
    here = thread.conversation
    if origin is None or here.id != origin.id:
        data = {"followup_id": row.id, "answer": answer, "from_conversation_id": row.conversation_id,
                "label": texts.label("followup_help_here", conversation=row.conversation_id) if answer == "help" else label}
        add_event(session, here, "followup_answered", data, pending=pending)
    if answer == "help":
        await transitions.reopen_for(session, thread, row.worker_id, "followup_help", pending,
                                     presence_seconds=rt.settings.routing_presence_seconds)
    elif here.status == BOT:
        await queue_message(session, thread, OutboundMessage(texts.person(f"thanks.{answer}", locale), locale=locale), pending)
    elif here.status in (WAITING, ASSIGNED) and here.assignee_id:
        pending.notify.append((f"worker:{here.assignee_id}", {"event": "followup_answered", "conversation": here.id}))
    return True


# The scheduler --------------------------------------------------------------------------------------
def _claimable(session: AsyncSession, query):
    if session.bind.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def _send(session: AsyncSession, thread: Thread, text: str, choices: tuple, purpose: str, params: list[str],
                pending: Pending, links: tuple[Link, ...] = ()) -> None:
    message = await queue_message(session, thread, OutboundMessage(
        text, tuple(Choice(v, t) for v, t in choices), locale=language_of(thread.contact.locale), links=links), pending)
    # WhatsApp outside the 24 h window: the organisation's approved template for this purpose, if
    # any (Organisation.whatsapp_templates[purpose]), else the usual invitation (conversations/window.py).
    message.payload = {**message.payload, "template_purpose": purpose, "template_params": params}


async def _remind(session: AsyncSession, row: Appointment, now: datetime, quiet: Quiet, pending: Pending) -> bool:
    claimed = await session.execute(update(Appointment).where(
        Appointment.id == row.id, Appointment.reminder_status == SCHEDULED, Appointment.status == PLANNED)
        .values(reminder_status=SENT, reminder_sent_at=now).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        return False
    thread = await load_thread(session, row.conversation_id)
    if thread.contact.stopped_at is not None or row.starts_at - MIN_NOTICE < now:
        why = texts.label("why_stopped" if thread.contact.stopped_at is not None else "why_too_late")
        await session.execute(update(Appointment).where(Appointment.id == row.id).values(reminder_status=SKIPPED))
        add_event(session, thread.conversation, "reminder_skipped",
                  {"appointment_id": row.id, "label": texts.label("reminder_skipped", why=why)}, pending=pending)
        return False
    locale = language_of(thread.contact.locale)
    when, place = spoken_date(row.starts_at, locale), place_text(row)
    tomorrow = row.starts_at.astimezone(PARIS).date() == now.astimezone(PARIS).date() + timedelta(days=1)
    text = texts.person("reminder" if tomorrow else "reminder_soon", locale, when=when, place=place or "—")
    # The map as words to tap (a URL button on Telegram and WhatsApp, a link in the web chat).
    links = (Link(texts.person("map_button", locale), row.map_link),) if row.map_link.startswith("https://") else ()
    await _send(session, thread, text, (), "appointment_reminder", [when, place], pending, links)
    add_event(session, thread.conversation, "reminder_sent", {"appointment_id": row.id, "label": texts.label("reminder_sent")},
              pending=pending)
    return True


async def _ask(session: AsyncSession, row: Followup, now: datetime, pending: Pending) -> bool:
    claimed = await session.execute(update(Followup).where(Followup.id == row.id, Followup.status == SCHEDULED)
                                    .values(status=SENT, sent_at=now).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        return False
    thread = await load_thread(session, row.conversation_id)
    if thread.contact.stopped_at is not None:
        await session.execute(update(Followup).where(Followup.id == row.id).values(status=SKIPPED))
        add_event(session, thread.conversation, "followup_skipped",
                  {"followup_id": row.id, "label": texts.label("followup_skipped", why=texts.label("why_stopped"))},
                  pending=pending)
        return False
    worker = await session.get(Worker, row.worker_id) if row.worker_id else None
    locale = language_of(thread.contact.locale)
    name = worker.first_name if worker else texts.person("the_team", locale)
    where = texts.person("where", locale, structure=worker.structure) if worker and worker.structure else ""
    buttons = tuple((f"{BUTTON_PREFIX}{row.id}:{value}", title) for value, title in texts.buttons(locale))
    await _send(session, thread, texts.person("followup", locale, worker=name, where=where), buttons, "followup",
                [name], pending)
    add_event(session, thread.conversation, "followup_sent", {"followup_id": row.id, "label": texts.label("followup_sent")},
              pending=pending)
    return True


async def send_due(rt, now: datetime | None = None) -> int:
    """One pass of the scheduler: every reminder and follow-up due at `now` (the injectable clock)
    is queued, at most once, outside quiet hours. Returns how many messages were queued."""
    now = now or utcnow()
    quiet = Quiet.of(rt.settings)
    if not allowed(now, quiet):
        return 0  # quiet hours: due rows wait for the next allowed pass
    sent = 0
    for model, due_column, status_column, handle in (
            (Appointment, Appointment.remind_at, Appointment.reminder_status, "remind"),
            (Followup, Followup.due_at, Followup.status, "ask")):
        while True:
            pending = Pending.empty()
            async with rt.sessionmaker() as session, session.begin():
                query = select(model).where(status_column == SCHEDULED, due_column <= now)
                if model is Appointment:
                    query = query.where(Appointment.status == PLANNED)
                rows = (await session.execute(_claimable(session, query.order_by(due_column, model.id)
                                                         .limit(BATCH)))).scalars().all()
                for row in rows:
                    if handle == "remind":
                        sent += await _remind(session, row, now, quiet, pending)
                    else:
                        sent += await _ask(session, row, now, pending)
            await rt.after_commit(pending)
            if len(rows) < BATCH:
                break
    if sent:
        log.info("followups: %s reminder(s) and follow-up(s) queued", sent)
    return sent


def start_scheduler(rt) -> asyncio.Task:
    return start_periodic("followups", rt.settings.followups_interval, lambda: send_due(rt))


stop_scheduler = stop_periodic


__all__ = ["NEXT_STEP_OUTCOMES", "next_allowed", "note_appointment", "on_inbound", "send_due"]
