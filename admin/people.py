"""Workers of the organisation: list, invite by a one-time link, edit, deactivate, new password link.

Every change writes its audit entry in the same transaction. Deactivating a worker sends their open
conversations back to the team queue (handoff.transitions.return_to_queue: the person is told) and
ends their sessions.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData
from sqlalchemy import func, select

from handoff import hours as weekly
from admin.access import admin_page, current_admin
from admin.audit import record, update_audited
from admin.forms import LANGUAGES, FormError, checkbox, email, integer, languages, owned, read_form, text, words
from admin.invitations import invitation_url, issue, revoke_all
from kernel.fields import RowId
from handoff.auth import end_worker_sessions
from kernel.database import utcnow
from conversations.models import ASSIGNED, Conversation
from conversations.store import Pending, load_thread
from handoff import transitions
from handoff.models import Organisation, Team, Worker

log = logging.getLogger(__name__)
router = APIRouter(prefix="/people")

PENDING_EMAIL_DOMAIN = "invite.invalid"  # an invitation without e-mail: the person gives theirs on the link page
STATES = {"active": "Actif", "invited": "Invitation envoyée", "deactivated": "Désactivé"}


def has_pending_email(worker: Worker) -> bool:
    return worker.email.endswith("@" + PENDING_EMAIL_DOMAIN)


async def _teams(session, organisation_id: int) -> list[Team]:
    return list((await session.execute(select(Team).where(Team.organisation_id == organisation_id)
                                       .order_by(Team.name))).scalars().all())


@router.get("", response_class=HTMLResponse)
async def people(request: Request, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        workers = (await session.execute(select(Worker).where(Worker.organisation_id == admin.organisation_id)
                                         .order_by(Worker.is_active.desc(), Worker.first_name))).scalars().all()
        teams = {t.id: t.name for t in await _teams(session, admin.organisation_id)}
        load = dict((await session.execute(select(Conversation.assignee_id, func.count()).where(
            Conversation.organisation_id == admin.organisation_id, Conversation.status == ASSIGNED)
            .group_by(Conversation.assignee_id))).all())
    return admin_page(request, "admin/people.html", admin, workers=workers, teams=teams, load=load, states=STATES,
                      pending_email=has_pending_email)


def _person_form(worker: Worker | None, **values) -> dict:
    return {"person": worker, "languages_all": LANGUAGES, "schedule": weekly.form_values(worker.schedule if worker else {}),
            **values}


@router.get("/new", response_class=HTMLResponse)
async def new_person(request: Request, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        teams = await _teams(session, admin.organisation_id)
        organisation = await session.get(Organisation, admin.organisation_id)
    return admin_page(request, "admin/people_form.html", admin, teams=teams, organisation=organisation,
                      **_person_form(None, error=None, values=FormData()))


def _fields(form, teams: list[Team]) -> dict:
    """The editable fields of a worker, validated (FormError otherwise)."""
    team_raw = (form.get("team_id") or "").strip()
    team_ids = {str(t.id): t.id for t in teams}
    if team_raw and team_raw not in team_ids:
        raise FormError("Équipe : choisissez une équipe de la liste.")
    try:
        schedule = weekly.from_form({k[len("schedule_"):]: v for k, v in form.items() if k.startswith("schedule_")})
    except weekly.HoursError as error:
        raise FormError(f"Horaires habituels — {error}") from error
    return {
        "first_name": text(form, "first_name", "Prénom", max_length=80, required=True),
        "job_title": text(form, "job_title", "Rôle", max_length=120, required=True),
        "structure": text(form, "structure", "Structure", max_length=200),
        "team_id": team_ids.get(team_raw),
        "languages": languages(form),
        "topics": words(form, "topics", "Sujets"),
        "capacity": integer(form, "capacity", "Conversations en même temps", minimum=1, maximum=200, default=20),
        "schedule": schedule,
        "is_admin": checkbox(form, "is_admin"),
        "is_team_lead": checkbox(form, "is_team_lead"),
    }


@router.post("", response_class=HTMLResponse)
async def invite(request: Request, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        teams = await _teams(session, admin.organisation_id)
        organisation = await session.get(Organisation, admin.organisation_id)
    try:
        fields = _fields(form, teams)
        address = email(form, required=False)
    except FormError as error:
        return _refused(request, admin, "admin/people_form.html", str(error), teams=teams, organisation=organisation,
                        **_person_form(None, values=form))
    async with rt.sessionmaker() as session, session.begin():
        if address and (await session.execute(select(Worker.id).where(Worker.email == address))).first():
            taken = True
        else:
            taken = False
            worker = Worker(organisation_id=admin.organisation_id, email=address or
                            f"pending-{secrets.token_hex(8)}@{PENDING_EMAIL_DOMAIN}", password_hash="",
                            is_active=False, is_online=False, invited_at=utcnow(), **fields)
            session.add(worker)
            await session.flush()
            token = await issue(session, worker, "invite", admin.id)
            record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="worker.invited",
                   target_type="worker", target_id=worker.id,
                   details={"fields": sorted(fields), "with_email": bool(address)})
    if taken:
        return _refused(request, admin, "admin/people_form.html",
                        "E-mail : une personne a déjà un compte avec cette adresse.", teams=teams,
                        organisation=organisation, **_person_form(None, values=form))
    log.info("worker %s invited by %s", worker.id, admin.id)
    return admin_page(request, "admin/people_link.html", admin, person=worker, purpose="invite",
                      link=invitation_url(rt.settings.public_url, token))


def _refused(request, admin, template: str, error: str, **context):
    response = admin_page(request, template, admin, error=error, **context)
    response.status_code = 400
    return response


@router.get("/{worker_id}", response_class=HTMLResponse)
async def person(request: Request, worker_id: RowId, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        worker = await owned(session, Worker, worker_id, admin.organisation_id)
        teams = await _teams(session, admin.organisation_id)
        open_count = (await session.execute(select(func.count()).where(
            Conversation.assignee_id == worker.id, Conversation.status == ASSIGNED))).scalar()
    return admin_page(request, "admin/people_form.html", admin, teams=teams, open_count=open_count, states=STATES,
                      pending_email=has_pending_email(worker), **_person_form(worker, error=None, values=FormData()))


@router.post("/{worker_id}", response_class=HTMLResponse)
async def save_person(request: Request, worker_id: RowId, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        worker = await owned(session, Worker, worker_id, admin.organisation_id)
        teams = await _teams(session, admin.organisation_id)
    try:
        fields = _fields(form, teams)
        if worker.id == admin.id and not fields["is_admin"]:
            raise FormError("Administration : vous ne pouvez pas retirer votre propre rôle d'administrateur.")
    except FormError as error:
        return _refused(request, admin, "admin/people_form.html", str(error), teams=teams, states=STATES,
                        pending_email=has_pending_email(worker), **_person_form(worker, values=form))
    async with rt.sessionmaker() as session, session.begin():
        worker = await owned(session, Worker, worker_id, admin.organisation_id)
        update_audited(session, worker, fields, organisation_id=admin.organisation_id, actor_id=admin.id,
                       action="worker.updated", target_type="worker")
    return RedirectResponse(f"/admin/people/{worker_id}?saved=1", status_code=303)


@router.post("/{worker_id}/link", response_class=HTMLResponse)
async def new_link(request: Request, worker_id: RowId, admin: Worker = Depends(current_admin)):
    """A new one-time link: the invitation again (not activated yet) or a password reset."""
    await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session, session.begin():
        worker = await owned(session, Worker, worker_id, admin.organisation_id)
        if worker.state == "deactivated":
            raise HTTPException(409, "réactivez d'abord cette personne")
        purpose = "invite" if worker.state == "invited" else "reset"
        token = await issue(session, worker, purpose, admin.id)
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id,
               action="worker.invitation_renewed" if purpose == "invite" else "worker.password_reset_link",
               target_type="worker", target_id=worker.id)
    return admin_page(request, "admin/people_link.html", admin, person=worker, purpose=purpose,
                      link=invitation_url(rt.settings.public_url, token))


@router.get("/{worker_id}/deactivate", response_class=HTMLResponse)
async def confirm_deactivate(request: Request, worker_id: RowId, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        worker = await owned(session, Worker, worker_id, admin.organisation_id)
        open_count = (await session.execute(select(func.count()).where(
            Conversation.assignee_id == worker.id, Conversation.status == ASSIGNED))).scalar()
    return admin_page(request, "admin/people_deactivate.html", admin, person=worker, open_count=open_count)


@router.post("/{worker_id}/deactivate")
async def deactivate(request: Request, worker_id: RowId, admin: Worker = Depends(current_admin)):
    await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        worker = await owned(session, Worker, worker_id, admin.organisation_id)
        if worker.id == admin.id:
            raise HTTPException(400, "vous ne pouvez pas désactiver votre propre compte")
        conversation_ids = list((await session.execute(select(Conversation.id).where(
            Conversation.assignee_id == worker.id, Conversation.status == ASSIGNED))).scalars().all())
        keys = []
        for conversation_id in conversation_ids:
            thread = await load_thread(session, conversation_id)
            keys.append(f"{thread.address.channel}:{thread.address.external_id}")
    pending = Pending.empty()
    async with rt.locks.hold_many(keys):  # the people's locks, as for any transition
        async with rt.sessionmaker() as session, session.begin():
            worker = await owned(session, Worker, worker_id, admin.organisation_id)
            me = await session.get(Worker, admin.id)
            worker.is_active = False
            worker.is_online = False
            worker.deactivated_at = utcnow()
            requeued = 0
            for conversation_id in conversation_ids:
                thread = await load_thread(session, conversation_id)
                if thread.conversation.status == ASSIGNED and thread.conversation.assignee_id == worker.id:
                    await transitions.return_to_queue(session, thread, me, pending)
                    requeued += 1
            await revoke_all(session, worker.id)
            ended = await end_worker_sessions(session, worker.id)
            record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="worker.deactivated",
                   target_type="worker", target_id=worker.id,
                   details={"conversations_requeued": requeued, "sessions_ended": ended})
    await rt.after_commit(pending)
    return RedirectResponse(f"/admin/people/{worker_id}?deactivated=1", status_code=303)


@router.post("/{worker_id}/reactivate")
async def reactivate(request: Request, worker_id: RowId, admin: Worker = Depends(current_admin)):
    await read_form(request)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        worker = await owned(session, Worker, worker_id, admin.organisation_id)
        if worker.state != "deactivated":
            raise HTTPException(409, "cette personne n'est pas désactivée")
        worker.deactivated_at = None
        worker.is_active = bool(worker.password_hash)  # never activated: back to « invitation envoyée »
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="worker.reactivated",
               target_type="worker", target_id=worker.id)
    return RedirectResponse(f"/admin/people/{worker_id}", status_code=303)
