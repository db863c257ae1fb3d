"""A plain-words diff of two versions of a flow (the published one and the draft), shown before a
publish and stored with the revision: « Message « Bonjour… » changé », « Bouton « Aide » ajouté »,
« Étape « x » supprimée ». Works on the raw YAML mappings (the draft was validated already)."""

from __future__ import annotations

import yaml

from admin.flow_check import LANGUAGE_NAMES

TEXTS = {"say": "Message", "ask": "Question", "end": "Message de fin", "message": "Message d'attente",
         "error": "Message d'erreur"}
SETTINGS = {"next": "la suite", "save": "le nom de la réponse", "input": "le type de réponse", "when": "la condition",
            "skip": "l'étape sautée", "branch": "l'aiguillage", "else": "la suite par défaut", "set": "le calcul",
            "call": "l'action", "args": "les paramètres de l'action", "handoff": "le motif du passage",
            "each": "la répétition", "min": "le minimum", "max": "le maximum"}
TOP = {"title": "Titre", "start": "Étape de départ", "description": "Description", "triggers": "Mots qui lancent le parcours",
       "menu_label": "Bouton du menu"}


FEMININE = {"Question", "Étape de départ", "Description"}
PLURAL = {"Mots qui lancent le parcours"}


def agree(label: str, participle: str) -> str:
    """« changé » agreeing with its noun: « Question … changée »."""
    if label in FEMININE:
        return participle + "e"
    if label in PLURAL:
        return participle + "s"
    return participle


def short(text, limit: int = 30) -> str:
    if isinstance(text, dict):
        text = text.get("fr") or next(iter(text.values()), "")
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _load(source: str | None) -> dict:
    try:
        data = yaml.safe_load(source or "") or {}
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _text_changes(label: str, old, new, where: str) -> list[str]:
    if old == new:
        return []
    if old is None:
        return [f"{label} « {short(new)} » {agree(label, 'ajouté')}{where}"]
    if new is None:
        return [f"{label} « {short(old)} » {agree(label, 'supprimé')}{where}"]
    old_d = old if isinstance(old, dict) else {"fr": old}
    new_d = new if isinstance(new, dict) else {"fr": new}
    lines = []
    if old_d.get("fr") != new_d.get("fr"):
        lines.append(f"{label} « {short(old_d.get('fr'))} » {agree(label, 'changé')} en « {short(new_d.get('fr'))} »{where}")
    for locale in sorted(set(old_d) | set(new_d) - {"fr"}):
        if locale == "fr" or old_d.get(locale) == new_d.get(locale):
            continue
        language = LANGUAGE_NAMES.get(locale, locale)
        verb = "ajoutée" if locale not in old_d else "supprimée" if locale not in new_d else "changée"
        lines.append(f"Traduction en {language} de « {short(new_d.get('fr') or old_d.get('fr'))} » {verb}{where}")
    return lines


def _buttons(old: list, new: list, where: str) -> list[str]:
    old_by = {b.get("value"): b for b in old or [] if isinstance(b, dict)}
    new_by = {b.get("value"): b for b in new or [] if isinstance(b, dict)}
    lines = []
    for value, button in new_by.items():
        if value not in old_by:
            lines.append(f"Bouton « {short(button.get('label'))} » ajouté{where}")
        elif old_by[value].get("label") != button.get("label"):
            lines.extend(_text_changes("Bouton", old_by[value].get("label"), button.get("label"), where))
    for value, button in old_by.items():
        if value not in new_by:
            lines.append(f"Bouton « {short(button.get('label'))} » supprimé{where}")
    if not lines and [b.get("value") for b in old or []] != [b.get("value") for b in new or []]:
        lines.append(f"Boutons remis dans un autre ordre{where}")
    return lines


def describe(old_source: str | None, new_source: str) -> list[str]:
    """French lines saying what changes from `old_source` to `new_source` (empty: nothing)."""
    old, new = _load(old_source), _load(new_source)
    lines: list[str] = []
    for key, label in TOP.items():
        if old.get(key) != new.get(key):
            lines.append(f"{label} {agree(label, 'changé')} : « {short(old.get(key))} » → « {short(new.get(key))} »"
                         if key != "menu_label" else _text_changes(label, old.get(key), new.get(key), "")[0])
    old_steps = old.get("steps") if isinstance(old.get("steps"), dict) else {}
    new_steps = new.get("steps") if isinstance(new.get("steps"), dict) else {}
    for step_id, step in new_steps.items():
        if step_id not in old_steps:
            lines.append(f"Étape « {step_id} » ajoutée")
            continue
        before = old_steps[step_id] or {}
        step = step or {}
        where = f" (étape « {step_id} »)"
        for key, label in TEXTS.items():
            lines.extend(_text_changes(label, before.get(key), step.get(key), where))
        lines.extend(_buttons(before.get("buttons"), step.get("buttons"), where))
        for key, label in SETTINGS.items():
            if before.get(key) != step.get(key):
                lines.append(f"Étape « {step_id} » : {label} change")
    for step_id in old_steps:
        if step_id not in new_steps:
            lines.append(f"Étape « {step_id} » supprimée")
    return lines
