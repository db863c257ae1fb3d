"""The public end of a one-time link (/invite/<token>): the invited worker confirms their first
name, gives their e-mail if the admin left it out, chooses a password, and is logged in. A reset link
only asks for the new password. Expired, used or unknown links all get the same 404 page."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from admin.audit import record
from admin.forms import FormError, email, read_form, text
from admin.invitations import consume, find_valid
from handoff.auth import csrf_token, end_worker_sessions, hash_password_async
from kernel.database import utcnow
from handoff.models import Worker

log = logging.getLogger(__name__)
router = APIRouter()

MIN_PASSWORD = 10
MAX_PASSWORD = 200


def _page(request: Request, status: int = 200, **context) -> HTMLResponse:
    context.setdefault("csrf", csrf_token(request))
    response = request.app.state.templates.TemplateResponse(request, "admin/invite.html", context)
    response.status_code = status
    return response


def _gone(request: Request) -> HTMLResponse:
    return _page(request, 404, invitation=None, person=None, error=None, needs_email=False)


def _needs_email(worker: Worker) -> bool:
    from admin.people import has_pending_email

    return has_pending_email(worker)


@router.get("/invite/{token}", response_class=HTMLResponse)
async def invite_page(request: Request, token: str):
    async with request.app.state.rt.sessionmaker() as session:
        found = await find_valid(session, token)
    if found is None:
        return _gone(request)
    invitation, worker = found
    return _page(request, invitation=invitation, person=worker, error=None, needs_email=_needs_email(worker))


@router.post("/invite/{token}", response_class=HTMLResponse)
async def accept(request: Request, token: str):
    form = await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        found = await find_valid(session, token)
    if found is None:
        return _gone(request)
    invitation, worker = found
    needs_email = _needs_email(worker)
    try:
        first_name = (text(form, "first_name", "Prénom", max_length=80, required=True)
                      if invitation.purpose == "invite" else worker.first_name)
        address = email(form, required=True) if needs_email else worker.email
        password = form.get("password") or ""
        if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
            raise FormError(f"Mot de passe : {MIN_PASSWORD} caractères au moins.")
        if password != (form.get("password_again") or ""):
            raise FormError("Mot de passe : les deux saisies sont différentes.")
        if needs_email:
            async with rt.sessionmaker() as session:
                if (await session.execute(select(Worker.id).where(Worker.email == address))).first():
                    raise FormError("E-mail : une personne a déjà un compte avec cette adresse.")
    except FormError as error:
        return _page(request, 400, invitation=invitation, person=worker, error=str(error), needs_email=needs_email)
    password_hash = await hash_password_async(password)
    async with rt.sessionmaker() as session, session.begin():
        found = await find_valid(session, token, for_update=True)
        if found is None or not await consume(session, found[0]):
            return _gone(request)
        invitation, worker = found
        worker.first_name, worker.email, worker.password_hash = first_name, address, password_hash
        worker.is_active, worker.deactivated_at = True, None
        if invitation.purpose == "invite":
            worker.activated_at = utcnow()
        else:
            await end_worker_sessions(session, worker.id)
        worker.is_online, worker.last_seen_at = True, utcnow()
        record(session, organisation_id=worker.organisation_id, actor_id=worker.id,
               action="worker.activated" if invitation.purpose == "invite" else "worker.password_reset",
               target_type="worker", target_id=worker.id)
        worker_id = worker.id
    log.info("worker %s used a one-time link (%s)", worker_id, invitation.purpose)
    request.session.clear()
    request.session["worker_id"] = worker_id
    csrf_token(request)
    return RedirectResponse("/inbox", status_code=303)
