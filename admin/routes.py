"""The console's home and the router that gathers every admin room.

`router` (included by allervers/app.py) holds the console under /admin and the public invitation
page (/invite/<token>). A room is a module with a `router` (its prefix under /admin).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from admin import audit_log, directory, flows, invite, organisation, people, teams
from admin.access import admin_page, current_admin
from casework import console as casework_console
from handoff.models import Organisation, Team, Worker

log = logging.getLogger(__name__)
console = APIRouter(prefix="/admin")


@console.get("", response_class=HTMLResponse)
async def home(request: Request, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        organisation_row = await session.get(Organisation, admin.organisation_id)
        counts = {
            "workers": (await session.execute(select(func.count()).where(
                Worker.organisation_id == admin.organisation_id, Worker.is_active.is_(True)))).scalar(),
            "invited": (await session.execute(select(func.count()).where(
                Worker.organisation_id == admin.organisation_id, Worker.is_active.is_(False),
                Worker.deactivated_at.is_(None)))).scalar(),
            "teams": (await session.execute(select(func.count()).where(
                Team.organisation_id == admin.organisation_id))).scalar(),
        }
    return admin_page(request, "admin/home.html", admin, organisation=organisation_row, counts=counts)


for room in (people, teams, flows, directory, organisation, audit_log, casework_console):
    console.include_router(room.router)
from outreach import routes as outreach_routes  # noqa: E402  (the outreach room: sources, campaigns)

console.include_router(outreach_routes.sources_router)
console.include_router(outreach_routes.campaigns_router)
router = APIRouter()
router.include_router(console)
router.include_router(invite.router)
