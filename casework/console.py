"""The console's « Réponses types » room (/admin/canned): an organisation's canned answers, the
ones workers proposed first; an admin writes, edits, approves or archives them. Every change is
audited (admin/audit.py)."""

from __future__ import annotations

import re
from datetime import date

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from admin.access import admin_page, current_admin
from admin.audit import record
from admin.forms import FormError, owned, read_form, text
from kernel.database import utcnow
from kernel.fields import RowId
from casework import canned
from casework.models import APPROVED, ARCHIVED, PROPOSED, STATUSES, CannedAnswer
from casework.routes import MAX_TEXT, URL
from handoff.models import Worker

router = APIRouter(prefix="/canned")
STATUS_LABELS = {PROPOSED: "Proposée", APPROVED: "Approuvée", ARCHIVED: "Archivée"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _fields(form) -> dict:
    title = text(form, "title", "Titre", max_length=200, required=True)
    body = text(form, "text", "Texte", max_length=MAX_TEXT, required=True, multiline=True)
    source = text(form, "source_url", "Lien vers la source", max_length=500)
    if source and not URL.match(source):
        raise FormError("Lien vers la source : une adresse qui commence par https:// est attendue.")
    raw = (form.get("checked_on") or "").strip()
    checked = None
    if raw:
        try:
            checked = date.fromisoformat(raw) if _DATE.match(raw) else None
        except ValueError:
            checked = None
        if checked is None or not 2000 <= checked.year <= 2100:
            raise FormError("Vérifiée le : une date est attendue (jour, mois, année).")
    status = form.get("status") or PROPOSED
    if status not in STATUSES:
        raise FormError("État : proposée, approuvée ou archivée.")
    return {"title": title, "text": body, "source_url": source, "checked_on": checked, "status": status}


def _form_page(request: Request, admin: Worker, answer: CannedAnswer | None, values: dict, *, error=None,
               status: int = 200):
    response = admin_page(request, "casework/admin_canned_form.html", admin, answer=answer, values=values,
                          error=error, statuses=STATUS_LABELS, variables=canned.KNOWN,
                          unknown=[v for v in canned.missing(values.get("text") or "") if v not in canned.KNOWN])
    response.status_code = status
    return response


@router.get("", response_class=HTMLResponse)
async def canned_list(request: Request, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        rows = (await session.execute(select(CannedAnswer).where(
            CannedAnswer.organisation_id == admin.organisation_id).order_by(CannedAnswer.title))).scalars().all()
        names = dict((await session.execute(select(Worker.id, Worker.first_name).where(
            Worker.organisation_id == admin.organisation_id))).all())
    groups = [(status, STATUS_LABELS[status], [r for r in rows if r.status == status]) for status in STATUSES]
    return admin_page(request, "casework/admin_canned.html", admin, groups=groups, names=names)


@router.get("/new", response_class=HTMLResponse)
async def canned_new(request: Request, admin: Worker = Depends(current_admin)):
    return _form_page(request, admin, None, {"status": APPROVED, "checked_on": utcnow().date().isoformat()})


@router.post("", response_class=HTMLResponse)
async def canned_create(request: Request, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    try:
        fields = _fields(form)
    except FormError as error:
        return _form_page(request, admin, None, dict(form), error=str(error), status=400)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        row = CannedAnswer(organisation_id=admin.organisation_id, **fields)
        session.add(row)
        await session.flush()
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="canned.created",
               target_type="canned_answer", target_id=row.id, details={"status": row.status})
    return RedirectResponse(f"/admin/canned/{row.id}?saved=1", status_code=303)


@router.get("/{canned_id}", response_class=HTMLResponse)
async def canned_edit(request: Request, canned_id: RowId, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        row = await owned(session, CannedAnswer, canned_id, admin.organisation_id)
    values = {"title": row.title, "text": row.text, "source_url": row.source_url, "status": row.status,
              "checked_on": row.checked_on.isoformat() if row.checked_on else ""}
    return _form_page(request, admin, row, values)


@router.post("/{canned_id}", response_class=HTMLResponse)
async def canned_save(request: Request, canned_id: RowId, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    async with request.app.state.rt.sessionmaker() as session:
        row = await owned(session, CannedAnswer, canned_id, admin.organisation_id)
    try:
        fields = _fields(form)
    except FormError as error:
        return _form_page(request, admin, row, dict(form), error=str(error), status=400)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        row = await owned(session, CannedAnswer, canned_id, admin.organisation_id)
        changed = sorted(key for key, value in fields.items() if getattr(row, key) != value)
        previous = row.status
        for key, value in fields.items():
            setattr(row, key, value)
        if changed:
            row.updated_at = utcnow()
            action = {APPROVED: "canned.approved", ARCHIVED: "canned.archived"}.get(row.status, "canned.updated") \
                if row.status != previous else "canned.updated"
            record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action=action,
                   target_type="canned_answer", target_id=row.id, details={"fields": changed})
    return RedirectResponse(f"/admin/canned/{canned_id}?saved=1", status_code=303)


@router.post("/{canned_id}/status")
async def canned_status(request: Request, canned_id: RowId, admin: Worker = Depends(current_admin)):
    """One tap: approve, archive (or propose again) without touching the text."""
    form = await read_form(request)
    status = form.get("status") or ""
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        row = await owned(session, CannedAnswer, canned_id, admin.organisation_id)  # another's: 404 first
        if status not in STATUSES:
            raise HTTPException(400, "état inconnu : proposée, approuvée ou archivée")
        if row.status != status:
            row.status = status
            row.updated_at = utcnow()
            record(session, organisation_id=admin.organisation_id, actor_id=admin.id,
                   action={APPROVED: "canned.approved", ARCHIVED: "canned.archived"}.get(status, "canned.proposed"),
                   target_type="canned_answer", target_id=row.id)
    return RedirectResponse("/admin/canned?saved=1", status_code=303)
