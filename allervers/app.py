"""create_app(): the FastAPI application (web chat, inbox, webhooks) around one Runtime."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from handoff.auth import LoginRequired
from kernel.headers import SecurityHeadersMiddleware
from kernel.bodycap import BodyCap, BodyTooLarge, caps_from, refusal
from kernel.ratelimit import RateLimited
from allervers.runtime import Runtime, build_runtime, start_background
from kernel.sessions import ServerSessionMiddleware
from kernel.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, channels: dict | None = None) -> FastAPI:
    settings = settings or Settings()
    from kernel import logscrub
    from ops.production import check_production

    check_production(settings)  # ALLERVERS_ENV=production: refuse unsafe settings, with the reasons
    logscrub.install(settings.secret_key)  # nothing personal in any log line, whatever its level
    if settings.log_json:
        from ops.jsonlog import install_json_logs

        install_json_logs()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt: Runtime = await build_runtime(settings, channels=channels)
        app.state.rt = rt
        if settings.seed_demo:
            from allervers.seed import seed_demo

            await seed_demo(rt)
        await start_plugins(rt)
        from outreach.campaigns import start_campaigns, stop_campaigns

        # Before the start-up sweep: campaign rows it queues again are paced like the others (outreach/).
        campaigns = start_campaigns(rt)
        await start_background(rt)
        from conversations.retention import start_housekeeping, stop_housekeeping

        housekeeping = start_housekeeping(rt)  # refetch missing files, hourly retention purge
        from handoff.escalation import start_escalation, stop_escalation

        escalation = start_escalation(rt)  # waiting too long: offered to the next team
        from followups.service import start_scheduler, stop_scheduler as stop_followups

        followups = start_scheduler(rt)  # appointment reminders, "Ça a marché ?" follow-ups
        from ops.shutdown import follow_hand_backs, graceful_stop, install_signal_hook

        hand_backs = asyncio.create_task(follow_hand_backs(rt), name="outbox-hand-backs")  # rows another process handed back at its shutdown
        from conversations.confirmations import watch_awaiting

        # WhatsApp campaign sends a crash left in doubt: confirmed by a status, else sent again or given up
        awaiting = asyncio.create_task(watch_awaiting(rt), name="outbox-awaiting")
        install_signal_hook(app)  # SIGTERM: draining at once (503 to new webhooks, /readyz 503)
        try:
            yield
        finally:
            hand_backs.cancel()
            awaiting.cancel()
            # Awaited, not only cancelled: a task unwinding after the engine is disposed kept its
            # connection (and a transaction's locks) open past the process's own end.
            await asyncio.gather(hand_backs, awaiting, return_exceptions=True)
            await stop_followups(followups)  # nothing more queued while the outbox drains
            await stop_campaigns(campaigns)
            await graceful_stop(app, rt)  # finish the batch, hand back the outbox, release locks
            await stop_escalation(escalation)
            await stop_housekeeping(housekeeping)
            await stop_plugins(rt)
            await rt.close()

    docs = settings.api_docs  # /docs, /redoc, /openapi.json: 404 unless enabled
    app = FastAPI(title="Allervers", lifespan=lifespan, docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None)
    # Workers' sessions in the database (the cookie holds a random id); bodies capped before any
    # route or other middleware reads them; security headers outermost (on every answer, 413s too).
    app.add_middleware(ServerSessionMiddleware, settings=settings)
    app.add_middleware(BodyCap, cap=caps_from(settings), refuse=lambda path, limit: refusal(settings, path, limit))
    from ops.jsonlog import RequestIdMiddleware
    from ops.shutdown import DrainingMiddleware

    app.add_middleware(DrainingMiddleware, state=app.state)  # 503 to new webhooks while shutting down
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.add_middleware(RequestIdMiddleware)  # X-Request-ID, and the id in JSON log lines
    app.state.settings = settings
    app.state.draining = False
    app.state.templates = Jinja2Templates(directory=str(ROOT / "templates"))
    app.mount("/static", StaticFiles(directory=str(ROOT / "static")), name="static")

    from conversations.webhooks import router as webhooks
    from handoff.inbox import router as inbox

    app.include_router(webhooks)
    app.include_router(inbox)
    from conversations.media_routes import router as webchat_media
    from handoff.media_routes import router as inbox_media

    app.include_router(webchat_media)
    app.include_router(inbox_media)
    from admin.routes import router as admin

    app.include_router(admin)
    from followups.routes import router as followups
    from stats.routes import router as stats

    app.include_router(followups)
    app.include_router(stats)

    from casework.routes import router as casework  # canned answers, transfers, referrals (issue 11)

    app.include_router(casework)

    from ops.health import router as probes
    from ops.metrics import router as metrics

    app.include_router(probes)  # /livez, /readyz
    app.include_router(metrics)  # /metrics (bearer token or allowed networks)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired):
        if request.headers.get("hx-request") or request.url.path.endswith("/stream"):
            return HTMLResponse("login required", status_code=401)
        return RedirectResponse("/inbox/login", status_code=303)

    from handoff.inbox import TransferredAway

    @app.exception_handler(TransferredAway)
    async def _transferred_away(request: Request, exc: TransferredAway):
        if request.method != "GET" or request.headers.get("hx-request") or request.url.path.endswith("/stream"):
            return HTMLResponse(f"Conversation transférée à {exc.organisation}.", status_code=403)
        return app.state.templates.TemplateResponse(
            request, "inbox/moved.html", {"conversation_id": exc.conversation_id, "organisation": exc.organisation},
            status_code=403)

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(request: Request, exc: BodyTooLarge):
        return refusal(settings, exc.path, exc.limit)

    @app.exception_handler(RateLimited)
    async def _rate_limited(request: Request, exc: RateLimited):
        return rate_limited_response(request, exc)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request):
        return app.state.templates.TemplateResponse(request, "home.html", {})

    @app.get("/chat", response_class=HTMLResponse)
    async def chat(request: Request):
        from webchat.page import page  # the person's language: webchat/page.py

        return await page(request)

    @app.get("/healthz")
    async def health(request: Request):
        rt = request.app.state.rt
        return {"ok": True, "rights_ready": bool(getattr(rt.rights, "ready", False))}

    return app


def rate_limited_response(request: Request, exc: RateLimited):
    """429 with Retry-After and a plain French reason: the login page for the inbox login, JSON for
    the web chat API ({"ok": false, "error": ...}) and the inbox's voice replies ({"detail": ...})."""
    minutes = max(1, -(-exc.retry_after // 60))
    wait = f"{minutes} minute" + ("s" if minutes > 1 else "")
    headers = {"Retry-After": str(exc.retry_after)}
    path = request.url.path
    if path == "/inbox/login":
        from handoff.inbox import page

        response = page(request, "inbox/login.html", error=f"Trop de tentatives. Réessayez dans {wait}.")
        response.status_code = 429
        response.headers.update(headers)
        return response
    if path.startswith("/chat/api/"):
        text = f"⚠️ Vous envoyez beaucoup de messages en peu de temps. Réessayez dans {wait}."
        return JSONResponse({"ok": False, "error": text}, status_code=429, headers=headers)
    text = f"Trop de demandes en peu de temps. Réessayez dans {wait}."
    if path.startswith("/inbox/"):
        return JSONResponse({"detail": text}, status_code=429, headers=headers)
    return PlainTextResponse(text, status_code=429, headers=headers)


async def start_plugins(rt: Runtime) -> None:
    """Outside knowledge: the rights estimator (loads OpenFisca in the background) and the directory."""
    if rt.settings.rights_backend == "openfisca":
        try:
            from rights.estimator import RightsEstimator

            rt.rights = RightsEstimator()
            rt.rights.start_loading()
        except ImportError:
            log.warning("rights estimator unavailable")
    try:
        from directory.flow import start_directory
    except ImportError:
        log.warning("directory unavailable")
    else:
        # Communes now (the engine's commune resolver and shared positions); places in the background
        # (first run, when directory_autoload: the shipped open data is imported), then a poll every
        # directory_refresh_seconds reloads them after an import from any process. docs/directory.md
        await start_directory(rt)


async def stop_plugins(rt: Runtime) -> None:
    """Shutdown, before the runtime closes: the directory stops polling for imports."""
    try:
        from directory.flow import stop_directory
    except ImportError:
        return
    await stop_directory(rt)
