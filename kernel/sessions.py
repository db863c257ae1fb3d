"""Server-side sessions for workers: the cookie holds only a random id, the data lives in the database.

`request.session` stays the plain dict Starlette's SessionMiddleware gave (worker_id, csrf, ...).
The cookie carries a random token (256 bits); the table keeps only its SHA-256, so a copy of the
database opens no session. A session ends:
- when its dict is emptied (`request.session.clear()`: logout) — the row is deleted at once, so a
  cookie saved before logout opens nothing afterwards;
- after `session_idle_minutes` without a request, or `session_max_hours` after it started;
- when `end_worker_sessions` (handoff.auth) deletes every row of a worker (password change,
  deactivation by an admin).
The id changes whenever the session's worker changes (login) or `rotate(request)` is called: no
fixation. `last_seen_at` is written at most once a minute (no write per request); expired rows are
deleted lazily, at most every few minutes, when a new session starts.

Before login nothing is written to the database: an anonymous session (the login form's CSRF token,
an invitation page's) travels in a signed cookie of its own (`ANONYMOUS_COOKIE`, itsdangerous with
the secret key, at most `ANONYMOUS_MAX_BYTES`, valid `session_idle_minutes`), so that a flood of
GET /inbox/login adds no row. Signing in turns it into a database session with a new random id and
expires the anonymous cookie.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import datetime, timedelta

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import ForeignKey, Index, String, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection

from kernel.database import Base, JSONType, UTCDateTime, utcnow

log = logging.getLogger(__name__)

COOKIE = "allervers_session"
ANONYMOUS_COOKIE = "allervers_anonymous"
ANONYMOUS_MAX_BYTES = 1024
TOUCH_EVERY = timedelta(minutes=1)
PURGE_EVERY_SECONDS = 300.0
# Paths that never use a worker session: no lookup for them (static files, the web chat, webhooks).
SKIPPED_PREFIXES = ("/static/", "/chat", "/bots/", "/healthz")
_ROTATE = "_allervers_rotate"


class WorkerSession(Base):
    __tablename__ = "worker_sessions"
    __table_args__ = (Index("ix_worker_sessions_last_seen_at", "last_seen_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 (hex) of the cookie's token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Null only for rows written before anonymous sessions moved to a signed cookie.
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), nullable=True,
                                                  index=True)
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SessionData(dict):
    """The dict behind request.session (a dict subclass only to carry the rotation flag)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _plausible(token: str | None) -> bool:
    return bool(token) and 32 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum() \
        and token.isascii()


def rotate(request) -> None:
    """Give the current session a new id (and delete the old row) when the response starts."""
    session = request.scope.get("session")
    if isinstance(session, SessionData):
        setattr(session, _ROTATE, True)


def secure_cookies(settings) -> bool:
    """Secure cookies when the public URL is https, unless settings.secure_cookies says otherwise."""
    if settings.secure_cookies is not None:
        return bool(settings.secure_cookies)
    return settings.public_url.lower().startswith("https://")


def expired(settings, row: WorkerSession, now: datetime) -> bool:
    return (now - row.last_seen_at > timedelta(minutes=settings.session_idle_minutes)
            or now - row.created_at > timedelta(hours=settings.session_max_hours))


async def purge_expired_sessions(rt, now: datetime | None = None) -> int:
    now = now or utcnow()
    settings = rt.settings
    async with rt.sessionmaker() as session, session.begin():
        result = await session.execute(delete(WorkerSession).where(or_(
            WorkerSession.last_seen_at < now - timedelta(minutes=settings.session_idle_minutes),
            WorkerSession.created_at < now - timedelta(hours=settings.session_max_hours))))
    return result.rowcount or 0


async def session_row(rt, token: str) -> WorkerSession | None:
    """The stored session behind a cookie token (its hash), or None."""
    async with rt.sessionmaker() as session:
        return (await session.execute(select(WorkerSession).where(
            WorkerSession.token_hash == token_hash(token)))).scalar()


async def still_signed_in(rt, token: str | None, worker_id: int) -> bool:
    """Whether the session behind this cookie token still exists, is not expired and belongs to an
    active `worker_id` (an open live stream asks it again: logout, a password change elsewhere or a
    deactivation ends it)."""
    from handoff.models import Worker

    row = await session_row(rt, token) if _plausible(token) else None
    if row is None or row.worker_id != worker_id or expired(rt.settings, row, utcnow()):
        return False
    async with rt.sessionmaker() as session:
        return bool((await session.execute(select(Worker.is_active).where(Worker.id == worker_id))).scalar())


class ServerSessionMiddleware:
    """Pure ASGI: loads scope["session"] from the database, saves it when the response starts."""

    def __init__(self, app, settings) -> None:
        self.app = app
        self.settings = settings
        self._next_purge = 0.0
        self._anonymous = URLSafeTimedSerializer(settings.secret_key, salt="allervers-anonymous-session")

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(SKIPPED_PREFIXES):
            scope["session"] = {}
            await self.app(scope, receive, send)
            return
        rt = scope["app"].state.rt
        cookies = HTTPConnection(scope).cookies
        token = cookies.get(COOKIE)
        row = await self._load(rt, token) if _plausible(token) else None
        anonymous = None if row else self._load_anonymous(cookies.get(ANONYMOUS_COOKIE))
        initial = dict(row.data or {}) if row else dict(anonymous or {})
        scope["session"] = SessionData(initial)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                current = scope["session"]
                if current.get("worker_id") is None and (row is None or row.worker_id is None):
                    set_cookies = self._save_anonymous(current, initial, anonymous is not None, row is not None)
                    if row is not None:  # a row from before anonymous sessions left the database
                        async with rt.sessionmaker() as session, session.begin():
                            await session.execute(delete(WorkerSession).where(WorkerSession.id == row.id))
                        set_cookies.append(self._cookie(COOKIE, "", expire=True))
                else:
                    cookie = await self._save(rt, current, initial, row, token)
                    set_cookies = [cookie] if cookie is not None else []
                    if anonymous is not None:  # signed in: the anonymous session ends
                        set_cookies.append(self._cookie(ANONYMOUS_COOKIE, "", expire=True))
                if set_cookies:
                    headers = MutableHeaders(scope=message)
                    for cookie in set_cookies:
                        headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _load_anonymous(self, value: str | None) -> dict | None:
        if not value or len(value) > ANONYMOUS_MAX_BYTES * 2:
            return None
        try:
            data = self._anonymous.loads(value, max_age=self.settings.session_idle_minutes * 60)
        except (BadData, ValueError, UnicodeError):
            return None
        return data if isinstance(data, dict) and "worker_id" not in data else None

    def _save_anonymous(self, current: dict, initial: dict, had_cookie: bool, had_row: bool) -> list[str]:
        """The Set-Cookie values for a session without a worker: none when nothing changed."""
        if not current:
            return [self._cookie(ANONYMOUS_COOKIE, "", expire=True)] if had_cookie else []
        if current == initial and had_cookie and not had_row:
            return []
        value = self._anonymous.dumps(dict(current))
        if len(value) > ANONYMOUS_MAX_BYTES:  # only small values (tokens) belong before login
            log.warning("anonymous session too large to keep (%s bytes)", len(value))
            return [self._cookie(ANONYMOUS_COOKIE, "", expire=True)] if had_cookie else []
        return [self._cookie(ANONYMOUS_COOKIE, value, max_age=self.settings.session_idle_minutes * 60)]

    async def _load(self, rt, token: str) -> WorkerSession | None:
        row = await session_row(rt, token)
        if row is None:
            return None
        if expired(self.settings, row, utcnow()):
            async with rt.sessionmaker() as session, session.begin():
                await session.execute(delete(WorkerSession).where(WorkerSession.id == row.id))
            return None
        return row

    async def _save(self, rt, data: SessionData, initial: dict, row: WorkerSession | None,
                    token: str | None) -> str | None:
        """Write what changed; return the Set-Cookie value to send, if any."""
        current = dict(data)
        rotating = getattr(data, _ROTATE, False) or current.get("worker_id") != initial.get("worker_id")
        now = utcnow()
        if not current:
            if row is not None:
                async with rt.sessionmaker() as session, session.begin():
                    await session.execute(delete(WorkerSession).where(WorkerSession.id == row.id))
            return self._cookie(COOKIE, "", expire=True) if token else None
        if row is None or rotating:
            new_token = secrets.token_urlsafe(32)
            async with rt.sessionmaker() as session, session.begin():
                if row is not None:
                    await session.execute(delete(WorkerSession).where(WorkerSession.id == row.id))
                session.add(WorkerSession(token_hash=token_hash(new_token), worker_id=current.get("worker_id"),
                                          data=current, created_at=now, last_seen_at=now))
            await self._maybe_purge(rt)
            return self._cookie(COOKIE, new_token)
        values: dict = {}
        if current != initial:
            values.update(data=current, worker_id=current.get("worker_id"))
        if values or now - row.last_seen_at >= TOUCH_EVERY:
            values["last_seen_at"] = now
            # A row deleted meanwhile (logout elsewhere, password change) stays deleted: no upsert.
            async with rt.sessionmaker() as session, session.begin():
                await session.execute(update(WorkerSession).where(WorkerSession.id == row.id).values(**values))
        return None

    async def _maybe_purge(self, rt) -> None:
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_EVERY_SECONDS
        try:
            purged = await purge_expired_sessions(rt)
        except Exception:  # never fail a login because of housekeeping
            log.exception("purging expired sessions failed")
            return
        if purged:
            log.info("expired worker sessions purged: %s", purged)

    def _cookie(self, name: str, value: str, expire: bool = False, max_age: int | None = None) -> str:
        max_age = 0 if expire else int(max_age if max_age is not None else self.settings.session_max_hours * 3600)
        parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
        if secure_cookies(self.settings):
            parts.append("Secure")
        return "; ".join(parts)


__all__ = ["WorkerSession", "ServerSessionMiddleware", "rotate", "secure_cookies", "token_hash",
           "purge_expired_sessions", "COOKIE", "ANONYMOUS_COOKIE"]
