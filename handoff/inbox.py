"""The workers' inbox: login, conversation lists, a conversation page, replies and transitions, live updates.

Workers see only their organisation's conversations (403 otherwise). Every POST checks CSRF.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import func, select

from admin.audit import record as record_audit
from allervers.auth import (
    MAX_PASSWORD_LENGTH,
    HashingBusy,
    authenticate,
    check_csrf,
    csrf_token,
    current_worker,
    end_worker_sessions,
    hash_password_async,
    verify_password_async,
)
from allervers.ratelimit import client_address
from allervers.sessions import rotate as rotate_session
from allervers.database import utcnow
from allervers.fields import FormText, RowId
from conversations.models import ASSIGNED, CLOSED, INBOUND, WAITING, Address, Contact, Conversation, Event, Message
from conversations.store import Pending, Thread, load_thread
from conversations.webhooks import sse_events
from handoff import transitions
from handoff.models import Organisation, Worker

log = logging.getLogger(__name__)
router = APIRouter(prefix="/inbox")

MAX_REPLY = 4000
HIDDEN_EVENTS = {"message_received", "message_sent", "worker_replied", "flow_started", "flow_ended",
                 "action_requested"}


def templates(request: Request):
    return request.app.state.templates


def page(request: Request, name: str, **context) -> HTMLResponse:
    context.setdefault("csrf", csrf_token(request))
    return templates(request).TemplateResponse(request, name, context)


async def conversation_for(request: Request, worker: Worker, conversation_id: int) -> Thread:
    """The conversation if it belongs to the worker's organisation; 404 / 403 otherwise."""
    async with request.app.state.rt.sessionmaker() as session:
        conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise HTTPException(404, "no such conversation")
    if conversation.organisation_id != worker.organisation_id:
        raise HTTPException(403, "this conversation belongs to another organisation")
    return conversation


# Login ----------------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request):
    return page(request, "inbox/login.html", error=None)


@router.post("/login")
async def login(request: Request, email: Annotated[FormText, Form()], password: Annotated[FormText, Form()],
                csrf_token_: str = Form(None, alias="csrf_token")):
    check_csrf(request, csrf_token_)
    rt = request.app.state.rt
    # Rate limits (allervers/ratelimit.py; 429 with the wait): every attempt per address, failures
    # per account (checked before the password is hashed, counted after a failure).
    account = email.strip().lower()
    await rt.limiter.hit("login_address", client_address(request))
    await rt.limiter.check("login_account", account)
    try:
        worker = await authenticate(rt.sessionmaker, email, password)
    except HashingBusy:
        response = page(request, "inbox/login.html", error="Trop de connexions en cours. Réessayez dans un instant.")
        response.status_code = 503
        return response
    if worker is None:
        await rt.limiter.hit("login_account", account)
        log.info("inbox login refused")
        response = page(request, "inbox/login.html", error="E-mail ou mot de passe incorrect.")
        response.status_code = 401
        return response
    async with rt.sessionmaker() as session, session.begin():
        row = await session.get(Worker, worker.id)
        row.is_online = True
        row.last_seen_at = utcnow()
    # A new worker in the session: the session middleware gives it a new id (no fixation).
    request.session.clear()
    request.session["worker_id"] = worker.id
    csrf_token(request)
    return RedirectResponse("/inbox", status_code=303)


@router.post("/logout")
async def logout(request: Request, worker: Worker = Depends(current_worker), csrf_token_: str = Form(None, alias="csrf_token")):
    check_csrf(request, csrf_token_)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        row = await session.get(Worker, worker.id)
        row.is_online = False
    request.session.clear()  # the server-side session is deleted: a saved cookie opens nothing
    return RedirectResponse("/inbox/login", status_code=303)


@router.get("/password", response_class=HTMLResponse)
async def password_page(request: Request, worker: Worker = Depends(current_worker)):
    return page(request, "inbox/password.html", worker=worker, error=None, done=False)


@router.post("/password", response_class=HTMLResponse)
async def change_password(request: Request, worker: Worker = Depends(current_worker),
                          current: str = Form(""), new: str = Form(""), confirm: str = Form(""),
                          csrf_token_: str = Form(None, alias="csrf_token")):
    """Change one's own password; every other session of the worker ends (this one gets a new id)."""
    check_csrf(request, csrf_token_)
    rt = request.app.state.rt
    minimum = rt.settings.password_min_length

    def refused(error: str, status: int = 400) -> HTMLResponse:
        response = page(request, "inbox/password.html", worker=worker, error=error, done=False)
        response.status_code = status
        return response

    if len(new) < minimum:
        return refused(f"Le nouveau mot de passe doit compter au moins {minimum} caractères.")
    if len(new) > MAX_PASSWORD_LENGTH:
        return refused(f"Le nouveau mot de passe doit compter au plus {MAX_PASSWORD_LENGTH} caractères.")
    if new != confirm:
        return refused("Les deux saisies du nouveau mot de passe sont différentes.")
    if new == current:
        return refused("Le nouveau mot de passe doit être différent de l'actuel.")
    try:
        if not await verify_password_async(worker.password_hash, current):
            log.info("password change refused: wrong current password (worker %s)", worker.id)
            return refused("Le mot de passe actuel est incorrect.", 403)
        new_hash = await hash_password_async(new)
    except HashingBusy:
        return refused("Trop de demandes en cours. Réessayez dans un instant.", 503)
    async with rt.sessionmaker() as session, session.begin():
        row = await session.get(Worker, worker.id)
        row.password_hash = new_hash
        ended = await end_worker_sessions(session, worker.id)
    rotate_session(request)  # this one continues under a new id; its old cookie opens nothing
    request.session["csrf"] = secrets.token_urlsafe(32)
    log.info("password changed (worker %s): %s session(s) ended", worker.id, ended)
    return page(request, "inbox/password.html", worker=worker, error=None, done=True,
                csrf=request.session["csrf"])


@router.post("/presence")
async def presence(request: Request, worker: Worker = Depends(current_worker),
                   online: str = Form(...), csrf_token_: str = Form(None, alias="csrf_token")):
    check_csrf(request, csrf_token_)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        row = await session.get(Worker, worker.id)
        row.is_online = online == "1"
    return RedirectResponse("/inbox", status_code=303)


# Lists ----------------------------------------------------------------------------------------
async def lists(request: Request, worker: Worker) -> dict:
    async with request.app.state.rt.sessionmaker() as session:
        rows = (await session.execute(
            select(Conversation, Address.channel, func.max(Message.created_at))
            .join(Address, Address.id == Conversation.address_id)
            .join(Message, Message.conversation_id == Conversation.id, isouter=True)
            .where(Conversation.organisation_id == worker.organisation_id,
                   Conversation.status.in_((WAITING, ASSIGNED)))
            .group_by(Conversation.id, Address.channel)
            .order_by(Conversation.updated_at.desc())
        )).all()
        rows_of_workers = (await session.execute(select(Worker.id, Worker.first_name, Worker.team_id).where(
            Worker.organisation_id == worker.organisation_id))).all()
    workers = {row.id: row.first_name for row in rows_of_workers}
    team_members = {row.id: row.team_id for row in rows_of_workers}
    items = [{"conversation": c, "channel": channel, "last_at": last, "assignee": workers.get(c.assignee_id),
              "topic": (c.summary or {}).get("answers", {}).get("topic")} for c, channel, last in rows]
    result = {
        "waiting": [i for i in items if i["conversation"].status == WAITING],
        "mine": [i for i in items if i["conversation"].status == ASSIGNED and i["conversation"].assignee_id == worker.id],
        "others": [i for i in items if i["conversation"].status == ASSIGNED and i["conversation"].assignee_id != worker.id],
        "team": [],
    }
    if worker.is_team_lead and worker.team_id:  # a team lead also sees their team's conversations together
        result["team"] = [i for i in result["others"] if i["conversation"].team_id == worker.team_id
                          or team_members.get(i["conversation"].assignee_id) == worker.team_id]
    return result


@router.get("", response_class=HTMLResponse)
async def inbox(request: Request, worker: Worker = Depends(current_worker)):
    async with request.app.state.rt.sessionmaker() as session:
        organisation = await session.get(Organisation, worker.organisation_id)
    return page(request, "inbox/index.html", worker=worker, organisation=organisation, **await lists(request, worker))


@router.get("/waiting", response_class=HTMLResponse)
async def waiting_page(request: Request, worker: Worker = Depends(current_worker)):
    """Every waiting conversation of the organisation, the longest wait first, with its age and team."""
    from handoff.escalation import waiting

    now = utcnow()
    async with request.app.state.rt.sessionmaker() as session:
        items = await waiting(session, worker.organisation_id)
    return page(request, "inbox/waiting.html", worker=worker, now=now,
                items=[{"item": item, "minutes": item.minutes(now)} for item in items])


@router.get("/partials/lists", response_class=HTMLResponse)
async def lists_partial(request: Request, worker: Worker = Depends(current_worker)):
    return page(request, "inbox/_lists.html", worker=worker, **await lists(request, worker))


@router.get("/stream")
async def stream(request: Request, conversation: RowId | None = None, worker: Worker = Depends(current_worker)):
    topics = [f"org:{worker.organisation_id}", f"worker:{worker.id}"]
    if conversation is not None:
        await conversation_for(request, worker, conversation)
        topics.append(f"conversation:{conversation}")

    def shape(payload: dict):
        if payload.get("topic", "").startswith("conversation:"):
            return "timeline", str(payload.get("conversation"))
        return "lists", payload.get("event", "update")

    events = sse_events(request, request.app.state.rt.notifier, topics, shape)
    return StreamingResponse(seen_while_streaming(request.app.state.rt, worker.id, events),
                             media_type="text/event-stream", headers={"Cache-Control": "no-store"})


SEEN_EVERY_SECONDS = 60.0


async def seen_while_streaming(rt, worker_id: int, events, every: float = SEEN_EVERY_SECONDS):
    """While the inbox is open, the worker is seen (`last_seen_at`, what routing's presence reads):
    at most once a minute, on the stream's keep-alives."""
    import time

    from sqlalchemy import update

    last = None
    async for chunk in events:
        if last is None or time.monotonic() - last >= every:
            last = time.monotonic()
            try:
                async with rt.sessionmaker() as session, session.begin():
                    await session.execute(update(Worker).where(Worker.id == worker_id).values(last_seen_at=utcnow()))
            except Exception as error:  # noqa: BLE001
                log.warning("presence not recorded (%s)", type(error).__name__)
        yield chunk


# A conversation -------------------------------------------------------------------------------
async def timeline(request: Request, conversation: Conversation) -> list[dict]:
    async with request.app.state.rt.sessionmaker() as session:
        messages = (await session.execute(select(Message).where(Message.conversation_id == conversation.id)
                                          .order_by(Message.id))).scalars().all()
        events = (await session.execute(select(Event).where(Event.conversation_id == conversation.id)
                                        .order_by(Event.id))).scalars().all()
    items = [{"at": m.created_at, "kind": "message", "message": m} for m in messages]
    items += [{"at": e.created_at, "kind": "event", "event": e} for e in events if e.type not in HIDDEN_EVENTS]
    items.sort(key=lambda item: (item["at"] or datetime.min, 0 if item["kind"] == "message" else 1))
    return items


async def conversation_context(request: Request, worker: Worker, conversation: Conversation) -> dict:
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        contact = await session.get(Contact, conversation.contact_id)
        address = await session.get(Address, conversation.address_id)
        assignee = await session.get(Worker, conversation.assignee_id) if conversation.assignee_id else None
        colleagues = (await session.execute(select(Worker).where(
            Worker.organisation_id == worker.organisation_id, Worker.is_active.is_(True), Worker.id != worker.id)
        )).scalars().all()
    window = None
    channel = rt.channels.get(address.channel)
    if hasattr(channel, "window_open"):
        window = channel.window_open(contact.last_inbound_at, utcnow())
    return {"worker": worker, "conversation": conversation, "contact": contact, "address": address,
            "assignee": assignee, "colleagues": colleagues, "items": await timeline(request, conversation),
            "summary": conversation.summary or {}, "window_open": window}


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
async def conversation_page(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    conversation = await conversation_for(request, worker, conversation_id)
    async with request.app.state.rt.sessionmaker() as session, session.begin():  # who opened what, when
        record_audit(session, organisation_id=worker.organisation_id, actor_id=worker.id,
                     action="conversation.opened", target_type="conversation", target_id=conversation_id)
    return page(request, "inbox/conversation.html", **await conversation_context(request, worker, conversation))


@router.get("/conversations/{conversation_id}/timeline", response_class=HTMLResponse)
async def timeline_partial(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    conversation = await conversation_for(request, worker, conversation_id)
    return page(request, "inbox/_timeline.html", **await conversation_context(request, worker, conversation))


async def act(request: Request, worker: Worker, conversation_id: int, csrf: str | None, change) -> Response:
    """Run one transition on a conversation of the worker's organisation, then deliver and notify."""
    check_csrf(request, csrf)
    await conversation_for(request, worker, conversation_id)
    rt = request.app.state.rt
    pending = Pending.empty()
    async with rt.sessionmaker() as session:
        thread = await load_thread(session, conversation_id)
        key = f"{thread.address.channel}:{thread.address.external_id}"
    async with rt.locks.hold(key):
        async with rt.sessionmaker() as session, session.begin():
            thread = await load_thread(session, conversation_id)
            me = await session.get(Worker, worker.id)
            await change(session, thread, me, pending)
    await rt.after_commit(pending)
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Trigger": "refresh-timeline"})
    return RedirectResponse(f"/inbox/conversations/{conversation_id}", status_code=303)


def _open(thread: Thread) -> None:
    if thread.conversation.status == CLOSED:
        raise HTTPException(409, "this conversation is closed")


@router.post("/conversations/{conversation_id}/reply")
async def reply(request: Request, conversation_id: RowId, text: Annotated[FormText, Form()],
                csrf_token_: str = Form(None, alias="csrf_token"), worker: Worker = Depends(current_worker)):
    text = text.strip()
    if not text:
        raise HTTPException(400, "empty reply")
    if len(text) > MAX_REPLY:
        raise HTTPException(413, f"a reply holds at most {MAX_REPLY} characters")

    async def change(session, thread, me, pending):
        _open(thread)
        await transitions.reply(session, thread, me, text, pending)

    return await act(request, worker, conversation_id, csrf_token_, change)


@router.post("/conversations/{conversation_id}/take")
async def take(request: Request, conversation_id: RowId, csrf_token_: str = Form(None, alias="csrf_token"),
               worker: Worker = Depends(current_worker)):
    async def change(session, thread, me, pending):
        _open(thread)
        if thread.conversation.assignee_id != me.id:
            await transitions.assign(session, thread, me, me, pending)

    return await act(request, worker, conversation_id, csrf_token_, change)


@router.post("/conversations/{conversation_id}/transfer")
async def transfer(request: Request, conversation_id: RowId, to: Annotated[RowId, Form()],
                   csrf_token_: str = Form(None, alias="csrf_token"), worker: Worker = Depends(current_worker)):
    async def change(session, thread, me, pending):
        _open(thread)
        target = await session.get(Worker, to)
        if target is None or target.organisation_id != me.organisation_id or not target.is_active:
            raise HTTPException(400, "unknown colleague")
        await transitions.assign(session, thread, target, me, pending)

    return await act(request, worker, conversation_id, csrf_token_, change)


@router.post("/conversations/{conversation_id}/note")
async def note(request: Request, conversation_id: RowId, text: Annotated[FormText, Form()],
               csrf_token_: str = Form(None, alias="csrf_token"), worker: Worker = Depends(current_worker)):
    text = text.strip()
    if not text or len(text) > MAX_REPLY:
        raise HTTPException(400, "a note holds 1 to 4000 characters")

    async def change(session, thread, me, pending):
        await transitions.add_note(session, thread, me, text, pending)

    return await act(request, worker, conversation_id, csrf_token_, change)


OUTCOMES = {
    "answered": "Question répondue",
    "oriented": "Orientée vers une structure",
    "appointment": "Rendez-vous pris",
    "claim_started": "Demande d'aide commencée",
    "no_answer": "Sans réponse de la personne",
    "other": "Autre",
}


@router.post("/conversations/{conversation_id}/close")
async def close(request: Request, conversation_id: RowId, outcome: str = Form(...),
                detail: Annotated[FormText, Form()] = "",
                csrf_token_: str = Form(None, alias="csrf_token"), worker: Worker = Depends(current_worker)):
    if outcome not in OUTCOMES:
        raise HTTPException(400, "unknown outcome")
    label = OUTCOMES[outcome] + (f" — {detail.strip()[:150]}" if detail.strip() else "")

    async def change(session, thread, me, pending):
        _open(thread)
        await transitions.close(session, thread, me, label, pending)

    return await act(request, worker, conversation_id, csrf_token_, change)


@router.post("/conversations/{conversation_id}/return-to-bot")
async def return_to_bot(request: Request, conversation_id: RowId, csrf_token_: str = Form(None, alias="csrf_token"),
                        worker: Worker = Depends(current_worker)):
    rt = request.app.state.rt

    async def change(session, thread, me, pending):
        from conversations.receive import apply_turn

        _open(thread)
        await transitions.return_to_bot(session, thread, me, pending)
        context = await rt.flow_context(session, thread)
        engine = rt.engine_for(thread.conversation.organisation_id)  # the organisation's published flows
        turn = engine.start("menu", answers={"consent": thread.contact.consent},
                            locale=thread.contact.locale, context=context)
        await apply_turn(rt, session, thread, turn, pending)

    return await act(request, worker, conversation_id, csrf_token_, change)


__all__ = ["router", "OUTCOMES", "INBOUND"]
