"""Web chat media: the person's record button uploads a voice note; the page plays the files of
its own conversation (keyed by the person's uid: never another person's file)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import select

from allervers.fields import RowId
from bots.base import Attachment, InboundMessage
from conversations.media import attach, check_audio, contact_of_media, servable
from conversations.models import Address
from conversations.receive import receive
from conversations.webhooks import channel_or_404
from handoff.media_routes import refusal_text

log = logging.getLogger(__name__)
router = APIRouter(prefix="/chat/api")


def _valid(name: str, value: str | None) -> str:
    if not isinstance(value, str) or not 8 <= len(value) <= 64 or not value.replace("-", "").isalnum():
        raise HTTPException(400, f"missing or invalid {name}")
    return value


@router.post("/voice")
async def webchat_voice(request: Request, audio: UploadFile = File(...), uid: str = Form(...),
                        client_id: str = Form(...)):
    rt = request.app.state.rt
    settings = rt.settings
    channel_or_404(request, "webchat")
    uid, client_id = _valid("uid", uid), _valid("client_id", client_id)
    declared = request.headers.get("content-length")
    too_large = {"ok": False, "error": "⚠️ " + refusal_text(settings, "too_large")}
    if declared and declared.isdigit() and int(declared) > settings.max_media_bytes + 64 * 1024:
        return JSONResponse(too_large, status_code=413)
    data = await audio.read(settings.max_media_bytes + 1)
    if not data:
        return JSONResponse({"ok": False, "error": "⚠️ L'enregistrement est vide. Réessayez."}, status_code=400)
    data, content_type, duration, refusal = check_audio(settings, data, audio.content_type or "audio/webm", "voice")
    if refusal:
        return JSONResponse({"ok": False, "error": "⚠️ " + refusal_text(settings, refusal)
                             + " Vous pouvez aussi écrire votre message."}, status_code=413)
    inbound = InboundMessage(channel="webchat", user_id=uid, external_id=f"{uid}:{client_id}",
                             attachment=Attachment(kind="voice", content_type=content_type, size=len(data),
                                                   duration_seconds=round(duration) if duration else None))
    received = await receive(rt, inbound)
    media_id = None
    if not received.duplicate and received.message_id is not None:
        media_id = await attach(rt, received.message_id, data, content_type, duration)
    return {"ok": True, "duplicate": received.duplicate, "media_id": media_id}


@router.get("/media/{media_id}")
async def webchat_media(request: Request, media_id: RowId, uid: str | None = None):
    rt = request.app.state.rt
    uid = _valid("uid", uid)
    async with rt.sessionmaker() as session:
        contact_id = (await session.execute(select(Address.contact_id).where(
            Address.channel == "webchat", Address.external_id == uid))).scalar()
        found = await contact_of_media(session, media_id)
    # Same answer for "no such file" and "someone else's file": nothing to learn by guessing ids.
    if contact_id is None or found is None or found[0].contact_id != contact_id:
        raise HTTPException(404, "no such file")
    path = servable(rt.settings, found[0])
    if path is None:
        raise HTTPException(404, "no such file")
    return FileResponse(path, media_type=found[0].content_type,
                        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})
