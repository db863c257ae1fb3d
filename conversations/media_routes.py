"""Web chat media: the person's record button uploads a voice note; the page plays the files of
its own conversation (keyed by the person's identity cookie: never another person's file)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.datastructures import UploadFile

from kernel.fields import RowId
from bots.base import Attachment, InboundMessage
from bots.webchat import valid_client_id
from conversations.media import attach, contact_of_media
from storage.media import serve_media
from conversations.models import Address, Contact
from conversations.receive import receive
from conversations.webchat_identity import require_identity
from conversations.webhooks import channel_or_404
from handoff.media_routes import REFUSAL_STATUS
from words.catalogue import language_of, negotiate, room

log = logging.getLogger(__name__)
WORDS = room(__file__)  # conversations/words/<language>.yaml
router = APIRouter(prefix="/chat/api")


async def _refusal(request: Request, uid: str, reason: str) -> str:
    """Why a voice note is refused, in the person's language (their contact's, else the browser's)."""
    rt, settings = request.app.state.rt, request.app.state.rt.settings
    async with rt.sessionmaker() as session:
        locale = (await session.execute(select(Contact.locale).join(Address, Address.contact_id == Contact.id).where(
            Address.channel == "webchat", Address.external_id == uid))).scalar()
    locale = language_of(locale or negotiate(request.headers.get("accept-language")))
    return WORDS.text(f"media.voice.{reason}", locale, megabytes=max(1, settings.max_media_bytes // (1024 * 1024)),
                      minutes=max(1, settings.max_media_seconds // 60))


@router.post("/voice")
async def webchat_voice(request: Request, uid: str = Depends(require_identity)):
    """The record button's upload (multipart: `audio`, `client_id`). The identity (a cookie) and
    the upload limit are checked before the form is read: without an identity, or over the limit,
    nothing of the body is parsed or spooled (the form is read here, not by FastAPI, which would
    read it before any dependency)."""
    rt = request.app.state.rt
    settings = rt.settings
    channel_or_404(request, "webchat")
    await rt.limiter.hit("upload", uid)
    # The body was capped while it streamed in (kernel/bodycap.py): the file spooled is at most
    # max_media_bytes + the form's overhead.
    async with request.form(max_files=1, max_fields=8) as form:
        audio, client_id = form.get("audio"), form.get("client_id")
        if not isinstance(client_id, str) or not valid_client_id(client_id):
            raise HTTPException(400, "missing or invalid client_id")
        if not isinstance(audio, UploadFile):
            raise HTTPException(400, "missing audio file")
        data = await audio.read(settings.max_media_bytes + 1)
        declared_type = audio.content_type
    if not data:
        return JSONResponse({"ok": False, "error": await _refusal(request, uid, "empty")}, status_code=400)
    data, content_type, duration, refusal = await rt.audio.check(data, declared_type or "audio/webm", "voice",
                                                                 strict=True)
    if refusal:
        log.info("web chat voice note refused: %s", refusal)
        return JSONResponse({"ok": False, "error": await _refusal(request, uid, refusal)},
                            status_code=REFUSAL_STATUS[refusal])
    inbound = InboundMessage(channel="webchat", user_id=uid, external_id=f"{uid}:{client_id}",
                             attachment=Attachment(kind="voice", content_type=content_type, size=len(data),
                                                   duration_seconds=round(duration) if duration else None))
    received = await receive(rt, inbound)
    media_id = None
    if not received.duplicate and received.message_id is not None:
        media_id = await attach(rt, received.message_id, data, content_type, duration)
    return {"ok": True, "duplicate": received.duplicate, "media_id": media_id}


@router.get("/media/{media_id}")
async def webchat_media(request: Request, media_id: RowId, uid: str = Depends(require_identity)):
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        contact_id = (await session.execute(select(Address.contact_id).where(
            Address.channel == "webchat", Address.external_id == uid))).scalar()
        found = await contact_of_media(session, media_id)
    # Same answer for "no such file" and "someone else's file": nothing to learn by guessing ids.
    if contact_id is None or found is None or found[0].contact_id != contact_id:
        raise HTTPException(404, "no such file")
    response = await serve_media(rt, found[0], request.headers.get("range"))  # streamed: the bucket stays private
    if response is None:
        raise HTTPException(404, "no such file")
    return response
