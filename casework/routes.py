"""The inbox's casework routes (/inbox/casework/...): canned answers (search, propose), transfer to
another organisation, outside referral. Partials loaded by templates/casework/reply_tools.html and
actions.html when the worker opens them.

A worker acts on their organisation's conversations only: any other id answers 404 (the same as a
missing one). Every POST reads its form through admin.forms.read_form (CSRF first)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from admin.audit import record
from admin.forms import FormError, checkbox, read_form, text
from handoff.auth import csrf_token, current_worker
from kernel.fields import RowId
from casework import canned, referrals, transfers
from casework.models import ASKED, PROPOSED, CannedAnswer, Referral
from conversations.models import ASSIGNED, WAITING, Conversation
from conversations.store import Pending, load_thread
from handoff.models import Organisation, Worker

router = APIRouter(prefix="/inbox/casework")

MAX_TEXT = 4000
MAX_NOTE = 1000
MAX_QUERY = 100
URL = re.compile(r"^https?://[^\s<>\"']{3,490}$")


def _page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    context.setdefault("csrf", csrf_token(request))
    response = request.app.state.templates.TemplateResponse(request, name, context)
    response.status_code = status
    return response


async def _conversation(session, worker: Worker, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.organisation_id != worker.organisation_id:
        raise HTTPException(404, "conversation introuvable dans votre organisation")
    return conversation


def _query(q: str) -> str:
    return " ".join((q or "").replace("\x00", "").split())[:MAX_QUERY]


# Canned answers ----------------------------------------------------------------------------------
@router.get("/{conversation_id}/canned", response_class=HTMLResponse)
async def canned_search(request: Request, conversation_id: RowId, q: str = Query("", max_length=400),
                        worker: Worker = Depends(current_worker)):
    """The organisation's approved answers matching q, filled for this conversation."""
    async with request.app.state.rt.sessionmaker() as session:
        conversation = await _conversation(session, worker, conversation_id)
        rows = await canned.search(session, worker.organisation_id, _query(q))
    values = canned.values_for(conversation.summary, worker.first_name)
    items = []
    for row in rows:
        filled = canned.fill(row.text, values)
        items.append({"answer": row, "filled": filled, "missing": canned.missing(filled)})
    return _page(request, "casework/_canned_results.html", items=items, query=_query(q),
                 conversation_id=conversation_id)


@router.post("/canned", response_class=HTMLResponse)
async def canned_propose(request: Request, worker: Worker = Depends(current_worker)):
    """A worker proposes a canned answer: it waits, "proposed", for an admin to approve it."""
    form = await read_form(request)
    try:
        title = text(form, "title", "Titre", max_length=200, required=True)
        body = text(form, "text", "Texte", max_length=MAX_TEXT, required=True, multiline=True)
        source = text(form, "source_url", "Lien vers la source", max_length=500)
        if source and not URL.match(source):
            raise FormError("Lien vers la source : une adresse qui commence par https:// est attendue.")
    except FormError as error:
        return _page(request, "casework/_propose.html", status=400, error=str(error), done=False,
                     values={"title": form.get("title") or "", "text": form.get("text") or "",
                             "source_url": form.get("source_url") or ""})
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        row = CannedAnswer(organisation_id=worker.organisation_id, title=title, text=body, source_url=source,
                           status=PROPOSED, proposed_by_id=worker.id)
        session.add(row)
        await session.flush()
        record(session, organisation_id=worker.organisation_id, actor_id=worker.id, action="canned.proposed",
               target_type="canned_answer", target_id=row.id)
    return _page(request, "casework/_propose.html", status=201, error=None, done=True, values={})


# Transfer to another organisation -----------------------------------------------------------------
async def _transfer_context(session, worker: Worker, conversation: Conversation) -> dict:
    organisations = (await session.execute(select(Organisation).where(
        Organisation.id != worker.organisation_id).order_by(Organisation.name))).scalars().all()
    waiting = (conversation.flow_state or {}).get(transfers.STATE_KEY)
    target = None
    if isinstance(waiting, dict):
        referral = await session.get(Referral, waiting.get("referral_id") or 0)
        if referral is not None and referral.status == ASKED:
            target = await session.get(Organisation, referral.to_organisation_id) if referral.to_organisation_id else None
    open_ = conversation.status in (WAITING, ASSIGNED)
    return {"conversation": conversation, "organisations": organisations, "waiting_for": target, "open": open_}


@router.get("/{conversation_id}/transfer", response_class=HTMLResponse)
async def transfer_form(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    async with request.app.state.rt.sessionmaker() as session:
        conversation = await _conversation(session, worker, conversation_id)
        context = await _transfer_context(session, worker, conversation)
    return _page(request, "casework/_transfer.html", error=None, sent=False, **context)


async def _locked(request: Request, conversation_id: int, change):
    """Run `change(session, thread, me, pending)` under the person's lock, in one transaction,
    then deliver and notify (like the inbox's transitions)."""
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        thread = await load_thread(session, conversation_id)
        key = f"{thread.address.channel}:{thread.address.external_id}"
    pending = Pending.empty()
    async with rt.locks.hold(key):
        async with rt.sessionmaker() as session, session.begin():
            thread = await load_thread(session, conversation_id)
            result = await change(session, thread, pending)
    await rt.after_commit(pending)
    return result


@router.post("/{conversation_id}/transfer", response_class=HTMLResponse)
async def transfer_ask(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    """Ask the person whether their request may go to another organisation (buttons Oui / Non)."""
    form = await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        conversation = await _conversation(session, worker, conversation_id)
        context = await _transfer_context(session, worker, conversation)

    def refused(message: str, status: int = 400) -> HTMLResponse:
        return _page(request, "casework/_transfer.html", status=status, error=message, sent=False, **context)

    raw = (form.get("to_organisation") or "").strip()
    target = next((o for o in context["organisations"] if raw.isdigit() and o.id == int(raw)), None)
    if target is None:
        return refused("Choisissez une structure dans la liste.")
    try:
        note = text(form, "note", "Note pour l'autre structure", max_length=MAX_NOTE, multiline=True)
    except FormError as error:
        return refused(str(error))

    async def change(session, thread, pending):
        if thread.conversation.organisation_id != worker.organisation_id:
            raise HTTPException(404, "conversation introuvable dans votre organisation")
        if thread.conversation.status not in (WAITING, ASSIGNED):
            return "Prenez d'abord la conversation : la personne doit être en lien avec une personne de l'équipe."
        if isinstance((thread.conversation.flow_state or {}).get(transfers.STATE_KEY), dict):
            return "Une question de passage attend déjà la réponse de la personne."
        me = await session.get(Worker, worker.id)
        await transfers.ask(session, thread, me, target, note, pending)
        return None

    problem = await _locked(request, conversation_id, change)
    if problem:
        return refused(problem, 409)
    async with rt.sessionmaker() as session:
        conversation = await _conversation(session, worker, conversation_id)
        context = await _transfer_context(session, worker, conversation)
    return _page(request, "casework/_transfer.html", error=None, sent=True, **context)


# Outside referral ----------------------------------------------------------------------------------
@router.get("/{conversation_id}/referral", response_class=HTMLResponse)
async def referral_form(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    async with request.app.state.rt.sessionmaker() as session:
        conversation = await _conversation(session, worker, conversation_id)
    return _page(request, "casework/_referral.html", conversation=conversation, error=None,
                 summary=referrals.prefilled_summary(conversation))


@router.get("/{conversation_id}/partners", response_class=HTMLResponse)
async def partner_search(request: Request, conversation_id: RowId, q: str = Query("", max_length=400),
                         worker: Worker = Depends(current_worker)):
    async with request.app.state.rt.sessionmaker() as session:
        await _conversation(session, worker, conversation_id)
        organisation = await session.get(Organisation, worker.organisation_id)
        found = await referrals.search_partners(session, organisation, _query(q))
    return _page(request, "casework/_partners.html", partners=found, query=_query(q))


@router.post("/{conversation_id}/referral", response_class=HTMLResponse)
async def referral_record(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    """Record an outside referral (the person agreed to share the summary); the answer holds the
    text to copy and the e-mail link."""
    form = await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        conversation = await _conversation(session, worker, conversation_id)
        organisation = await session.get(Organisation, worker.organisation_id)

    def refused(message: str) -> HTMLResponse:
        return _page(request, "casework/_referral.html", status=400, conversation=conversation, error=message,
                     summary=form.get("summary") or "")

    method = form.get("method") or ""
    if method not in referrals.METHODS:
        return refused("Choisissez « Copier » ou « Envoyer par e-mail ».")
    if not checkbox(form, "agreed"):
        return refused("Cochez « La personne est d'accord » : rien n'est partagé sans son accord.")
    try:
        summary = text(form, "summary", "Résumé", max_length=MAX_TEXT, required=True, multiline=True)
    except FormError as error:
        return refused(str(error))
    chosen = (form.get("partner") or "").strip()[:600]
    structure_id, _, service_id = chosen.partition("::")
    async with rt.sessionmaker() as session, session.begin():
        conversation = await _conversation(session, worker, conversation_id)
        found = await referrals.partner(session, organisation, structure_id, service_id or None) if structure_id else None
        if found is None:
            return refused("Choisissez un partenaire dans l'annuaire.")
        structure, service = found
        pending = Pending.empty()
        me = await session.get(Worker, worker.id)
        await referrals.record_referral(session, conversation, me, structure, service, summary, method, pending)
    await rt.after_commit(pending)
    address = (service.courriel if service and service.courriel else None) or structure.courriel or ""
    subject = f"Orientation : une personne suivie par {organisation.name}"
    body = f"Bonjour,\n\n{summary}\n\n{worker.first_name}, {organisation.name}"
    return _page(request, "casework/_referral_done.html", status=201, partner=structure, service=service,
                 method=method, body=body, address=address,
                 mailto=referrals.mailto(address, subject, body))
