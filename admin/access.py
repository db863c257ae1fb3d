"""Who may use the console: an active worker of the organisation with the admin role.

Every admin route depends on `current_admin`; every POST calls `check_csrf` (handoff.auth).
Anonymous: redirected to the login page (401 for htmx); a worker without the role: 403.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request

from handoff.auth import csrf_token, current_worker
from handoff.models import Worker


async def current_admin(worker: Worker = Depends(current_worker)) -> Worker:
    if not worker.is_admin:
        raise HTTPException(403, "réservé aux administrateurs de l'organisation")
    return worker


def admin_page(request: Request, name: str, admin: Worker, **context):
    """Render templates/admin/<name> with the console's common context."""
    context.setdefault("csrf", csrf_token(request))
    context.setdefault("admin", admin)
    return request.app.state.templates.TemplateResponse(request, name, context)
