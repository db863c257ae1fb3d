"""Worker authentication: argon2 password hashes (computed off the event loop), server-side
sessions (kernel.sessions), CSRF tokens."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from sqlalchemy import delete, select

from kernel.sessions import WorkerSession
from handoff.models import Worker

hasher = PasswordHasher()
# What an unknown e-mail's password is checked against (the time of a real check). A hash made with
# the hasher's parameters, written here rather than computed at every import (0.2 s of CPU at each
# start of the app, the CLI and every test process); computed if the parameters ever differ.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$+3FMQ4POu8a1mf4e4AsRrQ$UiOihVGKstLsYx2qL7X/T8Lgt/JRMo5iTqkVHi+Kk9k"
if hasher.check_needs_rehash(_DUMMY_HASH):
    _DUMMY_HASH = hasher.hash("not-a-password")
# Longer passwords are refused before hashing (argon2 accepts anything; nobody types more).
MAX_PASSWORD_LENGTH = 256

# argon2 takes ~50 ms of CPU and 64 MiB per hash: never on the event loop (it froze /healthz for
# every login), in a small pool of its own (argon2-cffi releases the GIL while it hashes), and with
# a bound on the logins waiting for it, so a flood of logins is refused instead of queued forever.
# One core is left to the event loop: on 2 cores, one hashing thread gave /healthz a p99 of
# 90-135 ms under 10 concurrent logins, two threads 240-330 ms (argon2 runs 4 lanes per hash).
HASHING_THREADS = max(1, min(4, (os.cpu_count() or 2) - 1))
MAX_WAITING_HASHES = 64
_pool = ThreadPoolExecutor(max_workers=HASHING_THREADS, thread_name_prefix="argon2")
_waiting = 0
_waiting_lock = threading.Lock()


class HashingBusy(Exception):
    """Too many password checks are waiting already: refuse this one (the caller answers 503)."""


async def _off_loop(function, *args):
    global _waiting
    with _waiting_lock:
        if _waiting >= MAX_WAITING_HASHES:
            raise HashingBusy()
        _waiting += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool, function, *args)
    finally:
        with _waiting_lock:
            _waiting -= 1


def hash_password(password: str) -> str:
    """Blocking: for the CLI, the seed and tests. Routes use `await hash_password_async`."""
    return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Blocking: routes use `await verify_password_async`."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    return await _off_loop(hash_password, password)


async def verify_password_async(password_hash: str, password: str) -> bool:
    return await _off_loop(verify_password, password_hash, password)


async def authenticate(sessionmaker, email: str, password: str) -> Worker | None:
    """The active worker with this e-mail and password, or None. No database connection is held
    while the hash is checked (SQLite has only one)."""
    async with sessionmaker() as session:
        worker = (await session.execute(select(Worker).where(Worker.email == email.strip().lower()))).scalar()
    if worker is None or not worker.is_active:
        await verify_password_async(_DUMMY_HASH, password)
        return None
    return worker if await verify_password_async(worker.password_hash, password) else None


async def end_worker_sessions(session, worker_id: int) -> int:
    """Delete every server-side session of this worker (inside the caller's transaction): each of
    their cookies opens nothing any more. Call it on a password change or reset and on
    deactivation. Returns how many sessions ended. The current request keeps working if it then
    calls `kernel.sessions.rotate(request)` (a fresh session is written when it answers)."""
    result = await session.execute(delete(WorkerSession).where(WorkerSession.worker_id == worker_id))
    return result.rowcount or 0


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
    if not expected or not isinstance(submitted, str) or not submitted or not secrets.compare_digest(
            expected.encode(), submitted.encode("utf-8", "replace")):
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
