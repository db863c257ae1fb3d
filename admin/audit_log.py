"""The audit log page (/admin/audit): who did what, when; filters by action, actor and dates; paginated."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from admin.access import admin_page, current_admin
from admin.audit import AuditEntry
from handoff.hours import PARIS
from handoff.models import Worker

router = APIRouter(prefix="/audit")

PAGE_SIZE = 50
ACTIONS = {
    "conversation.opened": "Conversation ouverte",
    "worker.invited": "Personne invitée",
    "worker.invitation_renewed": "Nouveau lien d'invitation",
    "worker.activated": "Compte activé",
    "worker.updated": "Fiche modifiée",
    "worker.deactivated": "Compte désactivé",
    "worker.reactivated": "Compte réactivé",
    "worker.password_reset_link": "Lien de nouveau mot de passe",
    "worker.password_reset": "Mot de passe changé",
    "team.created": "Équipe créée",
    "team.updated": "Équipe modifiée",
    "territory.added": "Territoire ajouté",
    "territory.removed": "Territoire retiré",
    "organisation.created": "Organisation créée",
    "organisation.updated": "Paramètres modifiés",
    # outreach (sources, campaigns)
    "source.created": "Source créée",
    "source.updated": "Source modifiée",
    "source.deleted": "Source supprimée",
    "campaign.created": "Campagne créée",
    "campaign.updated": "Campagne modifiée",
    "campaign.launched": "Campagne lancée",
    "campaign.paused": "Campagne en pause",
    "campaign.resumed": "Campagne reprise",
    "campaign.test_sent": "Campagne essayée sur son propre compte",
    "campaign.test_failed": "Essai de campagne non envoyé",
    "campaign.cancelled": "Campagne annulée",
    "campaign.test_skipped": "Envoi test demandé",
}


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


@router.get("", response_class=HTMLResponse)
async def audit(request: Request, admin: Worker = Depends(current_admin)):
    params = request.query_params
    action = params.get("action") or ""
    actor = _int(params.get("actor"))
    since, until = _day(params.get("since")), _day(params.get("until"))
    page = max(1, _int(params.get("page")) or 1)
    query = select(AuditEntry).where(AuditEntry.organisation_id == admin.organisation_id)
    if action:
        query = query.where(AuditEntry.action == action[:60])
    if actor:
        query = query.where(AuditEntry.actor_id == actor)
    if since:
        query = query.where(AuditEntry.created_at >= datetime.combine(since, time(), PARIS))
    if until:
        query = query.where(AuditEntry.created_at < datetime.combine(until + timedelta(days=1), time(), PARIS))
    async with request.app.state.rt.sessionmaker() as session:
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar()
        entries = (await session.execute(query.order_by(AuditEntry.id.desc())
                                         .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))).scalars().all()
        workers = dict((await session.execute(select(Worker.id, Worker.first_name).where(
            Worker.organisation_id == admin.organisation_id))).all())
        known = sorted(set((await session.execute(select(AuditEntry.action).where(
            AuditEntry.organisation_id == admin.organisation_id).distinct())).scalars().all()) | set(ACTIONS))
    pages = max(1, -(-total // PAGE_SIZE))
    filters = {"action": action, "actor": actor or "", "since": since.isoformat() if since else "",
               "until": until.isoformat() if until else ""}
    link = urlencode({key: value for key, value in filters.items() if value})
    return admin_page(request, "admin/audit.html", admin, entries=entries, workers=workers, actions=ACTIONS,
                      known_actions=known, filters=filters, page=page, pages=pages, total=total, link=link,
                      paris=PARIS)
