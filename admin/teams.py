"""Teams: name, opening hours (days and times) and French public holidays, the out-of-hours message,
and the territories they cover (communes or départements, picked by postcode or name with the
directory's commune resolver). Routing reads hours and territories from the same rows."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select

from admin import departements
from handoff import hours as weekly
from admin.access import admin_page, current_admin
from admin.audit import record, update_audited
from admin.forms import FormError, checkbox, integer, owned, read_form, text
from kernel.fields import RowId
from kernel.database import utcnow
from directory.communes import normalize_name
from handoff.models import Team, Territory, Worker

router = APIRouter(prefix="/teams")

MAX_MESSAGE = 600
MAX_TERRITORIES = 500
DEFAULT_OUT_OF_HOURS = ("Bonjour, l'équipe est fermée en ce moment. Votre message est bien arrivé : "
                        "une personne vous répondra ici dès notre retour.")
_DEPARTEMENT = re.compile(r"^(?:d[ée]p(?:artement|\.)?\s*)?(\d{2}|2[ab]|97[1-6])$", re.IGNORECASE)


def communes_of(rt):
    """The directory's commune index (loaded at start-up; loaded here on first use otherwise)."""
    live = getattr(rt, "directory", None)
    getter = getattr(live, "communes", None)
    if callable(getter):
        return getter()
    if getter is not None:
        return getter
    from directory.finder import shipped_communes

    return shipped_communes()


def departement_counts(index) -> dict[str, int]:
    cached = getattr(index, "_admin_departement_counts", None)
    if cached is None:
        cached = {}
        for commune in index.communes:
            cached[commune.departement] = cached.get(commune.departement, 0) + 1
        try:
            index._admin_departement_counts = cached
        except AttributeError:  # a slotted index: recount next time (35,000 rows, a few ms)
            pass
    return cached


def territory_communes(index, territories: list[Territory]) -> int:
    """How many communes the territories cover (a département counts as all its communes; a commune
    also listed through its département counts once)."""
    counts = departement_counts(index)
    departements = {t.code for t in territories if t.kind == "departement"}
    total = sum(counts.get(code, 0) for code in departements)
    for territory in territories:
        if territory.kind == "commune":
            commune = index.get(territory.code)
            if commune is None or commune.departement not in departements:
                total += 1
    return total


async def _team(session, team_id: int, organisation_id: int) -> Team:
    return await owned(session, Team, team_id, organisation_id)


async def _territories(session, team_id: int) -> list[Territory]:
    return list((await session.execute(select(Territory).where(Territory.team_id == team_id)
                                       .order_by(Territory.kind.desc(), Territory.label))).scalars().all())


@router.get("", response_class=HTMLResponse)
async def teams(request: Request, admin: Worker = Depends(current_admin)):
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        rows = (await session.execute(select(Team).where(Team.organisation_id == admin.organisation_id)
                                      .order_by(Team.name))).scalars().all()
        members = dict((await session.execute(select(Worker.team_id, func.count()).where(
            Worker.organisation_id == admin.organisation_id, Worker.is_active.is_(True))
            .group_by(Worker.team_id))).all())
        territories = {team.id: await _territories(session, team.id) for team in rows}
    index = communes_of(rt)
    items = [{"team": team, "members": members.get(team.id, 0), "territories": len(territories[team.id]),
              "communes": territory_communes(index, territories[team.id]), "hours": weekly.describe(team.opening_hours)}
             for team in rows]
    return admin_page(request, "admin/teams.html", admin, items=items, error=None)


@router.post("")
async def create_team(request: Request, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    try:
        name = text(form, "name", "Nom de l'équipe", max_length=120, required=True)
    except FormError as error:
        raise HTTPException(400, str(error)) from error
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        if (await session.execute(select(Team.id).where(Team.organisation_id == admin.organisation_id,
                                                        Team.name == name))).first():
            raise HTTPException(409, "une équipe porte déjà ce nom")
        team = Team(organisation_id=admin.organisation_id, name=name)
        session.add(team)
        await session.flush()
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="team.created",
               target_type="team", target_id=team.id)
    return RedirectResponse(f"/admin/teams/{team.id}", status_code=303)


async def _team_page(request: Request, admin: Worker, team: Team, *, status: int = 200, error: str | None = None,
                     hours_values=None, message=None, candidates=None, query: str = "", territory_error=None):
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        territories = await _territories(session, team.id)
    index = communes_of(rt)
    counts = departement_counts(index)
    rows = []
    for territory in territories:
        size = counts.get(territory.code, 0) if territory.kind == "departement" else 1
        rows.append({"territory": territory, "communes": size})
    year = utcnow().year
    response = admin_page(
        request, "admin/team.html", admin, team=team, error=error, territory_error=territory_error,
        hours=hours_values or weekly.form_values(team.opening_hours), hours_text=weekly.describe(team.opening_hours),
        holidays=weekly.french_holidays(year), year=year, territories=rows,
        commune_count=territory_communes(index, territories), candidates=candidates or [], query=query,
        message=team.out_of_hours_message if message is None else message, default_message=DEFAULT_OUT_OF_HOURS,
        max_message=MAX_MESSAGE)
    response.status_code = status
    return response


@router.get("/{team_id}", response_class=HTMLResponse)
async def team_page(request: Request, team_id: RowId, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        team = await _team(session, team_id, admin.organisation_id)
    return await _team_page(request, admin, team)


@router.post("/{team_id}", response_class=HTMLResponse)
async def save_team(request: Request, team_id: RowId, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        team = await _team(session, team_id, admin.organisation_id)
    try:
        name = text(form, "name", "Nom de l'équipe", max_length=120, required=True)
        opening = weekly.from_form(form)
        message = text(form, "out_of_hours_message", "Message hors horaires", max_length=MAX_MESSAGE, multiline=True)
        escalate = integer(form, "escalate_after_minutes", "Délai avant de passer la main", minimum=0,
                           maximum=7 * 24 * 60, default=team.escalate_after_minutes)
    except (FormError, weekly.HoursError) as error:
        hours_values = weekly.form_values({})
        for row in hours_values:
            row["ranges"] = [[form.get(f"{row['day']}_{i}_start") or "", form.get(f"{row['day']}_{i}_end") or ""]
                             for i in range(weekly.RANGES_PER_DAY)]
        return await _team_page(request, admin, team, status=400, error=str(error), hours_values=hours_values,
                                message=form.get("out_of_hours_message") or "")
    fields = {"name": name, "opening_hours": opening, "closed_on_holidays": checkbox(form, "closed_on_holidays"),
              "out_of_hours_message": message, "escalate_after_minutes": escalate}
    async with rt.sessionmaker() as session, session.begin():
        team = await _team(session, team_id, admin.organisation_id)
        if name != team.name and (await session.execute(select(Team.id).where(
                Team.organisation_id == admin.organisation_id, Team.name == name))).first():
            raise HTTPException(409, "une équipe porte déjà ce nom")
        update_audited(session, team, fields, organisation_id=admin.organisation_id, actor_id=admin.id,
                       action="team.updated", target_type="team")
    return RedirectResponse(f"/admin/teams/{team_id}?saved=1", status_code=303)


@router.post("/{team_id}/preview", response_class=HTMLResponse)
async def preview(request: Request, team_id: RowId, admin: Worker = Depends(current_admin)):
    """The out-of-hours message as the person will read it (htmx, while typing). Changes nothing."""
    form = await read_form(request)
    async with request.app.state.rt.sessionmaker() as session:
        await _team(session, team_id, admin.organisation_id)
    message = (form.get("out_of_hours_message") or "").strip()[:MAX_MESSAGE * 2]
    return request.app.state.templates.TemplateResponse(request, "admin/_message_preview.html", {
        "message": message or DEFAULT_OUT_OF_HOURS, "length": len(message), "max_message": MAX_MESSAGE})


def _departement_choice(index, code: str) -> dict | None:
    count = departement_counts(index).get(code, 0)
    return {"kind": "departement", "code": code, "label": departements.label(code), "communes": count} if count else None


def _resolve(index, query: str) -> tuple[list[dict], str | None]:
    """Postcode, commune name, département number or name -> choices {"kind", "code", "label"}.
    A name that is both a département and communes ("Vienne") offers them all."""
    match = _DEPARTEMENT.match(query.strip())
    if match:
        choice = _departement_choice(index, match.group(1).upper())
        if choice is None:
            return [], f"Aucune commune connue dans le département {match.group(1).upper()}."
        return [choice], None
    named = departements.by_name(query)
    choices = [c for c in [_departement_choice(index, named)] if c] if named else []
    resolution = index.resolve(query)
    found = resolution.candidates or ([resolution.commune] if resolution.commune else [])
    if named:  # only the communes of exactly that name next to the département
        found = [c for c in found if normalize_name(c.name) == normalize_name(query)]
    choices += [{"kind": "commune", "code": c.code_insee, "label": f"{c.name} ({c.departement})", "communes": 1}
                for c in found]
    if not choices:
        return [], f"« {query[:60]} » : aucune commune trouvée. Essayez un code postal ou un numéro de département."
    return choices, None


@router.post("/{team_id}/territories", response_class=HTMLResponse)
async def add_territory(request: Request, team_id: RowId, admin: Worker = Depends(current_admin)):
    """Either a search (`q`: the matches are offered, one match is added at once) or a pick (`kind` + `code`)."""
    form = await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        team = await _team(session, team_id, admin.organisation_id)
    index = communes_of(rt)
    kind, code = (form.get("kind") or "").strip(), (form.get("code") or "").strip().upper()
    query = (form.get("q") or "").strip()[:120]
    if kind or code:
        choices, problem = [], None
        if kind == "departement" and departement_counts(index).get(code):
            choices = [_departement_choice(index, code)]
        elif kind == "commune" and index.get(code) is not None:
            commune = index.get(code)
            choices = [{"kind": kind, "code": code, "label": f"{commune.name} ({commune.departement})"}]
        else:
            problem = "Ce territoire est inconnu."
    elif query:
        choices, problem = _resolve(index, query)
    else:
        choices, problem = [], "Indiquez un code postal, le nom d'une commune ou un numéro de département."
    if problem or len(choices) != 1:
        return await _team_page(request, admin, team, status=400 if problem else 200, territory_error=problem,
                                candidates=choices, query=query)
    choice = choices[0]
    async with rt.sessionmaker() as session, session.begin():
        team = await _team(session, team_id, admin.organisation_id)
        existing = await _territories(session, team.id)
        if any(t.kind == choice["kind"] and t.code == choice["code"] for t in existing):
            return RedirectResponse(f"/admin/teams/{team_id}#territoires", status_code=303)
        if len(existing) >= MAX_TERRITORIES:
            raise HTTPException(400, f"{MAX_TERRITORIES} territoires au plus par équipe")
        territory = Territory(team_id=team.id, kind=choice["kind"], code=choice["code"], label=choice["label"])
        session.add(territory)
        await session.flush()
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="territory.added",
               target_type="team", target_id=team.id, details={"kind": choice["kind"], "code": choice["code"]})
    return RedirectResponse(f"/admin/teams/{team_id}#territoires", status_code=303)


@router.post("/{team_id}/territories/{territory_id}/delete")
async def remove_territory(request: Request, team_id: RowId, territory_id: RowId, admin: Worker = Depends(current_admin)):
    await read_form(request)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        team = await _team(session, team_id, admin.organisation_id)
        territory = await session.get(Territory, territory_id)
        if territory is None or territory.team_id != team.id:
            raise HTTPException(404, "introuvable dans votre organisation")
        await session.delete(territory)
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="territory.removed",
               target_type="team", target_id=team.id, details={"kind": territory.kind, "code": territory.code})
    return RedirectResponse(f"/admin/teams/{team_id}#territoires", status_code=303)
