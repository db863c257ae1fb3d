"""The console's flows room: list, editor (a form per step, raw YAML), live check, outline,
simulator, publish after a plain-words diff, revisions and rollback, export and import.

The path of an edit (ARCHITECTURE.md): form -> admin.flow_form.apply_form (YAML) ->
admin.flow_check.check_draft (flows.definition + flows.library, as when the runtime loads a set) ->
admin.flow_store.save_draft (a draft: nobody sees it) -> publish (an immutable revision, in the same
transaction as its audit entry) -> after commit Runtime.announce_flows -> every process reloads.
"""

from __future__ import annotations

import re
import time

import yaml
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError

from admin import flow_simulator
from admin import flow_store as store
from admin.access import admin_page, current_admin
from admin.flow_check import LANGUAGE_NAMES, KIND_NAMES, check_draft, translations
from admin.flow_diff import describe
from admin.flow_form import apply_form, step_forms
from handoff.auth import check_csrf
from flows.definition import LOCALES, FlowError, language_neutral, parse_flow
from flows.library import load_sources
from handoff.models import Organisation, Worker

router = APIRouter(prefix="/flows")

FLOW_ID = re.compile(r"^[A-Za-z0-9_-]{1,60}$")
MAX_SOURCE = 256 * 1024  # a flow file is a few kilobytes; rights.yaml, the longest, ~15 KB

STALE = ("Ce parcours a été modifié par quelqu'un d'autre pendant que vous l'éditiez. Vos changements ne sont pas "
         "enregistrés : ils restent affichés ci-dessous ; rechargez la page pour voir la dernière version, puis "
         "refaites-les.")
NOTICES = {"saved": "✅ Brouillon enregistré. Les personnes voient toujours la version publiée.",
           "published": "🚀 Publié : les personnes voient maintenant cette version.",
           "discarded": "🗑️ Brouillon abandonné.", "imported": "📥 Fichier importé : il est maintenant le brouillon.",
           "rolled_back": "↩️ Ancienne révision republiée."}


def _page(request: Request, name: str, admin: Worker, status_code: int = 200, **context):
    response = admin_page(request, name, admin, **context)
    response.status_code = status_code
    return response


def _titles(request: Request, admin: Worker) -> dict[str, str]:
    flows = request.app.state.rt.engine_for(admin.organisation_id).flows
    return {flow_id: flow.title for flow_id, flow in flows.items()}


def _flow_id(flow_id: str) -> str:
    if not FLOW_ID.match(flow_id):
        raise HTTPException(404, "parcours inconnu")
    return flow_id


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    check_csrf(request, form.get("csrf_token"))
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    if sum(len(v) for v in values.values()) > 4 * MAX_SOURCE:
        raise HTTPException(413, "formulaire trop long")
    return values


def _source_of(form: dict[str, str]) -> str:
    """The YAML the editor holds: the raw tab's text, or the form's values written into it."""
    source = form.get("source", "")
    if len(source) > MAX_SOURCE:
        raise HTTPException(413, "parcours trop long")
    if form.get("mode") == "form":
        source = apply_form(source, form)
    return source


async def _context(rt, session, organisation_id: int) -> dict:
    organisation = await session.get(Organisation, organisation_id)
    return {"organisation": organisation.name, "retention_days": rt.settings.retention_days, "channel": "webchat"}


async def _entry(session, admin: Worker, flow_id: str) -> store.FlowEntry:
    found = await store.entry(session, admin.organisation_id, _flow_id(flow_id))
    if found is None:
        raise HTTPException(404, "parcours inconnu")
    return found


def _check(rt, flow_id: str, source: str, published: dict[str, str]):
    return check_draft(flow_id, source, published, set(rt.actions))


def _editor_context(rt, found: store.FlowEntry, source: str, published: dict[str, str], tab: str, **extra) -> dict:
    report = _check(rt, found.flow_id, source, published)
    data = report.data
    if data is None:
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError:
            data = None
    forms = step_forms(data) if isinstance(data, dict) else []
    steps = list(report.flow.steps) if report.flow else [f.id for f in forms]
    rows = translations(report.flow) if report.flow else []
    for row in rows:  # "{{ item }}": the action's own words, already translated
        if language_neutral(row["values"].get("fr", "")):
            row["missing"] = []
    return {"entry": found, "flow_id": found.flow_id, "source": source, "tab": tab if forms or tab == "yaml" else "yaml",
            "report": report, "forms": forms, "kinds": KIND_NAMES, "steps": steps,
            "rows": rows, "locales": LOCALES,
            "languages": LANGUAGE_NAMES, "version": found.version, **extra}


# -- list -----------------------------------------------------------------------------------------

@router.get("", response_class=HTMLResponse)
async def flow_list(request: Request, admin: Worker = Depends(current_admin), done: str | None = None):
    async with request.app.state.rt.sessionmaker() as session:
        rows = await store.entries(session, admin.organisation_id)
    return admin_page(request, "admin/flows.html", admin, rows=rows, notice=NOTICES.get(done or ""),
                      titles=_titles(request, admin))


# -- editor ---------------------------------------------------------------------------------------

async def _flow_and_published(rt, admin: Worker, flow_id: str) -> tuple[store.FlowEntry, dict[str, str]]:
    """The organisation's flow (404 when it has none of that id) and every flow as published."""
    async with rt.sessionmaker() as session:
        return await _entry(session, admin, flow_id), await store.effective_sources(session, admin.organisation_id)


@router.get("/{flow_id}", response_class=HTMLResponse)
async def editor(request: Request, flow_id: str, admin: Worker = Depends(current_admin), tab: str = "form",
                 done: str | None = None):
    rt = request.app.state.rt
    found, published = await _flow_and_published(rt, admin, flow_id)
    context = _editor_context(rt, found, store.current_source(found), published, "yaml" if tab == "yaml" else "form",
                              notice=NOTICES.get(done or ""), languages_open=tab == "languages")
    return admin_page(request, "admin/flows_editor.html", admin, **context)


@router.post("/{flow_id}/edit", response_class=HTMLResponse)
async def switch_tab(request: Request, flow_id: str, admin: Worker = Depends(current_admin)):
    """Change tab without losing what was typed (nothing saved)."""
    form = await _form(request)
    rt = request.app.state.rt
    found, published = await _flow_and_published(rt, admin, flow_id)
    context = _editor_context(rt, found, _source_of(form), published, "yaml" if form.get("tab") == "yaml" else "form")
    context["version"] = _version(form)
    return admin_page(request, "admin/flows_editor.html", admin, **context)


@router.post("/{flow_id}/check", response_class=HTMLResponse)
async def check(request: Request, flow_id: str, admin: Worker = Depends(current_admin)):
    """The live check (hx-post on change): problems in French and the outline."""
    form = await _form(request)
    rt = request.app.state.rt
    found, published = await _flow_and_published(rt, admin, flow_id)
    report = _check(rt, found.flow_id, _source_of(form), published)
    return admin_page(request, "admin/flows_check.html", admin, report=report, kinds=KIND_NAMES, flow_id=found.flow_id,
                      oob=True)


def _version(form: dict[str, str]) -> int:
    try:
        return int(form.get("version", "0"))
    except ValueError:
        raise HTTPException(400, "version illisible") from None


@router.post("/{flow_id}/save", response_class=HTMLResponse)
async def save(request: Request, flow_id: str, admin: Worker = Depends(current_admin)):
    form = await _form(request)
    rt = request.app.state.rt
    source = _source_of(form)
    expected = _version(form)
    try:
        async with rt.sessionmaker() as session, session.begin():
            found = await _entry(session, admin, flow_id)
            await store.save_draft(session, admin.organisation_id, found.flow_id, source, expected, admin.id)
    except store.StaleCopy:
        found, published = await _flow_and_published(rt, admin, flow_id)
        context = _editor_context(rt, found, source, published, "yaml", stale=STALE)
        context["version"] = expected
        return _page(request, "admin/flows_editor.html", admin, status_code=409, **context)
    return RedirectResponse(f"/admin/flows/{found.flow_id}?done=saved", status_code=303)


@router.post("/{flow_id}/discard")
async def discard(request: Request, flow_id: str, admin: Worker = Depends(current_admin)):
    form = await _form(request)
    rt = request.app.state.rt
    try:
        async with rt.sessionmaker() as session, session.begin():
            found = await _entry(session, admin, flow_id)
            await store.discard_draft(session, admin.organisation_id, found.flow_id, _version(form), admin.id)
    except store.StaleCopy:
        raise HTTPException(409, STALE) from None
    return RedirectResponse(f"/admin/flows/{found.flow_id}?done=discarded", status_code=303)


# -- publish, revisions, rollback -----------------------------------------------------------------

@router.get("/{flow_id}/publish", response_class=HTMLResponse)
async def publish_preview(request: Request, flow_id: str, admin: Worker = Depends(current_admin)):
    rt = request.app.state.rt
    found, published = await _flow_and_published(rt, admin, flow_id)
    if not found.has_draft:
        return RedirectResponse(f"/admin/flows/{found.flow_id}", status_code=303)
    report = _check(rt, found.flow_id, found.draft.source, published)
    changes = describe(store.published_source(found), found.draft.source)
    return admin_page(request, "admin/flows_publish.html", admin, entry=found, report=report, changes=changes,
                      kinds=KIND_NAMES, flow_id=found.flow_id)


@router.post("/{flow_id}/publish")
async def publish(request: Request, flow_id: str, admin: Worker = Depends(current_admin)):
    form = await _form(request)
    rt = request.app.state.rt
    expected = _version(form)
    try:
        async with rt.sessionmaker() as session, session.begin():
            found = await _entry(session, admin, flow_id)
            if not found.has_draft or found.draft.version != expected:
                raise store.StaleCopy()
            published = await store.effective_sources(session, admin.organisation_id)
            report = _check(rt, found.flow_id, found.draft.source, published)
            if not report.ok:
                raise HTTPException(400, "ce brouillon a des erreurs : corrigez-les avant de publier")
            changes = describe(store.published_source(found), found.draft.source)
            await store.publish(session, admin.organisation_id, found.flow_id, expected, changes, admin.id)
    except (store.StaleCopy, IntegrityError):
        raise HTTPException(409, STALE) from None
    await rt.announce_flows(admin.organisation_id)  # after commit: this process, then every other one
    return RedirectResponse(f"/admin/flows/{found.flow_id}?done=published", status_code=303)


@router.get("/{flow_id}/revisions", response_class=HTMLResponse)
async def revision_list(request: Request, flow_id: str, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        found = await _entry(session, admin, flow_id)
        rows = await store.revisions(session, admin.organisation_id, found.flow_id)
        authors = {w.id: w.first_name for w in [await session.get(Worker, r.published_by) for r in rows
                                                if r.published_by] if w}
    return admin_page(request, "admin/flows_revisions.html", admin, entry=found, rows=rows, authors=authors)


@router.post("/{flow_id}/rollback")
async def rollback(request: Request, flow_id: str, admin: Worker = Depends(current_admin)):
    form = await _form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        await _entry(session, admin, flow_id)  # an unknown flow is a 404 before the form is read
    number = _version({"version": form.get("number", "")})
    try:
        async with rt.sessionmaker() as session, session.begin():
            found = await _entry(session, admin, flow_id)
            old = await store.revision(session, admin.organisation_id, found.flow_id, number)
            if old is None:
                raise HTTPException(404, "révision inconnue")
            published = await store.effective_sources(session, admin.organisation_id)
            _, errors = load_sources({**published, found.flow_id: old.source}, set(rt.actions))
            if errors:  # another flow changed since (e.g. a flow this one leads to is gone)
                raise HTTPException(400, "cette révision ne va plus avec les autres parcours publiés : "
                                         "importez-la comme brouillon pour la corriger")
            changes = describe(published.get(found.flow_id), old.source)
            await store.rollback(session, admin.organisation_id, found.flow_id, number, admin.id, changes)
    except IntegrityError:  # a publish at the same instant took the number: nothing changed
        raise HTTPException(409, STALE) from None
    await rt.announce_flows(admin.organisation_id)
    return RedirectResponse(f"/admin/flows/{found.flow_id}/revisions?done=rolled_back", status_code=303)


# -- export, import -------------------------------------------------------------------------------

@router.get("/{flow_id}/export")
async def export(request: Request, flow_id: str, admin: Worker = Depends(current_admin), which: str = "published",
                 number: int | None = None):
    async with request.app.state.rt.sessionmaker() as session:
        found = await _entry(session, admin, flow_id)
        old = await store.revision(session, admin.organisation_id, found.flow_id, number) if number else None
    if number and old is None:
        raise HTTPException(404, "révision inconnue")
    source = found.draft.source if which == "draft" and found.has_draft else store.published_source(found)
    suffix = "-brouillon" if which == "draft" and found.has_draft else ""
    if old is not None:
        source, suffix = old.source, f"-r{old.number}"
    return Response(source or "", media_type="application/yaml; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{found.flow_id}{suffix}.yaml"'})


@router.post("/import", response_class=HTMLResponse)
async def import_file(request: Request, admin: Worker = Depends(current_admin)):
    form = await request.form()
    check_csrf(request, form.get("csrf_token"))
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(400, "choisissez un fichier YAML")
    raw = await upload.read(MAX_SOURCE + 1)
    rt = request.app.state.rt
    problems: list[str] = []
    if len(raw) > MAX_SOURCE:
        problems = ["Le fichier est trop long (256 Ko au plus)."]
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        source, problems = "", ["Le fichier n'est pas un texte UTF-8."]
    flow_id = None
    if not problems:
        try:
            flow_id = parse_flow(source, "import").flow
        except FlowError as error:
            from admin.flow_check import french

            problems = [french(str(error).removeprefix("import: ")).message]
    async with rt.sessionmaker() as session, session.begin():
        if flow_id is not None:
            published = await store.effective_sources(session, admin.organisation_id)
            report = _check(rt, flow_id, source, published)
            problems = [p.message for p in report.errors]
        if problems:
            rows = await store.entries(session, admin.organisation_id)
            return _page(request, "admin/flows.html", admin, status_code=400, rows=rows, import_problems=problems,
                         titles=_titles(request, admin))
        await store.save_draft(session, admin.organisation_id, flow_id, source, None, admin.id, "flow.imported")
    return RedirectResponse(f"/admin/flows/{flow_id}?done=imported", status_code=303)


# -- simulator ------------------------------------------------------------------------------------

@router.post("/{flow_id}/simulate", response_class=HTMLResponse)
async def simulate(request: Request, flow_id: str, admin: Worker = Depends(current_admin)):
    """One turn of the draft on the real engine; the simulated person lives in the form."""
    form = await _form(request)
    rt = request.app.state.rt
    found, published = await _flow_and_published(rt, admin, flow_id)
    async with rt.sessionmaker() as session:
        context = await _context(rt, session, admin.organisation_id)
    source = _source_of(form)
    flows, errors = load_sources({**published, found.flow_id: source}, set(rt.actions))
    sim = flow_simulator.Simulation.loads(form.get("sim_state"), form.get("sim_lines"))
    problem = None
    started = time.perf_counter()
    if errors:
        problem = "Le brouillon a des erreurs : corrigez-les pour simuler."
    else:
        try:
            if form.get("sim_start") is not None:
                step = form.get("sim_from") or None
                sim = await flow_simulator.start(rt, flows, flow_simulator.Simulation(), found.flow_id, step, context)
            elif sim.state:
                text = (form.get("sim_text") or "").strip() or None
                choice = form.get("sim_choice") or None
                if text or choice:
                    sim = await flow_simulator.answer(rt, flows, sim, text[:2000] if text else None, choice)
        except (KeyError, TypeError, ValueError, RuntimeError):
            sim, problem = flow_simulator.Simulation(), "La simulation s'est arrêtée : recommencez-la."
    elapsed_ms = (time.perf_counter() - started) * 1000
    state, lines = sim.dumps()
    return admin_page(request, "admin/flows_phone.html", admin, sim=sim, sim_state=state, sim_lines=lines,
                      problem=problem, flow_id=found.flow_id, elapsed_ms=elapsed_ms,
                      engine_ms=sum(sim.timings_ms), steps=list(flows[found.flow_id].steps) if not errors else [])
