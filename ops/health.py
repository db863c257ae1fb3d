"""Probes for an orchestrator.

- GET /livez: the process answers (no I/O at all: a slow database must not get a live process killed).
- GET /readyz: 200 only when this process can serve: the database answers and its schema is at the
  migrations' head, Redis answers (when configured), the directory is loaded, and the process is not
  shutting down. The rights estimator's readiness is reported beside, never blocking: the app answers
  while OpenFisca loads (the flows wait for it where they need it).
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter()
CHECK_TIMEOUT = 2.0


def migration_heads() -> set[str]:
    from alembic.script import ScriptDirectory

    from allervers.migrate import alembic_config

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def _database(rt, heads: set[str]) -> str:
    async with rt.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        rows = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    if set(rows) != heads:
        return "schema not at the migrations' head"
    return "ok"


async def _redis(rt) -> str:
    if rt.redis is None:
        return "not configured"
    await rt.redis.ping()
    return "ok"


def _directory(rt) -> str:
    directory = rt.directory
    if directory is None:
        return "not installed"
    if getattr(directory, "failed", False):
        return "failed to load"
    return "ok" if getattr(directory, "ready", True) else "loading"


async def _timed(check) -> str:
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT)
    except asyncio.TimeoutError:
        return "timeout"
    except Exception as error:  # the class only: a driver's message may carry values
        return f"unreachable ({type(error).__name__})"


@router.get("/livez")
async def livez():
    return {"ok": True}


@router.get("/readyz")
async def readyz(request: Request):
    app = request.app
    rt = getattr(app.state, "rt", None)
    if rt is None:
        return JSONResponse({"ready": False, "checks": {"startup": "not started"}}, status_code=503)
    heads = getattr(app.state, "migration_heads", None)
    if heads is None:
        heads = app.state.migration_heads = await asyncio.to_thread(migration_heads)
    started = time.perf_counter()
    database, redis = await asyncio.gather(_timed(_database(rt, heads)), _timed(_redis(rt)))
    checks = {"database": database, "redis": redis, "directory": _directory(rt),
              "shutdown": "draining" if getattr(app.state, "draining", False) else "ok"}
    ready = all(value in ("ok", "not configured", "not installed") for value in checks.values())
    rights = rt.rights
    body = {"ready": ready, "checks": checks,
            "rights": "off" if rights is None else ("ready" if getattr(rights, "ready", False) else "loading"),
            "seconds": round(time.perf_counter() - started, 4)}
    return JSONResponse(body, status_code=200 if ready else 503, headers={"Cache-Control": "no-store"})
