"""Inbox media: play a conversation's files, and answer with a voice note recorded in the browser.

Files are served only to workers of the contact's organisation (403 otherwise). A voice reply is
stored (Ogg/Opus when the browser recorded WebM/Opus), then queued like a text reply: signed with the
worker's first name, delivered by the outbox on the person's channel after commit.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile

from handoff.auth import check_csrf, current_worker
from kernel.database import utcnow
from kernel.fields import RowId
from conversations.media import contact_of_media, media_payload
from storage.media import serve_media
from conversations.models import Media
from handoff import transitions
from handoff.inbox import _open, act, conversation_for
from handoff.models import Worker

log = logging.getLogger(__name__)
router = APIRouter(prefix="/inbox")

VOICE_TEXT = "🎤 Message vocal"
REFUSED = {
    "too_large": "Message vocal trop lourd : {mb} Mo au plus.",
    "too_long": "Message vocal trop long : {minutes} au plus.",
    "too_fragmented": "Message vocal illisible : il est découpé en trop de morceaux. Réessayez d'enregistrer.",
    "unreadable": "Message vocal illisible : le fichier est abîmé ou d'un format inconnu. Réessayez d'enregistrer.",
    "empty": "L'enregistrement est vide. Réessayez.",
}
REFUSAL_STATUS = {"too_large": 413, "too_long": 413, "too_fragmented": 422, "unreadable": 400, "empty": 400}


def refusal_text(settings, reason: str) -> str:
    return REFUSED[reason].format(mb=max(1, settings.max_media_bytes // (1024 * 1024)),
                                  minutes=_minutes(settings.max_media_seconds))


def _minutes(seconds: int) -> str:
    minutes = max(1, seconds // 60)
    return f"{minutes} minute" + ("s" if minutes > 1 else "")


async def read_upload(request: Request, upload: UploadFile, limit: int) -> bytes:
    """The uploaded file's bytes, 413 beyond `limit`. The request body was capped while it streamed
    in (kernel/bodycap.py: limit + the form's overhead), so at most that much was spooled."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, refusal_text(request.app.state.rt.settings, "too_large"))
    if not data:
        raise HTTPException(400, refusal_text(request.app.state.rt.settings, "empty"))
    return data


@router.get("/media/{media_id}")
async def inbox_media(request: Request, media_id: RowId, worker: Worker = Depends(current_worker)):
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        found = await contact_of_media(session, media_id)
    if found is None:
        raise HTTPException(404, "no such file")
    media, contact = found
    if contact.organisation_id != worker.organisation_id:
        raise HTTPException(403, "this file belongs to another organisation")
    response = await serve_media(rt, media, request.headers.get("range"))  # streamed: the bucket stays private
    if response is None:
        raise HTTPException(404, "file no longer available")
    return response


@router.post("/conversations/{conversation_id}/voice")
async def voice_reply(request: Request, conversation_id: RowId, audio: UploadFile = File(...),
                      csrf_token_: str = Form(None, alias="csrf_token"), worker: Worker = Depends(current_worker)):
    rt = request.app.state.rt
    settings = rt.settings
    check_csrf(request, csrf_token_)
    await rt.limiter.hit("upload", f"worker:{worker.id}")
    conversation = await conversation_for(request, worker, conversation_id)
    data = await read_upload(request, audio, settings.max_media_bytes)
    data, content_type, duration, refusal = await rt.audio.check(data, audio.content_type or "audio/ogg", "voice",
                                                                 strict=True)
    if refusal:
        log.info("voice reply refused in conversation %s: %s", conversation_id, refusal)
        raise HTTPException(REFUSAL_STATUS[refusal], refusal_text(settings, refusal))
    path = await rt.media.put(conversation.contact_id, data, content_type)  # storage.media

    async def change(session, thread, me, pending):
        _open(thread)
        message = await transitions.reply(session, thread, me, VOICE_TEXT, pending, attachment_path=str(path))
        media = Media(message_id=message.id, contact_id=thread.contact.id, content_type=content_type, size=len(data),
                      duration_seconds=round(duration) if duration is not None else None, path=str(path),
                      created_at=utcnow())
        session.add(media)
        await session.flush()
        attachment = {"kind": "voice", "content_type": content_type, "media_id": media.id,
                      "duration_seconds": media.duration_seconds}
        message.payload = {**(message.payload or {}), "attachment": attachment, **media_payload(media)}

    try:
        response = await act(request, worker, conversation_id, csrf_token_, change)
    except BaseException:
        await rt.media.delete([path])  # nothing queued: no file left behind
        raise
    log.info("voice reply queued in conversation %s", conversation_id)
    return response
