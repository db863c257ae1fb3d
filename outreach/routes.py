"""The console's outreach pages (/admin/sources, /admin/campaigns): included by admin/routes.py.

Every route depends on `current_admin`; every POST reads its form through `read_form` (CSRF first);
objects come through `owned` (another organisation's id: 404); every change is audited.
"""

from __future__ import annotations

import re
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from admin.access import admin_page, current_admin
from admin.audit import record
from admin.forms import LANGUAGES, FormError, integer, owned, read_form, text
from kernel.database import utcnow
from kernel.fields import RowId
from handoff.hours import PARIS
from handoff.models import Organisation, Team, Worker
from outreach import campaigns as sending
from outreach.models import (
    DRAFT,
    SCHEDULED,
    SENDING,
    SOURCE_KINDS,
    Campaign,
    CampaignRecipient,
    ContactSource,
    Source,
)
from outreach.sources import links, new_code, qr_png, qr_svg, texts

sources_router = APIRouter(prefix="/sources")
campaigns_router = APIRouter(prefix="/campaigns")
CHANNEL_NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp", "webchat": "Web chat"}
_TERRITORY = re.compile(r"^(?:\d{5}|2[AB]\d{3}|\d{2}|2[AB]|97[1-6])$")
_TEMPLATE = re.compile(r"^[a-z0-9_]{1,100}$")
MAX_LINE = 120


def _bad(error: Exception) -> HTTPException:
    return HTTPException(400, str(error))


def start_options(rt, organisation_id: int) -> list[tuple[str, str]]:
    """Where a source may start: (value "flow" or "flow:need", label), from the organisation's flows."""
    engine = rt.engine_for(organisation_id)
    options = []
    for flow_id, flow in engine.flows.items():
        if flow_id in ("welcome", "menu", "media"):
            continue
        title = getattr(flow, "title", None) or flow_id
        options.append((flow_id, title))
        first = flow.steps.get(flow.start)
        if first is not None and first.save == "need" and first.buttons:
            for button in first.buttons:
                label = button.label if isinstance(button.label, str) else (button.label or {}).get("fr", button.value)
                options.append((f"{flow_id}:{button.value}", f"{title} — {label}"))
    return options


def _territory(form) -> tuple[str | None, str]:
    code = text(form, "territory", "Territoire", max_length=8).upper()
    if not code:
        return None, ""
    if not _TERRITORY.match(code):
        raise FormError("Territoire : un code INSEE de commune (5 caractères) ou un numéro de département.")
    return code, code


def _territory_label(rt, code: str | None) -> str:
    if not code:
        return ""
    from admin import departements
    from admin.teams import communes_of

    if len(code) == 5:
        commune = communes_of(rt).get(code)
        return f"{commune.name} ({commune.departement})" if commune else code
    return departements.label(code) or code


async def _source_fields(request: Request, form, admin: Worker, session) -> dict:
    rt = request.app.state.rt
    name = text(form, "name", "Nom", max_length=120, required=True)
    kind = form.get("kind") or "flyer"
    if kind not in SOURCE_KINDS:
        raise FormError("Type : choisissez dans la liste.")
    team_id = integer(form, "team_id", "Équipe", minimum=1, maximum=2**31 - 1)
    if team_id is not None:
        team = await session.get(Team, team_id)
        if team is None or team.organisation_id != admin.organisation_id:
            raise FormError("Équipe : choisissez dans la liste.")
    code, _ = _territory(form)
    start = form.get("start") or ""
    flow, need = None, None
    if start:
        if start not in dict(start_options(rt, admin.organisation_id)):
            raise FormError("Début de la conversation : choisissez dans la liste.")
        flow, _, need = start.partition(":")
        need = need or None
    lines = [text(form, f"line{i}", f"Ligne {i + 1} du flyer", max_length=MAX_LINE) for i in range(3)]
    return {"name": name, "kind": kind, "team_id": team_id, "territory_code": code,
            "territory_label": _territory_label(rt, code), "start_flow": flow, "start_need": need,
            "flyer_lines": [line for line in lines if line]}


async def _source_page(request: Request, admin: Worker, source: Source | None, *, status: int = 200,
                       error: str | None = None, template: str = "admin/source.html"):
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        teams = (await session.execute(select(Team).where(Team.organisation_id == admin.organisation_id)
                                       .order_by(Team.name))).scalars().all()
        rows = (await session.execute(select(Source).where(Source.organisation_id == admin.organisation_id)
                                      .order_by(Source.created_at.desc(), Source.id.desc()))).scalars().all()
        counts = dict((await session.execute(
            select(ContactSource.source_id, func.count(func.distinct(ContactSource.contact_id)))
            .join(Source, Source.id == ContactSource.source_id)
            .where(Source.organisation_id == admin.organisation_id).group_by(ContactSource.source_id))).all())
        conversations = 0
        if source is not None:
            conversations = (await session.execute(select(func.count()).where(
                ContactSource.source_id == source.id))).scalar()
    source_links = links(rt.settings, source, rt.channels) if source is not None else {}
    response = admin_page(request, template, admin, source=source, sources=rows, counts=counts, teams=teams,
                          kinds=texts()["kinds"], starts=start_options(rt, admin.organisation_id), error=error,
                          links=source_links, channel_names=CHANNEL_NAMES, conversations=conversations,
                          default_lines=texts()["flyer_lines"])
    response.status_code = status
    return response


@sources_router.get("", response_class=HTMLResponse)
async def sources(request: Request, admin: Worker = Depends(current_admin)):
    return await _source_page(request, admin, None, template="admin/sources.html")


@sources_router.post("")
async def create_source(request: Request, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        try:
            fields = await _source_fields(request, form, admin, session)
        except FormError as error:
            raise _bad(error) from error
        for _ in range(5):  # a collision of two random codes is ~1 in 10^11; try again anyway
            code = new_code()
            if (await session.execute(select(Source.id).where(Source.code == code))).first() is None:
                break
        source = Source(organisation_id=admin.organisation_id, code=code, created_at=utcnow(), **fields)
        session.add(source)
        await session.flush()
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="source.created",
               target_type="source", target_id=source.id, details={"kind": source.kind})
    return RedirectResponse(f"/admin/sources/{source.id}", status_code=303)


@sources_router.get("/{source_id}", response_class=HTMLResponse)
async def source_page(request: Request, source_id: RowId, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        source = await owned(session, Source, source_id, admin.organisation_id)
    return await _source_page(request, admin, source)


@sources_router.post("/{source_id}", response_class=HTMLResponse)
async def save_source(request: Request, source_id: RowId, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        source = await owned(session, Source, source_id, admin.organisation_id)
        try:
            fields = await _source_fields(request, form, admin, session)
        except FormError as error:
            raise _bad(error) from error
        changed = sorted(key for key, value in fields.items() if getattr(source, key) != value)
        for key, value in fields.items():
            setattr(source, key, value)
        if changed:
            record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="source.updated",
                   target_type="source", target_id=source.id, details={"fields": changed})
    return RedirectResponse(f"/admin/sources/{source_id}?saved=1", status_code=303)


@sources_router.post("/{source_id}/delete")
async def delete_source(request: Request, source_id: RowId, admin: Worker = Depends(current_admin)):
    await read_form(request)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        source = await owned(session, Source, source_id, admin.organisation_id)
        await session.delete(source)
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="source.deleted",
               target_type="source", target_id=source_id)
    return RedirectResponse("/admin/sources", status_code=303)


async def _link(request: Request, admin: Worker, source_id: int, channel: str) -> tuple[Source, str]:
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        source = await owned(session, Source, source_id, admin.organisation_id)
    url = links(rt.settings, source, rt.channels).get(channel)
    if url is None:
        raise HTTPException(404, "ce canal n'est pas activé")
    return source, url


@sources_router.get("/{source_id}/qr/{channel}.svg")
async def qr_code_svg(request: Request, source_id: RowId, channel: str, admin: Worker = Depends(current_admin)):
    source, url = await _link(request, admin, source_id, channel)
    headers = {"Content-Disposition": f'inline; filename="qr-{source.code}-{channel}.svg"', "Cache-Control": "no-store"}
    if request.query_params.get("download"):
        headers["Content-Disposition"] = headers["Content-Disposition"].replace("inline", "attachment")
    return Response(qr_svg(url, f"{source.name} — {CHANNEL_NAMES.get(channel, channel)}"),
                    media_type="image/svg+xml", headers=headers)


@sources_router.get("/{source_id}/qr/{channel}.png")
async def qr_code_png(request: Request, source_id: RowId, channel: str, admin: Worker = Depends(current_admin)):
    source, url = await _link(request, admin, source_id, channel)
    return Response(qr_png(url), media_type="image/png", headers={
        "Content-Disposition": f'attachment; filename="qr-{source.code}-{channel}.png"', "Cache-Control": "no-store"})


@sources_router.get("/{source_id}/flyer", response_class=HTMLResponse)
async def flyer(request: Request, source_id: RowId, admin: Worker = Depends(current_admin)):
    rt = request.app.state.rt
    size = request.query_params.get("size", "a5")
    if size not in ("a5", "a6"):
        raise HTTPException(400, "format : a5 ou a6")
    async with rt.sessionmaker() as session:
        source = await owned(session, Source, source_id, admin.organisation_id)
        organisation = await session.get(Organisation, admin.organisation_id)
    return request.app.state.templates.TemplateResponse(request, "admin/source_flyer.html", {
        "source": source, "organisation": organisation, "size": size, "links": links(rt.settings, source, rt.channels),
        "lines": source.flyer_lines or texts()["flyer_lines"], "channel_names": CHANNEL_NAMES})


# -- campaigns -------------------------------------------------------------------------------------
def _paris(value: datetime | None) -> str:
    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M") if value else ""


async def _campaign_fields(form, admin: Worker, session) -> dict:
    name = text(form, "name", "Nom de la campagne", max_length=120, required=True)
    source_ids = []
    for raw in form.getlist("source_ids")[:50]:
        if not str(raw).isdigit() or len(str(raw)) > 10:
            raise FormError("Sources : choisissez dans la liste.")
        source_ids.append(int(raw))
    if source_ids:
        known = set((await session.execute(select(Source.id).where(
            Source.organisation_id == admin.organisation_id, Source.id.in_(source_ids)))).scalars().all())
        if known != set(source_ids):
            raise FormError("Sources : choisissez dans la liste.")
    territory, _ = _territory(form)
    topic = text(form, "topic", "Sujet", max_length=40).lower()
    language = form.get("language") or ""
    if language and language not in LANGUAGES:
        raise FormError("Langue : choisissez dans la liste.")
    audience = {"source_ids": source_ids, "territory": territory, "topic": topic or None,
                "language": language or None,
                "active_within_days": integer(form, "active_within_days", "Écrit dans les derniers jours",
                                              minimum=1, maximum=3650),
                "inactive_for_days": integer(form, "inactive_for_days", "Sans nouvelles depuis (jours)",
                                             minimum=1, maximum=3650)}
    buttons = [[value, texts()["campaign_buttons"][value]] for value in form.getlist("telegram_buttons")
               if value in sending.BUTTONS]
    params = [line.strip() for line in text(form, "whatsapp_params", "Variables du modèle", max_length=1000,
                                            multiline=True).split("\n") if line.strip()]
    if len(params) > 10 or any(len(p) > 200 for p in params):
        raise FormError("Variables du modèle : 10 au plus, de 200 caractères au plus.")
    template = text(form, "whatsapp_template", "Modèle WhatsApp", max_length=100).lower()
    if template and not _TEMPLATE.match(template):
        raise FormError("Modèle WhatsApp : le nom du modèle approuvé (lettres minuscules, chiffres, _).")
    messages = {
        "telegram": {"text": text(form, "telegram_text", "Message Telegram", max_length=1000, multiline=True),
                     "buttons": buttons[:3]},
        "whatsapp": {"template": template, "params": params,
                     "preview": text(form, "whatsapp_preview", "Texte du modèle", max_length=1000, multiline=True)},
        "webchat": {"text": text(form, "webchat_text", "Message web chat", max_length=1000, multiline=True),
                    "buttons": buttons[:3]},
    }
    scheduled = text(form, "scheduled_at", "Date d'envoi", max_length=20)
    scheduled_at = None
    if scheduled:
        try:
            scheduled_at = datetime.fromisoformat(scheduled).replace(tzinfo=PARIS)
        except ValueError as error:
            raise FormError("Date d'envoi : une date et une heure (jj/mm/aaaa hh:mm).") from error
    return {"name": name, "audience": audience, "messages": messages,
            "reminder_text": text(form, "reminder_text", "Relance", max_length=1000, multiline=True),
            "reminder_after_hours": integer(form, "reminder_after_hours", "Relance après (heures)", minimum=0,
                                            maximum=720, default=0),
            "scheduled_at": scheduled_at}


async def _campaign_page(request: Request, admin: Worker, campaign: Campaign, *, status: int = 200,
                         error: str | None = None, notice: str | None = None):
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        rows = (await session.execute(select(Source).where(Source.organisation_id == admin.organisation_id)
                                      .order_by(Source.name))).scalars().all()
        if campaign.status == DRAFT:
            people = await sending.audience(session, admin.organisation_id, campaign.audience or {},
                                            sending.channels_of(campaign))
        else:
            people = None
        progress = await sending.progress(session, campaign.id)
    by_channel: dict[str, int] = {}
    for _, channel in people or []:
        by_channel[channel] = by_channel.get(channel, 0) + 1
    previews = {channel: sending.outbound_for(campaign, channel)[0] for channel in sending.channels_of(campaign)}
    response = admin_page(
        request, "admin/campaign.html", admin, campaign=campaign, sources=rows, languages=LANGUAGES,
        buttons=texts()["campaign_buttons"], audience_count=None if people is None else len(people),
        by_channel=by_channel, previews=previews, progress=progress, error=error, notice=notice,
        channel_names=CHANNEL_NAMES, quiet_now=sending.quiet(rt.settings),
        next_send=_paris(sending.next_send_time(rt.settings)), scheduled=_paris(campaign.scheduled_at),
        scheduled_value=campaign.scheduled_at.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M") if campaign.scheduled_at else "",
        settings=rt.settings)
    response.status_code = status
    return response


@campaigns_router.get("", response_class=HTMLResponse)
async def campaigns(request: Request, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        rows = (await session.execute(select(Campaign).where(Campaign.organisation_id == admin.organisation_id)
                                      .order_by(Campaign.created_at.desc(), Campaign.id.desc()))).scalars().all()
        totals = dict((await session.execute(
            select(CampaignRecipient.campaign_id, func.count()).join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
            .where(Campaign.organisation_id == admin.organisation_id).group_by(CampaignRecipient.campaign_id))).all())
    return admin_page(request, "admin/campaigns.html", admin, campaigns=rows, totals=totals, paris=_paris)


@campaigns_router.post("")
async def create_campaign(request: Request, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    try:
        name = text(form, "name", "Nom de la campagne", max_length=120, required=True)
    except FormError as error:
        raise _bad(error) from error
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        campaign = Campaign(organisation_id=admin.organisation_id, name=name, status=DRAFT, audience={}, messages={},
                            created_by_id=admin.id, created_at=utcnow())
        session.add(campaign)
        await session.flush()
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="campaign.created",
               target_type="campaign", target_id=campaign.id)
    return RedirectResponse(f"/admin/campaigns/{campaign.id}", status_code=303)


@campaigns_router.get("/{campaign_id}", response_class=HTMLResponse)
async def campaign_page(request: Request, campaign_id: RowId, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        campaign = await owned(session, Campaign, campaign_id, admin.organisation_id)
    return await _campaign_page(request, admin, campaign)


@campaigns_router.post("/{campaign_id}", response_class=HTMLResponse)
async def save_campaign(request: Request, campaign_id: RowId, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        campaign = await owned(session, Campaign, campaign_id, admin.organisation_id)
        if campaign.status != DRAFT:
            raise HTTPException(409, "une campagne lancée ne se modifie plus")
        try:
            fields = await _campaign_fields(form, admin, session)
        except FormError as error:
            raise _bad(error) from error
        changed = sorted(key for key, value in fields.items() if getattr(campaign, key) != value)
        for key, value in fields.items():
            setattr(campaign, key, value)
        if changed:
            record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="campaign.updated",
                   target_type="campaign", target_id=campaign.id, details={"fields": changed})
    return RedirectResponse(f"/admin/campaigns/{campaign_id}?saved=1", status_code=303)


@campaigns_router.post("/{campaign_id}/test", response_class=HTMLResponse)
async def test_send(request: Request, campaign_id: RowId, admin: Worker = Depends(current_admin)):
    """A test to oneself (outreach/testsend.py): the campaign's message to the admin's own Telegram
    chat id or WhatsApp number; never to a contact, never counted in the campaign's figures."""
    from outreach.testsend import TestSendRefused, check, masked, send_test

    form = await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        campaign = await owned(session, Campaign, campaign_id, admin.organisation_id)
    try:
        channel = text(form, "test_channel", "Messagerie", max_length=20)
        address = check(rt, campaign, channel, text(form, "test_address", "Adresse de test", max_length=40))
    except (FormError, TestSendRefused) as error:
        return await _campaign_page(request, admin, campaign, status=400, error=str(error))
    failure = await send_test(rt, campaign, channel, address)
    async with rt.sessionmaker() as session, session.begin():
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id,
               action="campaign.test_sent" if failure is None else "campaign.test_failed",
               target_type="campaign", target_id=campaign.id,
               details={"channel": channel, "address": masked(address), **({"error": failure} if failure else {})})
    if failure is not None:
        return await _campaign_page(request, admin, campaign, error=(
            f"Envoi test non parti ({CHANNEL_NAMES[channel]}) : {failure}"))
    return await _campaign_page(request, admin, campaign, notice=(
        f"🧪 Test envoyé sur {CHANNEL_NAMES[channel]} ({masked(address)}). Il ne compte pas dans les chiffres de la campagne."))


@campaigns_router.post("/{campaign_id}/launch")
async def launch(request: Request, campaign_id: RowId, admin: Worker = Depends(current_admin)):
    await read_form(request)
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        campaign = await owned(session, Campaign, campaign_id, admin.organisation_id)
        if campaign.status != DRAFT:
            raise HTTPException(409, "cette campagne est déjà lancée")
        if not sending.channels_of(campaign):
            raise HTTPException(400, "écrivez au moins un message (Telegram, WhatsApp ou web chat)")
        campaign.status = SCHEDULED
        if campaign.scheduled_at is None:
            campaign.scheduled_at = utcnow()
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id, action="campaign.launched",
               target_type="campaign", target_id=campaign.id)
    return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)


@campaigns_router.post("/{campaign_id}/{action}")
async def change_status(request: Request, campaign_id: RowId, action: str, admin: Worker = Depends(current_admin)):
    await read_form(request)  # CSRF before anything else
    if action not in ("pause", "resume", "cancel"):
        raise HTTPException(404, "action inconnue")
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        campaign = await owned(session, Campaign, campaign_id, admin.organisation_id)
        new = await sending.set_status(session, campaign, action)
        if new is None:
            raise HTTPException(409, "impossible dans l'état actuel de la campagne")
        record(session, organisation_id=admin.organisation_id, actor_id=admin.id,
               action={"pause": "campaign.paused", "resume": "campaign.resumed", "cancel": "campaign.cancelled"}[action],
               target_type="campaign", target_id=campaign.id)
    return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)


@campaigns_router.get("/{campaign_id}/progress", response_class=HTMLResponse)
async def progress(request: Request, campaign_id: RowId, admin: Worker = Depends(current_admin)):
    """htmx, every 2 s while it sends: the progress bar (polling stops once the campaign is over)."""
    async with request.app.state.rt.sessionmaker() as session:
        campaign = await owned(session, Campaign, campaign_id, admin.organisation_id)
        numbers = await sending.progress(session, campaign.id)
    return request.app.state.templates.TemplateResponse(request, "admin/_campaign_progress.html", {
        "campaign": campaign, "progress": numbers, "live": campaign.status in (SCHEDULED, SENDING)})
