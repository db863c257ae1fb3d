"""Who is on the web chat: an identity issued by the server, never chosen by the browser.

The browser holds a random token (256 bits, `secrets.token_urlsafe`) in an HttpOnly, SameSite=Strict
cookie limited to /chat; it never travels in a query string or a body. The table keeps only the
token's SHA-256 and maps it to the person's `external_id` (Address.external_id, the key of their
contact): a separate random value (128 bits) for new visitors, so that the external id — stored in
messages, topics and lock keys — is no credential. A visitor of the previous version (a uid the
page kept in localStorage) exchanges that uid once for a token mapped to it: the uid must be the
external id of an existing web chat address, and the unique external_id column records the claim,
so a second exchange of the same uid is refused.

Identities nobody wrote with (no address) are deleted after a day, and those of people deleted by
erasure or the retention purge with them (lazily, at most hourly, when an identity is issued).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import datetime, timedelta

from fastapi import HTTPException, Request
from sqlalchemy import Boolean, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from kernel.database import Base, UTCDateTime, utcnow
from kernel.ratelimit import client_address
from kernel.sessions import secure_cookies
from conversations.models import Address

log = logging.getLogger(__name__)

COOKIE = "allervers_chat"
COOKIE_PATH = "/chat"
UNUSED_LIFETIME = timedelta(days=1)
PURGE_EVERY_SECONDS = 3600.0
MAX_COOKIE_DAYS = 400  # browsers cap cookie lifetimes at 400 days
_next_purge = 0.0


class WebchatIdentity(Base):
    __tablename__ = "webchat_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 (hex) of the cookie
    external_id: Mapped[str] = mapped_column(String(64), unique=True)  # Address.external_id
    legacy: Mapped[bool] = mapped_column(Boolean, default=False)  # a uid of the old page, claimed once
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _plausible(token: str | None) -> bool:
    return bool(token) and token.isascii() and 32 <= len(token) <= 64 \
        and token.replace("-", "").replace("_", "").isalnum()


async def identity_of(request: Request) -> str | None:
    """The external id of the identity in the request's cookie, or None (absent, unknown)."""
    token = request.cookies.get(COOKIE)
    if not _plausible(token):
        return None
    async with request.app.state.rt.sessionmaker() as session:
        return (await session.execute(select(WebchatIdentity.external_id).where(
            WebchatIdentity.token_hash == _hash(token)))).scalar()


async def require_identity(request: Request) -> str:
    """Dependency of every /chat/api route: the person's external id, from the cookie only."""
    external_id = await identity_of(request)
    if external_id is None:
        reason = "unknown web chat identity" if request.cookies.get(COOKIE) else "no web chat identity"
        raise HTTPException(401, f"{reason}: the page asks for one with POST /chat/api/identity")
    return external_id


async def new_identity(request: Request, legacy_uid: str | None = None, *,
                       fresh_if_refused: bool = True) -> tuple[str | None, str | None, bool]:
    """Issue an identity: (cookie token, external id, whether `legacy_uid` was claimed). The only
    function that creates identities. When the claim is refused and not `fresh_if_refused`,
    nothing is issued: (None, None, False)."""
    rt = request.app.state.rt
    await rt.limiter.hit("webchat_identity_new", client_address(request))  # RateLimited: a 429
    token = secrets.token_urlsafe(32)
    if legacy_uid is not None and await _claim(rt, token, legacy_uid):
        return token, legacy_uid, True
    if not fresh_if_refused:
        return None, None, False
    external_id = secrets.token_hex(16)
    async with rt.sessionmaker() as session, session.begin():
        session.add(WebchatIdentity(token_hash=_hash(token), external_id=external_id))
    await _maybe_purge(rt)
    return token, external_id, False


async def _claim(rt, token: str, legacy_uid: str) -> bool:
    """Map a new token to the uid an old page kept, once, if a web chat address has it."""
    if not (isinstance(legacy_uid, str) and 8 <= len(legacy_uid) <= 64 and legacy_uid.isprintable()):
        return False
    try:
        async with rt.sessionmaker() as session, session.begin():
            known = (await session.execute(select(Address.id).where(
                Address.channel == "webchat", Address.external_id == legacy_uid))).scalar()
            taken = (await session.execute(select(WebchatIdentity.id).where(
                WebchatIdentity.external_id == legacy_uid))).scalar()
            if known is None or taken is not None:
                return False
            session.add(WebchatIdentity(token_hash=_hash(token), external_id=legacy_uid, legacy=True))
    except IntegrityError:  # claimed at the same moment by another request
        return False
    log.info("web chat: an identity of the previous version was exchanged for a cookie")
    return True


async def forget_identities(session, contact_id: int) -> None:
    """Erasure: delete the web chat identities of this contact (inside the caller's transaction),
    so nothing links the browser to them any more; its next visit gets a new identity."""
    addresses = select(Address.external_id).where(Address.contact_id == contact_id, Address.channel == "webchat")
    await session.execute(delete(WebchatIdentity).where(WebchatIdentity.external_id.in_(addresses)))


def cookie_header(settings, token: str) -> str:
    days = settings.retention_days if 0 < settings.retention_days <= MAX_COOKIE_DAYS else MAX_COOKIE_DAYS
    parts = [f"{COOKIE}={token}", f"Path={COOKIE_PATH}", f"Max-Age={days * 86400}", "HttpOnly", "SameSite=Strict"]
    if secure_cookies(settings):
        parts.append("Secure")
    return "; ".join(parts)


async def purge_unused_identities(rt, now: datetime | None = None) -> int:
    """Delete identities older than a day that no web chat address uses (nobody wrote, or the
    person was deleted)."""
    cutoff = (now or utcnow()) - UNUSED_LIFETIME
    used = select(Address.external_id).where(Address.channel == "webchat")
    async with rt.sessionmaker() as session, session.begin():
        result = await session.execute(delete(WebchatIdentity).where(
            WebchatIdentity.created_at < cutoff, WebchatIdentity.external_id.not_in(used)))
    return result.rowcount or 0


async def _maybe_purge(rt) -> None:
    global _next_purge
    if time.monotonic() < _next_purge:
        return
    _next_purge = time.monotonic() + PURGE_EVERY_SECONDS
    try:
        purged = await purge_unused_identities(rt)
    except Exception:
        log.exception("purging unused web chat identities failed")
        return
    if purged:
        log.info("unused web chat identities purged: %s", purged)


__all__ = ["WebchatIdentity", "COOKIE", "identity_of", "require_identity", "new_identity", "cookie_header",
           "purge_unused_identities", "forget_identities"]
