"""The console's directory room (/admin/directory): the organisation's own places, what it hides or
corrects of the shared places (for its own people only), and file imports with their progress.

Every write goes through the importer (`directory.importer.import_records` / `import_files` with
`owner` = the organisation's slug) or, for hides, writes the override and bumps the directory
revision in one transaction with its audit entry; then the change is announced (every process
reloads its places at once; the revision poll stays the safety net).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import delete, func, or_, select

from admin.access import admin_page, current_admin
from admin.audit import record
from admin.directory_places import POSITION_CENTRE, POSITION_EXACT, SERVICE_SUFFIX, PlaceForm, thematique_groups
from handoff.auth import check_csrf
from directory.models import ORIGIN_ORGANISATION, PlaceOverride, Service, Structure, owner_of, owner_source
from handoff.models import Organisation, Worker

router = APIRouter(prefix="/directory")
SEARCH_LIMIT = 20
LIST_LIMIT = 500


def _max_upload(request: Request) -> int:
    """Settings.directory_import_max_bytes (16 MiB: ~40,000 data·inclusion records); the body cap
    (kernel/bodycap.py) uses the same setting for this route."""
    return request.app.state.settings.directory_import_max_bytes


class _Refused(Exception):
    """Raised inside an import's transaction to roll it back (something did not validate)."""


def _rt(request: Request):
    return request.app.state.rt


def _communes(request: Request):
    directory = _rt(request).directory
    if directory is not None and hasattr(directory, "communes") and callable(directory.communes):
        return directory.communes()
    from directory.finder import shipped_communes

    return shipped_communes()


async def _organisation(session, admin: Worker) -> Organisation:
    return await session.get(Organisation, admin.organisation_id)


async def _form_data(request: Request):
    form = await request.form()
    check_csrf(request, form.get("csrf_token"))
    return form


async def _announce(request: Request, revision: int | None) -> None:
    from directory.flow import announce_change

    await announce_change(_rt(request), revision)


def _owns(slug: str, structure: Structure | None) -> bool:
    return structure is not None and owner_of(structure.origin, structure.source) == slug


# -- the room's page ----------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def directory_home(request: Request, q: str = "", admin: Worker = Depends(current_admin)):
    q = q.strip()[:100]
    async with _rt(request).sessionmaker() as session:
        organisation = await _organisation(session, admin)
        source = owner_source(organisation.slug)
        own = (await session.execute(
            select(Structure).where(Structure.origin == ORIGIN_ORGANISATION, Structure.source == source)
            .order_by(Structure.nom).limit(LIST_LIMIT))).scalars().all()
        overrides = (await session.execute(
            select(PlaceOverride).where(PlaceOverride.organisation_id == organisation.id))).scalars().all()
        own_count = await session.scalar(select(func.count()).select_from(Structure).where(
            Structure.origin == ORIGIN_ORGANISATION, Structure.source == source))
        hidden = {o.place_id for o in overrides if o.hidden}
        corrected = {o.replacement_id: o.place_id for o in overrides if o.replacement_id}
        shared_ids = [o.place_id for o in overrides if o.place_id not in {s.id for s in own}]
        shared = {s.id: s for s in (await session.execute(
            select(Structure).where(Structure.id.in_(shared_ids)))).scalars()} if shared_ids else {}
        found = []
        if q:
            pattern = f"%{q.lower()}%"
            found = (await session.execute(
                select(Structure).where(Structure.origin != ORIGIN_ORGANISATION,
                                        or_(func.lower(Structure.nom).like(pattern), Structure.code_postal == q,
                                            func.lower(Structure.commune).like(pattern)))
                .order_by(Structure.nom).limit(SEARCH_LIMIT))).scalars().all()
    return admin_page(request, "admin/directory.html", admin, organisation=organisation, own=own,
                      own_count=own_count, hidden=hidden, corrected=corrected, shared=shared,
                      hidden_shared=[shared[i] for i in shared_ids if i in hidden and i in shared],
                      q=q, found=found, replaced={o.place_id for o in overrides if o.replacement_id},
                      notice=request.query_params.get("ok", ""))


# -- the place form ---------------------------------------------------------------------------------


def _render_form(request: Request, admin: Worker, form: PlaceForm, *, status: int = 200, corrected=None):
    from directory.hours import describe

    preview = describe(form.horaires) if form.horaires else None
    response = admin_page(request, "admin/directory_place.html", admin, form=form, groups=thematique_groups(),
                          days=_days(), preview=preview, corrected=corrected, exact=POSITION_EXACT,
                          centre=POSITION_CENTRE)
    response.status_code = status
    return response


def _days():
    from admin.directory_hours import DAYS

    return list(enumerate(label for _, label in DAYS))


@router.get("/new", response_class=HTMLResponse)
async def new_place(request: Request, admin: Worker = Depends(current_admin)):
    return _render_form(request, admin, PlaceForm())


@router.get("/edit", response_class=HTMLResponse)
async def edit_place(request: Request, id: str = "", admin: Worker = Depends(current_admin)):
    async with _rt(request).sessionmaker() as session:
        organisation = await _organisation(session, admin)
        structure = await session.get(Structure, id) if id else None
        if not _owns(organisation.slug, structure):
            raise HTTPException(404, "lieu introuvable dans votre annuaire")
        services = (await session.execute(select(Service).where(Service.structure_id == id))).scalars().all()
        form = PlaceForm.of_place(structure, services)
        form.horaires = structure.horaires_accueil or ""
    return _render_form(request, admin, form)


@router.get("/correct", response_class=HTMLResponse)
async def correct_place(request: Request, id: str = "", admin: Worker = Depends(current_admin)):
    """A shared place's correction form, filled with what it says now."""
    async with _rt(request).sessionmaker() as session:
        structure = await session.get(Structure, id) if id else None
        if structure is None or owner_of(structure.origin, structure.source) is not None:
            raise HTTPException(404, "lieu partagé introuvable")
        services = (await session.execute(select(Service).where(Service.structure_id == id))).scalars().all()
        form = PlaceForm.of_place(structure, services, corrects=structure.id)
        form.horaires = structure.horaires_accueil or ""
    return _render_form(request, admin, form, corrected=structure)


@router.post("/save", response_class=HTMLResponse)
async def save_place(request: Request, admin: Worker = Depends(current_admin)):
    """Add, edit, or correct a shared place: checked here, then written by the importer."""
    from directory.importer import import_records, owned_id

    posted = await _form_data(request)
    form = PlaceForm.read(posted)
    rt = _rt(request)
    async with rt.sessionmaker() as session:
        organisation = await _organisation(session, admin)
        slug = organisation.slug
        corrected = None
        if form.id:
            if not _owns(slug, await session.get(Structure, form.id)):
                raise HTTPException(404, "lieu introuvable dans votre annuaire")
            form.corrects = ""
        elif form.corrects:
            corrected = await session.get(Structure, form.corrects)
            if corrected is None or owner_of(corrected.origin, corrected.source) is not None:
                raise HTTPException(404, "lieu partagé introuvable")
    if not form.check(_communes(request)):
        return _render_form(request, admin, form, status=422, corrected=corrected)

    records = form.records()
    structure_id = owned_id(slug, records[0][1]["id"])
    action = "directory.place_updated" if form.id else (
        "directory.place_corrected" if form.corrects else "directory.place_added")

    async def in_transaction(session, report) -> None:
        if report.rejected:  # the schema refused something: write nothing
            raise _Refused()
        # The form owns the place's services: one, the "accueil" (an imported place may have had more).
        await session.execute(delete(Service).where(Service.structure_id == structure_id,
                                                    Service.id != structure_id + SERVICE_SUFFIX))
        if form.corrects:
            existing = await session.scalar(select(PlaceOverride).where(
                PlaceOverride.organisation_id == organisation.id, PlaceOverride.place_id == form.corrects))
            if existing is None:
                session.add(PlaceOverride(organisation_id=organisation.id, place_id=form.corrects,
                                          replacement_id=structure_id, hidden=False))
            else:
                existing.replacement_id = structure_id
        record(session, organisation_id=organisation.id, actor_id=admin.id, action=action, target_type="place",
               details={"place": structure_id, **({"corrects": form.corrects} if form.corrects else {})})

    report = None
    try:
        report = await import_records(rt.sessionmaker, [("formulaire", records)], owner=slug, progress=False,
                                      before_commit=in_transaction)
    except _Refused:
        pass
    if report is None or report.rejected or report.revision is None:
        for rejection in (report.rejected if report else []):
            for name, message in rejection.errors:
                form.error("schema", f"{name or 'lieu'} : {message}")
        if not form.errors:
            form.error("schema", "Le lieu n'a pas pu être enregistré.")
        return _render_form(request, admin, form, status=422, corrected=corrected)
    await _announce(request, report.revision)
    return RedirectResponse("/admin/directory?ok=" + ("corrige" if form.corrects else "enregistre"), status_code=303)


@router.post("/hours", response_class=HTMLResponse)
async def hours_preview(request: Request, admin: Worker = Depends(current_admin)):
    """htmx: the days and times as the OSM string, and "ouvert maintenant ?" (nothing is saved)."""
    from admin.directory_hours import HoursForm, build
    from directory.hours import describe

    posted = await _form_data(request)
    expression, errors = build(HoursForm.from_form(posted))
    return request.app.state.templates.TemplateResponse(
        request, "admin/directory_hours.html",
        {"expression": expression, "errors": errors, "preview": describe(expression) if expression else None})


# -- hide, show again, undo a correction ----------------------------------------------------------


async def _shared_or_own(session, slug: str, place_id: str) -> Structure:
    structure = await session.get(Structure, place_id) if place_id else None
    owner = owner_of(structure.origin, structure.source) if structure is not None else "?"
    if structure is None or owner not in (None, slug):
        raise HTTPException(404, "lieu introuvable")
    return structure


@router.post("/hide")
async def hide_place(request: Request, admin: Worker = Depends(current_admin)):
    return await _set_hidden(request, admin, True)


@router.post("/show")
async def show_place(request: Request, admin: Worker = Depends(current_admin)):
    return await _set_hidden(request, admin, False)


async def _set_hidden(request: Request, admin: Worker, hidden: bool):
    from directory.importer import bump_revision

    posted = await _form_data(request)
    place_id = str(posted.get("id") or "")[:400]
    async with _rt(request).sessionmaker() as session, session.begin():
        organisation = await _organisation(session, admin)
        await _shared_or_own(session, organisation.slug, place_id)
        existing = await session.scalar(select(PlaceOverride).where(
            PlaceOverride.organisation_id == organisation.id, PlaceOverride.place_id == place_id))
        if hidden and existing is None:
            session.add(PlaceOverride(organisation_id=organisation.id, place_id=place_id, hidden=True))
        elif existing is not None:
            existing.hidden = hidden
            if not hidden and existing.replacement_id is None:
                await session.delete(existing)
        record(session, organisation_id=organisation.id, actor_id=admin.id,
               action="directory.place_hidden" if hidden else "directory.place_shown", target_type="place",
               details={"place": place_id})
        await session.flush()
        revision = await bump_revision(session)
    await _announce(request, revision)
    return RedirectResponse(f"/admin/directory?ok={'masque' if hidden else 'reaffiche'}", status_code=303)


@router.post("/uncorrect")
async def undo_correction(request: Request, admin: Worker = Depends(current_admin)):
    """Drop the organisation's correction of a shared place: its people see the place as shipped."""
    from directory.importer import bump_revision

    posted = await _form_data(request)
    place_id = str(posted.get("id") or "")[:400]
    async with _rt(request).sessionmaker() as session, session.begin():
        organisation = await _organisation(session, admin)
        override = await session.scalar(select(PlaceOverride).where(
            PlaceOverride.organisation_id == organisation.id, PlaceOverride.place_id == place_id,
            PlaceOverride.replacement_id.is_not(None)))
        if override is None:
            raise HTTPException(404, "pas de correction pour ce lieu")
        replacement = override.replacement_id
        await session.execute(delete(PlaceOverride).where(PlaceOverride.organisation_id == organisation.id,
                                                          PlaceOverride.place_id == replacement))
        await session.delete(override)
        await session.flush()
        await session.execute(delete(Structure).where(Structure.id == replacement))  # its services cascade
        record(session, organisation_id=organisation.id, actor_id=admin.id, action="directory.correction_removed",
               target_type="place", details={"place": place_id})
        revision = await bump_revision(session)
    await _announce(request, revision)
    return RedirectResponse("/admin/directory?ok=correction-annulee", status_code=303)


# -- file import ----------------------------------------------------------------------------------


@router.get("/import", response_class=HTMLResponse)
async def import_page(request: Request, admin: Worker = Depends(current_admin)):
    return admin_page(request, "admin/directory_import.html", admin, error=None, max_mib=_max_upload(request) // 2**20)


@router.post("/import", response_class=HTMLResponse)
async def start_import(request: Request, file: UploadFile = File(None), csrf_token: str = Form(None),
                       admin: Worker = Depends(current_admin)):
    from admin import directory_import

    check_csrf(request, csrf_token)

    def refused(message: str):
        response = admin_page(request, "admin/directory_import.html", admin, error=message,
                              max_mib=_max_upload(request) // 2**20)
        response.status_code = 400
        return response

    if file is None or not file.filename:
        return refused("Choisissez un fichier CSV ou JSON.")
    suffix = directory_import.suffix_of(file.filename)
    if suffix is None:
        return refused("Format non reconnu : un fichier .csv, .json ou .jsonl (éventuellement .gz) est attendu.")
    content = await file.read(_max_upload(request) + 1)
    if len(content) > _max_upload(request):
        return refused(f"Fichier trop gros : {_max_upload(request) // 2**20} Mio au plus.")
    if not content.strip():
        return refused("Le fichier est vide.")
    async with _rt(request).sessionmaker() as session:
        organisation = await _organisation(session, admin)
    job = directory_import.start(request.app, _rt(request), organisation_id=organisation.id,
                                 owner=organisation.slug, actor_id=admin.id, file_name=file.filename,
                                 content=content, suffix=suffix)
    return RedirectResponse(f"/admin/directory/import/{job.id}", status_code=303)


def _job(request: Request, admin: Worker, job_id: str):
    from admin.directory_import import jobs_of

    job = jobs_of(request.app).get(job_id)
    if job is None or job.organisation_id != admin.organisation_id:
        raise HTTPException(404, "import introuvable (déjà ancien, ou lancé sur un autre serveur)")
    return job


@router.get("/import/{job_id}", response_class=HTMLResponse)
async def import_job(request: Request, job_id: str, admin: Worker = Depends(current_admin)):
    return admin_page(request, "admin/directory_job.html", admin, job=_job(request, admin, job_id))


@router.get("/import/{job_id}/progress", response_class=HTMLResponse)
async def import_progress(request: Request, job_id: str, admin: Worker = Depends(current_admin)):
    """htmx, every second: the progress bar, then the result (which stops the polling)."""
    return request.app.state.templates.TemplateResponse(
        request, "admin/directory_job_progress.html", {"job": _job(request, admin, job_id)})
