"""Ending a worker's sessions when they are deactivated or their password is reset.

The server-side sessions (built in parallel) bring `allervers.auth.end_worker_sessions(session,
worker_id)`; until then the signed-cookie sessions cannot be ended one by one, and
`current_worker` already refuses a worker who is no longer active on their next request.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


async def end_worker_sessions(session: AsyncSession, worker_id: int) -> int:
    """End every session of the worker (inside the caller's transaction); returns how many."""
    from allervers import auth

    ended = getattr(auth, "end_worker_sessions", None)
    if ended is not None:
        return await ended(session, worker_id)
    # wired at merge: end_worker_sessions (placeholder: deletes nothing)
    return 0
