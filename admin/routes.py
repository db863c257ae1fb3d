"""The console's home and the router that gathers every admin room."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from admin.access import admin_page, current_admin
from handoff.models import Organisation, Worker

router = APIRouter(prefix="/admin")


@router.get("", response_class=HTMLResponse)
async def home(request: Request, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        organisation = await session.get(Organisation, admin.organisation_id)
    return admin_page(request, "admin/home.html", admin, organisation=organisation)


from admin.directory import router as directory_router  # noqa: E402 (the rooms after the home)

router.include_router(directory_router)
