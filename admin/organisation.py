"""Organisation settings: the name people read, when a human answers (in words), retention days,
default language; read-only: the consent text as the welcome flow says it, and the channels' status.

Retention: the organisation's value (else the deployment's ALLERVERS_RETENTION_DAYS) is what the
consent text announces and what the hourly purge applies to its conversations and its audit log.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from admin.access import admin_page, current_admin
from admin.audit import update_audited
from admin.forms import FormError, integer, read_form, text
from flows.definition import LOCALES
from handoff.models import Organisation, Worker

router = APIRouter(prefix="/settings")

LOCALE_NAMES = {"fr": "Français", "en": "Anglais", "es": "Espagnol", "ar": "Arabe", "uk": "Ukrainien"}
MAX_RETENTION_DAYS = 3650


def consent_step(flows: dict):
    """The welcome flow's question that leads to `set: {consent: ...}` (its text and buttons)."""
    welcome = flows.get("welcome")
    if welcome is None:
        return None
    for step in welcome.steps.values():
        if step.kind != "ask":
            continue
        targets = list(step.next.values()) if isinstance(step.next, dict) else [step.next]
        for target in targets:
            following = welcome.steps.get(target or "")
            if following is not None and following.kind == "set" and "consent" in (following.set or {}):
                return step
    return None


def flows_in_use(rt, organisation_id: int) -> dict:
    """The flows people of this organisation get: its published revisions, else the shipped files."""
    return rt.engine_for(organisation_id).flows


def consent_preview(rt, organisation: Organisation) -> dict | None:
    from flows.engine import render

    step = consent_step(flows_in_use(rt, organisation.id))
    if step is None:
        return None
    extra = {"organisation": organisation.name, "retention_days": effective_retention(rt, organisation)}
    locale = organisation.default_language or "fr"
    try:
        return {"text": render(step.ask, {}, locale, extra),
                "buttons": [render(button.label, {}, locale, extra) for button in step.buttons]}
    except Exception:  # noqa: BLE001 (a draft text the engine cannot render: shown as missing)
        return None


def effective_retention(rt, organisation: Organisation) -> int:
    """What the person is told and what the conversation purge applies: the organisation's own
    period, else the deployment's setting (conversations/retention.py)."""
    from conversations.retention import retention_days_of

    return retention_days_of(rt.settings, organisation)


def channels_status(rt, organisation: Organisation) -> list[dict]:
    settings = rt.settings
    telegram = bool(settings.telegram_bot_token)
    whatsapp = bool(settings.whatsapp_access_token)
    templates = organisation.whatsapp_templates or {}
    return [
        {"name": "Web chat", "on": True, "details": [("Adresse", settings.public_url.rstrip("/") + "/chat")]},
        {"name": "Telegram", "on": telegram, "details": [
            ("Webhook", "réglé (secret configuré)" if telegram and settings.telegram_webhook_secret
             else "non réglé : ALLERVERS_TELEGRAM_WEBHOOK_SECRET manque" if telegram else "—"),
            ("URL du webhook", settings.public_url.rstrip("/") + "/bots/telegram/webhook")]},
        {"name": "WhatsApp", "on": whatsapp, "details": [
            ("Numéro (phone number id)", organisation.whatsapp_phone_number_id or "aucun pour cette organisation"),
            ("Modèle hors fenêtre de 24 h", templates.get("reply") or settings.whatsapp_reply_template or "aucun"),
            ("Langue des modèles", settings.whatsapp_template_language)]},
    ]


async def _page(request: Request, admin: Worker, organisation: Organisation, *, status: int = 200, error=None,
                values=None):
    rt = request.app.state.rt
    response = admin_page(request, "admin/settings.html", admin, organisation=organisation, error=error,
                          values=values, locales={code: LOCALE_NAMES.get(code, code) for code in LOCALES},
                          consent=consent_preview(rt, organisation), channels=channels_status(rt, organisation),
                          deployment_retention=rt.settings.retention_days, max_retention=MAX_RETENTION_DAYS)
    response.status_code = status
    return response


@router.get("", response_class=HTMLResponse)
async def settings_page(request: Request, admin: Worker = Depends(current_admin)):
    async with request.app.state.rt.sessionmaker() as session:
        organisation = await session.get(Organisation, admin.organisation_id)
    return await _page(request, admin, organisation)


@router.post("", response_class=HTMLResponse)
async def save_settings(request: Request, admin: Worker = Depends(current_admin)):
    form = await read_form(request)
    rt = request.app.state.rt
    async with rt.sessionmaker() as session:
        organisation = await session.get(Organisation, admin.organisation_id)
    try:
        language = (form.get("default_language") or "").strip()
        if language not in LOCALES:
            raise FormError("Langue par défaut : choisissez une langue de la liste.")
        fields = {
            "name": text(form, "name", "Nom affiché aux personnes", max_length=200, required=True),
            "opening_hours_text": text(form, "opening_hours_text", "Quand une personne répond", max_length=200,
                                       required=True),
            "retention_days": integer(form, "retention_days", "Durée de conservation", minimum=1,
                                      maximum=MAX_RETENTION_DAYS),
            "default_language": language,
        }
    except FormError as error:
        return await _page(request, admin, organisation, status=400, error=str(error), values=form)
    async with rt.sessionmaker() as session, session.begin():
        organisation = await session.get(Organisation, admin.organisation_id)
        update_audited(session, organisation, fields, organisation_id=organisation.id, actor_id=admin.id,
                       action="organisation.updated", target_type="organisation")
    rt._organisation_names.pop(admin.organisation_id, None)  # this process shows the new name at once
    return RedirectResponse("/admin/settings?saved=1", status_code=303)
