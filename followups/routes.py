"""The appointment and follow-up sheet of a conversation (inbox): a partial loaded lazily
(templates/followups/actions.html -> GET …/followups) and its forms.

Every POST checks CSRF before reading anything else (admin.forms.read_form), works only on a
conversation of the worker's organisation (404 otherwise), answers 400 with a French reason on bad
input (nothing changed), and is audited (admin/audit.py) in the transaction of its change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from admin.audit import record as record_audit
from admin.forms import FormError, checkbox, integer, read_form, text
from handoff.auth import csrf_token, current_worker
from kernel.database import utcnow
from kernel.fields import RowId
from conversations.models import CLOSED, Conversation
from conversations.store import Pending, Thread, load_thread
from followups import service, texts
from followups.models import ANSWERED, CANCELLED, NEXT_STEP_OUTCOMES, PLANNED, SCHEDULED, SENT, Appointment, Followup
from followups.timing import Quiet, parse_local, spoken_date
from handoff.hours import PARIS
from handoff.models import Worker

router = APIRouter(prefix="/inbox/conversations/{conversation_id}")
MAX_DAYS_AHEAD = 366


async def _conversation(request: Request, worker: Worker, conversation_id: int) -> Conversation:
    async with request.app.state.rt.sessionmaker() as session:
        conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.organisation_id != worker.organisation_id:
        raise HTTPException(404, "conversation introuvable dans votre organisation")
    return conversation


def places_shown(conversation: Conversation) -> list[dict]:
    """Directory places the person was shown in this conversation (a place to meet may be one of them)."""
    result = (conversation.summary or {}).get("places") or {}
    return [p for p in (result.get("shown") or result.get("places") or []) if isinstance(p, dict) and p.get("id")]


async def panel_context(request: Request, worker: Worker, conversation: Conversation, error: str | None = None,
                        values: dict | None = None) -> dict:
    async with request.app.state.rt.sessionmaker() as session:
        appointments = (await session.execute(select(Appointment).where(
            Appointment.conversation_id == conversation.id, Appointment.status == PLANNED)
            .order_by(Appointment.starts_at))).scalars().all()
        followups = (await session.execute(select(Followup).where(
            Followup.conversation_id == conversation.id, Followup.status != CANCELLED)
            .order_by(Followup.id.desc()))).scalars().all()
    outcome = service.outcome_key(conversation)
    return {"conversation": conversation, "worker": worker, "csrf": csrf_token(request), "error": error,
            "values": values or {}, "appointments": appointments, "followups": followups,
            "places": places_shown(conversation), "spoken": spoken_date, "local": lambda at: at.astimezone(PARIS), "place_text": service.place_text,
            "can_follow_up": conversation.status == CLOSED and outcome in NEXT_STEP_OUTCOMES
            and not any(f.status in (SCHEDULED, SENT) for f in followups),
            "closed": conversation.status == CLOSED, "default_days": request.app.state.rt.settings.followups_default_days,
            "answer_labels": texts.label("answers"), "statuses": {"scheduled": SCHEDULED, "sent": SENT, "answered": ANSWERED}}


def _panel(request: Request, context: dict, status: int = 200, changed: bool = False) -> Response:
    response = request.app.state.templates.TemplateResponse(request, "followups/_panel.html", context,
                                                            status_code=status)
    if changed:
        response.headers["HX-Trigger"] = "refresh-timeline"
    return response


@router.get("/followups", response_class=HTMLResponse)
async def panel(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    conversation = await _conversation(request, worker, conversation_id)
    return _panel(request, await panel_context(request, worker, conversation))


async def _change(request: Request, worker: Worker, conversation_id: int, change, values: dict) -> Response:
    """Run `change(session, thread, me, pending)` under the person's lock, in one transaction; a
    FormError is a 400 (rolled back: nothing changed)."""
    rt = request.app.state.rt
    conversation = await _conversation(request, worker, conversation_id)
    async with rt.sessionmaker() as session:
        thread = await load_thread(session, conversation_id)
    pending = Pending.empty()
    try:
        async with rt.locks.hold(thread.address.key):
            async with rt.sessionmaker() as session, session.begin():
                thread = await load_thread(session, conversation_id)
                me = await session.get(Worker, worker.id)
                await change(session, thread, me, pending)
    except FormError as error:
        if not request.headers.get("hx-request"):
            raise HTTPException(400, str(error)) from None
        return _panel(request, await panel_context(request, worker, conversation, str(error), values), 400)
    await rt.after_commit(pending)
    if not request.headers.get("hx-request"):
        return RedirectResponse(f"/inbox/conversations/{conversation_id}", status_code=303)
    async with rt.sessionmaker() as session:
        conversation = await session.get(Conversation, conversation_id)
    return _panel(request, await panel_context(request, worker, conversation), changed=True)


def _when(form) -> datetime:
    day = text(form, "day", "Date", max_length=10, required=True)
    hour = text(form, "time", "Heure", max_length=5, required=True)
    try:
        starts_at = parse_local(day, hour)
    except ValueError:
        raise FormError("Date et heure : une date (jj/mm/aaaa) et une heure (hh:mm) sont attendues.") from None
    now = utcnow()
    if starts_at < now:
        raise FormError("Date et heure : ce moment est déjà passé.")
    if starts_at > now + timedelta(days=MAX_DAYS_AHEAD):
        raise FormError("Date et heure : un an au plus à l'avance.")
    return starts_at


def _place(form, conversation: Conversation) -> dict:
    ref = text(form, "place_ref", "Lieu", max_length=200)
    if ref:
        shown = {str(p["id"]): p for p in places_shown(conversation)}
        if ref not in shown:
            raise FormError("Lieu : ce lieu n'a pas été proposé dans cette conversation.")
        p = shown[ref]
        return {"id": ref, "name": str(p.get("name") or "")[:200], "address": str(p.get("address") or "")[:300],
                "map_link": str(p.get("map_link") or "")[:600]}
    name = text(form, "place_name", "Nom du lieu", max_length=200)
    address = text(form, "place_address", "Adresse", max_length=300)
    if not address:
        raise FormError("Adresse : à remplir (ou choisissez un lieu proposé).")
    return {"name": name, "address": address}


def _values(form) -> dict:
    return {k: str(form.get(k) or "")[:300] for k in ("day", "time", "place_ref", "place_name", "place_address", "days")}


def _audit(session, me: Worker, action: str, target_type: str, target_id: int, conversation_id: int) -> None:
    record_audit(session, organisation_id=me.organisation_id, actor_id=me.id, action=action,
                 target_type=target_type, target_id=target_id, details={"conversation_id": conversation_id})


async def _owned(session, model, row_id: int, thread: Thread):
    row = await session.get(model, row_id)
    if row is None or row.conversation_id != thread.conversation.id:
        raise HTTPException(404, "introuvable dans cette conversation")
    return row


@router.post("/appointments")
async def add_appointment(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    form = await read_form(request)
    quiet = Quiet.of(request.app.state.rt.settings)

    async def change(session, thread, me, pending):
        starts_at, place = _when(form), _place(form, thread.conversation)
        row = await service.note_appointment(session, thread, me, starts_at, place, quiet, pending)
        _audit(session, me, "appointment.noted", "appointment", row.id, thread.conversation.id)

    return await _change(request, worker, conversation_id, change, _values(form))


@router.post("/appointments/{appointment_id}")
async def edit_appointment(request: Request, conversation_id: RowId, appointment_id: RowId,
                           worker: Worker = Depends(current_worker)):
    form = await read_form(request)
    quiet = Quiet.of(request.app.state.rt.settings)

    async def change(session, thread, me, pending):
        row = await _owned(session, Appointment, appointment_id, thread)
        if row.status != PLANNED:
            raise FormError("Ce rendez-vous est annulé.")
        starts_at, place = _when(form), _place(form, thread.conversation)
        await service.note_appointment(session, thread, me, starts_at, place, quiet, pending, appointment=row)
        _audit(session, me, "appointment.changed", "appointment", row.id, thread.conversation.id)

    return await _change(request, worker, conversation_id, change, _values(form))


@router.post("/appointments/{appointment_id}/cancel")
async def cancel_appointment(request: Request, conversation_id: RowId, appointment_id: RowId,
                             worker: Worker = Depends(current_worker)):
    await read_form(request)

    async def change(session, thread, me, pending):
        row = await _owned(session, Appointment, appointment_id, thread)
        if row.status != PLANNED:
            raise FormError("Ce rendez-vous est déjà annulé.")
        await service.cancel_appointment(session, thread, me, row, pending)
        _audit(session, me, "appointment.cancelled", "appointment", row.id, thread.conversation.id)

    return await _change(request, worker, conversation_id, change, {})


@router.post("/followup")
async def add_followup(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    form = await read_form(request)
    settings = request.app.state.rt.settings
    quiet = Quiet.of(settings)

    async def change(session, thread, me, pending):
        conversation = thread.conversation
        if conversation.status != CLOSED or service.outcome_key(conversation) not in NEXT_STEP_OUTCOMES:
            raise FormError("Suivi : possible une fois la conversation terminée avec une orientation, "
                            "un rendez-vous ou une démarche commencée.")
        if not checkbox(form, "agreed"):
            raise FormError("Suivi : cochez « la personne est d'accord » (demandez-lui d'abord).")
        days = integer(form, "days", "Nombre de jours", minimum=1, maximum=90, default=settings.followups_default_days)
        existing = (await session.execute(select(Followup.id).where(
            Followup.conversation_id == conversation.id, Followup.status.in_((SCHEDULED, SENT))))).first()
        if existing:
            raise FormError("Suivi : un message est déjà prévu pour cette conversation.")
        if thread.contact.stopped_at is not None:
            raise FormError("Suivi : la personne a écrit stop, rien ne lui sera envoyé.")
        row = await service.schedule_followup(session, thread, me, days, quiet, pending)
        _audit(session, me, "followup.scheduled", "followup", row.id, conversation.id)

    return await _change(request, worker, conversation_id, change, _values(form))


@router.post("/followup/{followup_id}/cancel")
async def cancel_followup(request: Request, conversation_id: RowId, followup_id: RowId,
                          worker: Worker = Depends(current_worker)):
    await read_form(request)

    async def change(session, thread, me, pending):
        row = await _owned(session, Followup, followup_id, thread)
        if row.status != SCHEDULED:
            raise FormError("Suivi : ce message n'est plus en attente (déjà envoyé ou annulé).")
        await service.cancel_followup(session, thread, me, row, pending)
        _audit(session, me, "followup.cancelled", "followup", row.id, thread.conversation.id)

    return await _change(request, worker, conversation_id, change, {})
