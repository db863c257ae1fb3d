"""Small helpers shared by the console's forms: cleaned text, lists, numbers, the CSRF check and
an organisation's own objects (404 for anything else: another organisation's ids are not revealed)."""

from __future__ import annotations

import re

from fastapi import HTTPException, Request

from handoff.auth import check_csrf

# Languages a worker may speak with people (codes as the flows' locales; names as the person reads them).
LANGUAGES = {"fr": "Français", "en": "Anglais", "es": "Espagnol", "ar": "Arabe", "uk": "Ukrainien",
             "ru": "Russe", "ps": "Pachto", "fa": "Dari / persan", "pt": "Portugais", "ro": "Roumain",
             "tr": "Turc", "ti": "Tigrigna", "so": "Somali", "it": "Italien", "de": "Allemand"}
MAX_TOPICS = 12
_SPACES = re.compile(r"\s+")


class FormError(ValueError):
    """A field that cannot be saved; the message is French and says which field and why."""


async def read_form(request: Request) -> dict:
    """The submitted form as a dict of lists, after the CSRF check (nothing is read before it)."""
    form = await request.form()
    check_csrf(request, form.get("csrf_token"))
    return form


def text(form, name: str, label: str, *, max_length: int, required: bool = False, multiline: bool = False) -> str:
    value = (form.get(name) or "").replace("\r\n", "\n")
    value = value.strip() if multiline else _SPACES.sub(" ", value).strip()
    if "\x00" in value:
        raise FormError(f"{label} : caractère non autorisé.")
    if required and not value:
        raise FormError(f"{label} : à remplir.")
    if len(value) > max_length:
        raise FormError(f"{label} : {max_length} caractères au plus ({len(value)} saisis).")
    return value


def integer(form, name: str, label: str, *, minimum: int, maximum: int, default: int | None = None) -> int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        if default is None:
            return None
        return default
    if not re.fullmatch(r"-?\d{1,6}", raw):
        raise FormError(f"{label} : un nombre entier est attendu.")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise FormError(f"{label} : entre {minimum} et {maximum}.")
    return value


def languages(form, name: str = "languages") -> list[str]:
    chosen = [code for code in form.getlist(name) if code in LANGUAGES]
    if not chosen:
        raise FormError("Langues : cochez au moins une langue.")
    return list(dict.fromkeys(chosen))


def words(form, name: str, label: str) -> list[str]:
    """A comma-separated list ("logement, santé") -> ["logement", "santé"] (unique, trimmed)."""
    raw = text(form, name, label, max_length=600)
    items = list(dict.fromkeys(_SPACES.sub(" ", w).strip().lower() for w in raw.split(",") if w.strip()))
    if len(items) > MAX_TOPICS:
        raise FormError(f"{label} : {MAX_TOPICS} au plus.")
    if any(len(item) > 40 for item in items):
        raise FormError(f"{label} : 40 caractères au plus chacun.")
    return items


def checkbox(form, name: str) -> bool:
    return form.get(name) in ("1", "on", "true")


def email(form, name: str = "email", *, required: bool) -> str:
    value = text(form, name, "E-mail", max_length=254, required=required).lower()
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise FormError("E-mail : adresse invalide.")
    return value


async def owned(session, model, object_id: int, organisation_id: int):
    """The row if it belongs to the organisation, else 404 (same answer whether it exists elsewhere or not)."""
    row = await session.get(model, object_id)
    if row is None or getattr(row, "organisation_id", None) != organisation_id:
        raise HTTPException(404, "introuvable dans votre organisation")
    return row
