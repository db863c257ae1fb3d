"""Worker authentication: argon2 password hashes, a signed session cookie, CSRF tokens."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from sqlalchemy import select

from handoff.models import Worker

hasher = PasswordHasher()
# Verifying against this keeps the timing of unknown e-mails close to wrong passwords.
_DUMMY_HASH = hasher.hash("not-a-password")


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def authenticate(session, email: str, password: str) -> Worker | None:
    worker = (await session.execute(select(Worker).where(Worker.email == email.strip().lower()))).scalar()
    if worker is None or not worker.is_active:
        verify_password(_DUMMY_HASH, password)
        return None
    return worker if verify_password(worker.password_hash, password) else None


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get("csrf")
    submitted = submitted or request.headers.get("x-csrf-token")
    # Bytes: compare_digest raises TypeError on str holding non-ASCII characters.
    if not expected or not submitted or not secrets.compare_digest(expected.encode(), submitted.encode("utf-8", "replace")):
        raise HTTPException(403, "invalid CSRF token")


class LoginRequired(Exception):
    pass


async def current_worker(request: Request) -> Worker:
    worker_id = request.session.get("worker_id")
    if not worker_id:
        raise LoginRequired()
    async with request.app.state.rt.sessionmaker() as session:
        worker = await session.get(Worker, worker_id)
    if worker is None or not worker.is_active:
        request.session.clear()
        raise LoginRequired()
    return worker
