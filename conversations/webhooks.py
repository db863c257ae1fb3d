"""HTTP entry points of the channels: Telegram and WhatsApp webhooks, the web chat's API.

Each route authenticates, parses into InboundMessage (bots/), then calls receive(). A 200 means
the update is stored. Bad input gets a clear 4xx and changes nothing; bodies are never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from sqlalchemy import select

from bots.base import BadPayload, Unauthorized, load_json
from bots.webchat import label_of as webchat_label_of, shown_row as webchat_shown_row
from conversations.confirmations import record_statuses
from conversations.models import INBOUND, OUTBOUND, Address, Contact, Message
from conversations.receive import receive
from conversations.webchat_identity import cookie_header, identity_of, new_identity, require_identity
from words.catalogue import language_of, negotiate

log = logging.getLogger(__name__)
router = APIRouter()

async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request's body, capped while it streamed in (kernel/bodycap.py: 413 past the path's
    cap, Settings.*_body_max_bytes, before anything here — the WhatsApp signature check included —
    sees a byte of it). `limit`: a second check for a caller that wants less than its path's cap."""
    body = await request.body()
    if limit is not None and len(body) > limit:
        raise HTTPException(413, "body too large")
    return body


def channel_or_404(request: Request, name: str):
    channel = request.app.state.rt.channels.get(name)
    if channel is None:
        raise HTTPException(404, f"the {name} channel is not configured")
    return channel


@router.post("/bots/telegram/webhook")
async def telegram_webhook(request: Request):
    rt = request.app.state.rt
    channel = channel_or_404(request, "telegram")
    try:
        channel.verify(request.headers)
    except Unauthorized as error:
        raise HTTPException(error.status_code, "unauthorized webhook") from None
    body = await read_body(request)
    try:
        messages = channel.parse(body)
    except BadPayload as error:
        log.info("telegram update refused: %s", error)
        raise HTTPException(400, f"bad update: {error}") from None
    if not messages:
        log.info("telegram update skipped (unsupported type)")
    reply: dict = {"ok": True}
    for inbound in messages:
        received = await receive(rt, inbound)
        if inbound.callback_id:  # stop the button's spinner, in the webhook's own response
            reply = channel.callback_answer_reply(inbound.callback_id, stale=received.stale, locale=inbound.locale)
            # then the question shows the tap ("✔️ label") and loses its keyboard (after the answer)
            rt.spawn(channel.settle_press(inbound.callback_id, accepted=not received.stale))
    return reply


@router.get("/bots/whatsapp/webhook")
async def whatsapp_handshake(request: Request):
    channel = channel_or_404(request, "whatsapp")
    try:
        return PlainTextResponse(channel.verify_handshake(request.query_params))
    except Unauthorized:
        raise HTTPException(403, "verification refused") from None


@router.post("/bots/whatsapp/webhook")
async def whatsapp_webhook(request: Request):
    rt = request.app.state.rt
    channel = channel_or_404(request, "whatsapp")
    body = await read_body(request)
    try:
        channel.verify_signature(body, request.headers.get("x-hub-signature-256"))
    except Unauthorized:
        raise HTTPException(401, "invalid signature") from None
    try:
        messages, statuses = channel.parse(body)
    except BadPayload as error:
        log.info("whatsapp payload refused: %s", error)
        raise HTTPException(400, f"bad payload: {error}") from None
    for inbound in messages:
        await receive(rt, inbound)
    await record_statuses(rt, statuses)  # one transaction (a row in doubt confirmed: conversations/confirmations.py)
    return {"ok": True}


# Web chat ------------------------------------------------------------------------------------
# The person is known by the identity cookie only (conversations/webchat_identity.py): never by a
# value in the body or the query string.
@router.post("/chat/api/identity")
async def webchat_identity(request: Request):
    """The page's first call: keeps a valid identity, issues one otherwise. An old page's uid
    ({"legacy_uid": ...}) is exchanged once for a cookie, so its conversation continues."""
    channel_or_404(request, "webchat")
    body = await read_body(request, 1024)
    legacy = None
    if body.strip():
        try:
            data = load_json(body)  # 1 kB holds 1,000 levels of nesting: a RecursionError in json.loads
        except BadPayload:
            return JSONResponse({"ok": False, "error": "body is not valid JSON"}, status_code=400)
        legacy = data.get("legacy_uid") if isinstance(data, dict) else None
    current = await identity_of(request)
    if current is not None and legacy is None:
        return {"ok": True, "issued": False}
    # A valid identity is kept when an old uid cannot be claimed.
    token, _, claimed = await new_identity(request, legacy if legacy is None or isinstance(legacy, str) else "",
                                           fresh_if_refused=current is None)
    answer = {"ok": True, "issued": token is not None}
    if legacy is not None:
        answer["legacy"] = "claimed" if claimed else "refused"
    if token is None:
        return answer
    response = JSONResponse(answer)
    response.headers.append("set-cookie", cookie_header(request.app.state.settings, token))
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/chat/api/messages")
async def webchat_message(request: Request):
    rt = request.app.state.rt
    channel = channel_or_404(request, "webchat")
    external_id = await require_identity(request)
    body = await read_body(request)
    try:
        inbound = channel.parse(load_json(body), external_id)
    except BadPayload as error:
        return JSONResponse({"ok": False, "error": str(error)}, status_code=400)
    if inbound.locale is None:  # the page did not say: the browser's languages propose one
        inbound = dataclasses.replace(inbound, locale=negotiate(request.headers.get("accept-language")))
    await rt.limiter.hit("webchat_message", inbound.user_id)
    received = await receive(rt, inbound)
    return {"ok": True, "duplicate": received.duplicate}


@router.get("/chat/api/history")
async def webchat_history(request: Request):
    rt = request.app.state.rt
    uid = await require_identity(request)
    async with rt.sessionmaker() as session:
        address = (await session.execute(select(Address).where(
            Address.channel == "webchat", Address.external_id == uid))).scalar()
        if address is None:
            return {"messages": []}
        locale = language_of((await session.execute(select(Contact.locale).where(
            Contact.id == address.contact_id))).scalar())
        rows = (await session.execute(
            select(Message).where(Message.contact_id == address.contact_id).order_by(Message.id).limit(200)
        )).scalars().all()
    # bots.webchat says what the page renders (links, venue, locale, the worker who signed); a tap
    # is shown with its words: its label, else the title the last question's button had.
    shown, titles = [], {}
    for row in rows:
        payload = row.payload or {}
        if row.direction == INBOUND:
            kind = None if row.text else _inbound_kind(row)
            shown.append({"id": f"in-{row.id}", "from": "me", "kind": kind,
                          "text": row.text or ("" if kind else webchat_label_of(payload, titles)),
                          "label": payload.get("label"), "audio": payload.get("media_id")})
        elif row.direction == OUTBOUND and row.platform_message_id:
            shown.append(webchat_shown_row(row.platform_message_id, row.text, payload))
            if payload.get("choices"):
                titles = {value: title for value, title in payload["choices"]}
    return {"messages": shown, "locale": locale}


def _inbound_kind(row: Message) -> str | None:
    """What an inbound message without text was (the page words it in the person's language)."""
    payload = row.payload or {}
    if payload.get("location"):
        return "location"
    if payload.get("attachment"):
        return "voice" if payload["attachment"].get("kind") in ("voice", "audio") else "file"
    return None


@router.get("/chat/api/stream")
async def webchat_stream(request: Request):
    rt = request.app.state.rt
    uid = await require_identity(request)
    return StreamingResponse(sse_events(request, rt.notifier, [f"webchat:{uid}"], lambda p: ("message", p)),
                             media_type="text/event-stream", headers={"Cache-Control": "no-store"})


DRAINING_CHECK_SECONDS = 1.0  # an open stream notices the process is stopping within this


async def sse_events(request: Request, notifier, topics: list[str], shape, keepalive: float = 15.0):
    """Server-sent events for `topics`; `shape(payload) -> (event name, data)` or None to skip.
    Ends when the process starts draining (ops/shutdown.py): an open stream would otherwise hold
    the server's shutdown until it closed (uvicorn waits for responses in progress), and the page's
    EventSource reconnects by itself, to a process that is not stopping."""
    state = request.app.state
    loop = asyncio.get_running_loop()
    async with notifier.subscribe(*topics) as subscription:
        yield ": connected\n\n"
        quiet_until = loop.time() + keepalive
        while True:
            payload = await subscription.get(timeout=max(0.0, min(quiet_until - loop.time(), DRAINING_CHECK_SECONDS)))
            if getattr(state, "draining", False) or await request.is_disconnected():
                return
            if payload is None:
                if loop.time() >= quiet_until:
                    quiet_until = loop.time() + keepalive
                    yield ": keepalive\n\n"
                continue
            quiet_until = loop.time() + keepalive
            shaped = shape(payload)
            if shaped is None:
                continue
            event, data = shaped
            yield f"event: {event}\ndata: {json.dumps(data) if not isinstance(data, str) else data}\n\n"
            await asyncio.sleep(0)
