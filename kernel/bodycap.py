"""Request bodies capped while they stream in, on every route (a pure ASGI middleware).

A declared Content-Length over the path's cap is refused at once (413, the app is not called);
a body without one (chunked) is counted as its chunks arrive and refused as soon as the count
passes the cap: `receive()` raises BodyTooLarge, which the app's handler (or this middleware, if it
escapes) turns into a 413 with a plain reason. Nothing is buffered here, so a route reading its
body (`request.body()`, the WhatsApp signature check, python-multipart's spooling of an upload)
never holds more than its cap.

Starlette's RequestBodyLimitMiddleware does the counting too, but with one cap for the whole app
(or per route, fixed at import time), answers only once the app reads, and in English: the caps
here come from Settings (voice uploads follow max_media_bytes) and the refusal speaks to the
person (JSON for the web chat API, French text elsewhere).
"""

from __future__ import annotations

import re
from typing import Callable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KIB = 1024
MULTIPART_OVERHEAD = 64 * KIB  # form fields, boundaries and headers around an uploaded file
VOICE_UPLOAD = re.compile(r"^(/chat/api/voice|/inbox/conversations/[^/]+/voice)$")


class BodyTooLarge(HTTPException):
    """Raised by the capped `receive()`: a 413 (FastAPI re-raises HTTPExceptions untouched)."""

    def __init__(self, path: str, limit: int):
        super().__init__(413, "request body too large")
        self.path, self.limit = path, limit


def caps_from(settings) -> Callable[[str], int]:
    """path -> cap in bytes, from Settings (overrides: body_max_bytes_by_path, longest prefix wins)."""
    upload = settings.max_media_bytes + MULTIPART_OVERHEAD
    fixed = {"/bots/telegram/webhook": settings.telegram_body_max_bytes,
             "/bots/whatsapp/webhook": settings.whatsapp_body_max_bytes,
             "/chat/api/messages": settings.webchat_body_max_bytes,
             "/admin/directory/import": settings.directory_import_max_bytes,
             "/inbox/push/subscribe": 4 * KIB, "/inbox/push/unsubscribe": 4 * KIB}
    overrides = sorted(settings.body_max_bytes_by_path.items(), key=lambda item: -len(item[0]))

    def cap(path: str) -> int:
        for prefix, limit in overrides:
            if path.startswith(prefix):
                return limit
        if path in fixed:
            return fixed[path]
        if VOICE_UPLOAD.match(path):
            return upload
        return settings.body_max_bytes

    return cap


def refusal(settings, path: str, limit: int) -> Response:
    """The 413 a person (or a platform) reads."""
    if VOICE_UPLOAD.match(path):
        from handoff.media_routes import refusal_text

        text = "⚠️ " + refusal_text(settings, "too_large")
    else:
        text = f"Requête trop volumineuse : {_size(limit)} au plus."
    if path.startswith("/chat/api/"):
        return JSONResponse({"ok": False, "error": text}, status_code=413)
    if path.startswith("/inbox/"):
        return JSONResponse({"detail": text}, status_code=413)
    return PlainTextResponse(text, status_code=413, headers={"Connection": "close"})


def _size(limit: int) -> str:
    return f"{limit // (1024 * KIB)} Mo" if limit >= 1024 * KIB else f"{max(1, limit // KIB)} Ko"


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyCap:
    """ASGI middleware: `cap(path)` bytes at most per request body; `refuse(path, limit)` answers."""

    def __init__(self, app: ASGIApp, cap: Callable[[str], int], refuse: Callable[[str, int], Response]):
        self.app, self.cap, self.refuse = app, cap, refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit = self.cap(path)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            return await self.refuse(path, limit)(scope, receive, send)
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            if received > limit:
                raise BodyTooLarge(path, limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(path, limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self.refuse(path, limit)(scope, receive, send)
