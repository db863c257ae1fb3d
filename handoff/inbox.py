"""The workers' inbox: login, conversation lists, a conversation page, replies and transitions, live updates.

Workers see only their organisation's conversations (403 otherwise). Every POST checks CSRF.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.background import BackgroundTask

from admin.audit import record as record_audit
from handoff.auth import (
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
from kernel.ratelimit import client_address
from kernel.sessions import COOKIE as SESSION_COOKIE, still_signed_in
from kernel.sessions import rotate as rotate_session
from kernel.database import utcnow
from kernel.fields import FormText, RowId
from conversations.models import ASSIGNED, CLOSED, INBOUND, WAITING, Address, Contact, Conversation
from conversations.store import Pending, Thread, load_thread
from conversations.webhooks import sse_events
from handoff import inbox_view, push, transitions
from handoff.inbox_view import Search
from handoff.models import Organisation, Worker

log = logging.getLogger(__name__)
router = APIRouter(prefix="/inbox")
router.include_router(push.router)  # /inbox/push/* (Web Push subscriptions)

MAX_REPLY = 4000
MAX_SEARCH = 80
STATIC = __import__("pathlib").Path(__file__).resolve().parent.parent / "static"


def templates(request: Request):
    return request.app.state.templates


def page(request: Request, name: str, **context) -> HTMLResponse:
    inbox_view.install_filters(templates(request).env)
    context.setdefault("csrf", csrf_token(request))
    context.setdefault("push_enabled", push.enabled(request.app.state.settings))
    return templates(request).TemplateResponse(request, name, context)


class TransferredAway(HTTPException):
    """A conversation this organisation handed to another one (the person agreed): a page saying so
    rather than a bare 403 (allervers/app.py renders inbox/moved.html)."""

    def __init__(self, conversation_id: int, organisation: str) -> None:
        super().__init__(403, "this conversation was transferred to another organisation")
        self.conversation_id, self.organisation = conversation_id, organisation


async def conversation_for(request: Request, worker: Worker, conversation_id: int) -> Thread:
    """The conversation if it belongs to the worker's organisation; 404 / 403 otherwise."""
    from casework.models import ACCEPTED, Referral

    async with request.app.state.rt.sessionmaker() as session:
        conversation = await session.get(Conversation, conversation_id)
        moved_to = None
        if conversation is not None and conversation.organisation_id != worker.organisation_id:
            moved_to = (await session.execute(
                select(Organisation.name).join(Referral, Referral.to_organisation_id == Organisation.id)
                .where(Referral.organisation_id == worker.organisation_id, Referral.conversation_id == conversation_id,
                       Referral.status == ACCEPTED).order_by(Referral.id.desc()).limit(1))).scalar()
    if conversation is None:
        raise HTTPException(404, "no such conversation")
    if conversation.organisation_id != worker.organisation_id:
        if moved_to is not None:
            raise TransferredAway(conversation_id, moved_to)
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
    # Rate limits (kernel/ratelimit.py; 429 with the wait): every attempt per address, failures
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
    # The open live streams of this worker ask their session again (in every process): this one's ends.
    response = RedirectResponse("/inbox/login", status_code=303)
    response.background = BackgroundTask(request.app.state.rt.notifier.publish, f"worker:{worker.id}",
                                         {"event": "signed_out"})
    return response


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
def read_search(q: str = "", channel: str = "", date: str = "", view: str = "all", page: int = 0) -> Search:
    """The search form's fields (a GET form), checked: 400 with the reason otherwise."""
    from datetime import date as Date

    if len(q) > MAX_SEARCH:
        raise HTTPException(400, f"a search holds at most {MAX_SEARCH} characters")
    if channel and channel not in inbox_view.CHANNELS:
        raise HTTPException(400, "unknown channel")
    if view not in inbox_view.VIEWS:
        raise HTTPException(400, "unknown list")
    if not 0 <= page <= 10_000:
        raise HTTPException(400, "page out of range")
    day = None
    if date:
        try:
            day = Date.fromisoformat(date)
        except ValueError:
            raise HTTPException(400, "a date is written YYYY-MM-DD") from None
        if not 2000 <= day.year <= 2100:
            raise HTTPException(400, "date out of range")
    from bots.base import clean_text

    return Search(q=clean_text(q).strip(), channel=channel, day=day, view=view, page=page)


def search_params(q: Annotated[str, Query(max_length=1000)] = "", channel: Annotated[str, Query(max_length=100)] = "",
                  date: Annotated[str, Query(max_length=100)] = "", view: Annotated[str, Query(max_length=100)] = "all",
                  page: Annotated[int, Query(ge=0, le=10_000)] = 0) -> Search:
    return read_search(q, channel, date, view, page)


def _card(row, workers: dict, topic_labels: dict) -> dict:
    topic = row.topic
    return {"conversation": row, "channel": row.channel, "locale": row.locale, "last_at": row.last_at,
            "assignee": workers.get(row.assignee_id), "topic": topic_labels.get(topic, topic) if topic else None,
            "first_name": row.prenom or row.first_name}


async def lists(request: Request, worker: Worker, search: Search | None = None) -> dict:
    search = search or Search()
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        rows_of_workers = (await session.execute(select(Worker.id, Worker.first_name, Worker.team_id).where(
            Worker.organisation_id == worker.organisation_id))).all()
        rows = [] if search.view == "closed" else await inbox_view.open_rows(session, worker.organisation_id, search)
        closed = []
        if search.view == "closed" or (search.view == "all" and search.active):
            closed = await inbox_view.closed_rows(session, worker.organisation_id, search)
    workers = {row.id: row.first_name for row in rows_of_workers}
    team_members = {row.id: row.team_id for row in rows_of_workers}
    topic_labels = inbox_view.choice_labels(rt.engine_for(worker.organisation_id)).get("topic", {})
    items = [_card(row, workers, topic_labels) for row in rows]
    result = {
        "waiting": [i for i in items if i["conversation"].status == WAITING],
        "mine": [i for i in items if i["conversation"].status == ASSIGNED and i["conversation"].assignee_id == worker.id],
        "others": [i for i in items if i["conversation"].status == ASSIGNED and i["conversation"].assignee_id != worker.id],
        "team": [],
        "closed": [_card(row, workers, topic_labels) for row in closed[:inbox_view.HISTORY_LIMIT]],
        "closed_more": len(closed) > inbox_view.HISTORY_LIMIT,
        "search": search,
        "channels": inbox_view.CHANNELS,
        "limit": inbox_view.LIST_LIMIT,
    }
    if worker.is_team_lead and worker.team_id:  # a team lead also sees their team's conversations together
        result["team"] = [i for i in result["others"] if i["conversation"].team_id == worker.team_id
                          or team_members.get(i["conversation"].assignee_id) == worker.team_id]
    return result


@router.get("", response_class=HTMLResponse)
async def inbox(request: Request, worker: Worker = Depends(current_worker), search: Search = Depends(search_params)):
    async with request.app.state.rt.sessionmaker() as session:
        organisation = await session.get(Organisation, worker.organisation_id)
    return page(request, "inbox/index.html", worker=worker, organisation=organisation,
                **await lists(request, worker, search))


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
async def lists_partial(request: Request, worker: Worker = Depends(current_worker),
                        search: Search = Depends(search_params)):
    return page(request, "inbox/_lists.html", worker=worker, **await lists(request, worker, search))


@router.get("/sw.js")
async def service_worker():
    """The service worker, served under /inbox/ so that its scope is the inbox (static/sw.js)."""
    return FileResponse(STATIC / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/inbox"})


@router.get("/stream")
async def stream(request: Request, conversation: RowId | None = None, worker: Worker = Depends(current_worker)):
    topics = [f"org:{worker.organisation_id}", f"worker:{worker.id}"]
    if conversation is not None:
        await conversation_for(request, worker, conversation)
        topics.append(f"conversation:{conversation}")

    def shape(payload: dict):
        topic, event = payload.get("topic", ""), payload.get("event", "update")
        if topic.startswith("conversation:"):
            return "timeline", str(payload.get("conversation"))
        # What rings (static/inbox.js): someone new waits, a message in a conversation of mine.
        if topic.startswith("org:") and event == "conversation_queued":
            return "notify", {"kind": "waiting", "conversation": payload.get("conversation")}
        if topic == f"worker:{worker.id}" and event == "signed_out":
            return "signed_out", "{}"
        if topic == f"worker:{worker.id}" and event == "message_received":
            return "notify", {"kind": "message", "conversation": payload.get("conversation")}
        return "lists", event

    events = sse_events(request, request.app.state.rt.notifier, topics, shape)
    events = while_signed_in(request.app.state.rt, request.cookies.get(SESSION_COOKIE), worker.id, events)
    return StreamingResponse(seen_while_streaming(request.app.state.rt, worker.id, events),
                             media_type="text/event-stream", headers={"Cache-Control": "no-store"})


SEEN_EVERY_SECONDS = 60.0
SESSION_CHECK_SECONDS = 15.0


async def while_signed_in(rt, token: str | None, worker_id: int, events, every: float = SESSION_CHECK_SECONDS):
    """The stream ends (with a `signed_out` event, which closes it in the page: sse-close) once its
    session is gone: at once after a logout (its `signed_out` notice), else checked on the keep-alives."""
    import time

    last = time.monotonic()
    async for chunk in events:
        notice = chunk.startswith("event: signed_out")
        if notice or time.monotonic() - last >= every:
            last = time.monotonic()
            if not await still_signed_in(rt, token, worker_id):
                yield "event: signed_out\ndata: {}\n\n"
                return
            if notice:
                continue  # another device of this worker signed out
        yield chunk


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
async def conversation_context(request: Request, worker: Worker, conversation: Conversation,
                               since: int | None = None) -> dict:
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        contact = await session.get(Contact, conversation.contact_id)
        address = await session.get(Address, conversation.address_id)
        assignee = await session.get(Worker, conversation.assignee_id) if conversation.assignee_id else None
        colleagues = (await session.execute(select(Worker).where(
            Worker.organisation_id == worker.organisation_id, Worker.is_active.is_(True), Worker.id != worker.id)
        )).scalars().all()
        timeline_page = await inbox_view.latest_page(session, conversation.id, since)
    window = None
    channel = rt.channels.get(address.channel)
    if hasattr(channel, "window_open"):
        window = channel.window_open(contact.last_inbound_at, utcnow())
    summary = conversation.summary or {}
    return {"worker": worker, "conversation": conversation, "contact": contact, "address": address,
            "assignee": assignee, "colleagues": colleagues, "items": timeline_page.items,
            "older_cursor": timeline_page.older_cursor, "since": timeline_page.since,
            "summary": summary, "window_open": window, "outcomes": OUTCOMES,
            "answer_rows": inbox_view.answer_rows(rt.engine_for(conversation.organisation_id), summary),
            "first_name": inbox_view.first_name_of(summary)}


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
async def conversation_page(request: Request, conversation_id: RowId, worker: Worker = Depends(current_worker)):
    conversation = await conversation_for(request, worker, conversation_id)
    async with request.app.state.rt.sessionmaker() as session, session.begin():  # who opened what, when
        record_audit(session, organisation_id=worker.organisation_id, actor_id=worker.id,
                     action="conversation.opened", target_type="conversation", target_id=conversation_id)
    return page(request, "inbox/conversation.html", **await conversation_context(request, worker, conversation))


@router.get("/conversations/{conversation_id}/timeline", response_class=HTMLResponse)
async def timeline_partial(request: Request, conversation_id: RowId, since: RowId | None = None,
                           worker: Worker = Depends(current_worker)):
    """The live region only (messages from `since` on, the status line): never the reply box nor the
    actions sheet, so what the worker types or chooses there survives every refresh."""
    conversation = await conversation_for(request, worker, conversation_id)
    return page(request, "inbox/_timeline.html", **await conversation_context(request, worker, conversation, since))


@router.get("/conversations/{conversation_id}/older", response_class=HTMLResponse)
async def older_partial(request: Request, conversation_id: RowId, before: RowId,
                        worker: Worker = Depends(current_worker)):
    """One page of older messages (« Messages plus anciens »), before message `before`."""
    conversation = await conversation_for(request, worker, conversation_id)
    async with request.app.state.rt.sessionmaker() as session:
        older = await inbox_view.older_page(session, conversation.id, before)
    return page(request, "inbox/_older.html", worker=worker, conversation=conversation, items=older.items,
                older_cursor=older.older_cursor)


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
