"""The editor's form: one fieldset per step, built from the YAML mapping, and back.

The form carries the YAML it was drawn from (`source`) and one field per editable value, named
`f|<step>|<path>` (path: "say", "buttons.0.label", "next.oui", "branch.1.when", "set.consent", ...)
and `tr|<step>|<path>|<locale>` for translations. `apply_form` writes the submitted values into
that mapping and dumps it again — only when something changed, so an untouched file keeps its
layout. Steps are added, removed or renamed in the raw-YAML tab.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from admin.flow_check import WHATSAPP_BUTTON_CHARS, WHATSAPP_BUTTONS, WHATSAPP_ROW_CHARS, WHATSAPP_ROWS
from flows.definition import LOCALES

TEXT_KEYS = ("say", "ask", "end", "message", "error")
TEXT_LABELS = {"say": "Message", "ask": "Question", "end": "Message de fin", "message": "Message dit d'abord",
               "error": "Message si la réponse ne convient pas"}


@dataclass
class FormField:
    name: str
    label: str
    value: str
    multiline: bool = False
    limit: int | None = None  # the channel's limit, shown next to the live count
    limit_label: str = ""


@dataclass
class StepForm:
    id: str
    kind: str
    fields: list[FormField]


def _fr(value) -> str:
    if isinstance(value, dict):
        return str(value.get("fr") or "")
    return "" if value is None else str(value)


def _kind(step: dict) -> str:
    for kind in ("say", "ask", "branch", "set", "call", "handoff", "end"):
        if kind in step:
            return kind
    return "?"


def step_forms(data: dict) -> list[StepForm]:
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, dict):
        return []
    forms = []
    for step_id, step in steps.items():
        if not isinstance(step, dict):
            continue
        kind = _kind(step)
        name = f"f|{step_id}|"
        fields: list[FormField] = []
        for key in TEXT_KEYS:
            if key in step and step[key] is not None:
                limit = 1024 if step.get("buttons") else 4096
                fields.append(FormField(name + key, TEXT_LABELS[key], _fr(step[key]), True, limit,
                                        "WhatsApp avec boutons" if limit == 1024 else "Telegram"))
        buttons = step.get("buttons") or []
        as_list = len(buttons) > WHATSAPP_BUTTONS
        for i, button in enumerate(buttons):
            if isinstance(button, dict):
                fields.append(FormField(f"{name}buttons.{i}.label", f"Bouton {i + 1} (valeur « {button.get('value')} »)",
                                        _fr(button.get("label")), False,
                                        WHATSAPP_ROW_CHARS if as_list else WHATSAPP_BUTTON_CHARS,
                                        f"WhatsApp ({'liste de ' + str(WHATSAPP_ROWS) if as_list else str(WHATSAPP_BUTTONS) + ' boutons'})"))
        if kind == "branch":
            for i, case in enumerate(step.get("branch") or []):
                if isinstance(case, dict):
                    fields.append(FormField(f"{name}branch.{i}.when", f"Si (cas {i + 1})", str(case.get("when", ""))))
                    fields.append(FormField(f"{name}branch.{i}.next", f"alors aller à (cas {i + 1})", str(case.get("next", ""))))
            fields.append(FormField(name + "else", "Sinon aller à", str(step.get("else", ""))))
        if kind == "set" and isinstance(step.get("set"), dict):
            for key, expression in step["set"].items():
                fields.append(FormField(f"{name}set.{key}", f"« {key} » vaut", str(expression)))
        if kind == "call":
            fields.append(FormField(name + "call", "Action", str(step.get("call", ""))))
        if kind == "handoff":
            fields.append(FormField(name + "handoff", "Motif du passage à une personne", str(step.get("handoff", ""))))
        if "save" in step:
            fields.append(FormField(name + "save", "Nom de la réponse", str(step.get("save", ""))))
        nxt = step.get("next")
        if isinstance(nxt, dict):
            for answer, target in nxt.items():
                fields.append(FormField(f"{name}next.{answer}", f"Réponse « {answer} » : aller à", str(target)))
        elif nxt is not None or kind in ("say", "ask", "set", "call"):
            fields.append(FormField(name + "next", "Étape suivante (ou @parcours)", "" if nxt is None else str(nxt)))
        forms.append(StepForm(str(step_id), kind, fields))
    return forms


def _path_get(step: dict, path: list[str]):
    node = step
    for part in path:
        if isinstance(node, list):
            node = node[int(part)] if part.isdigit() and int(part) < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def _path_set(step: dict, path: list[str], value) -> bool:
    node = step
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.get(part)
        if node is None:
            return False
    last = path[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return True


def _set_text(step: dict, path: list[str], locale: str, value: str) -> bool:
    """Set one language of a text; returns whether it changed."""
    current = _path_get(step, path)
    if locale == "fr" and not isinstance(current, dict):
        if str(current or "").strip() == value.strip():
            return False
        return _path_set(step, path, value)
    texts = dict(current) if isinstance(current, dict) else {"fr": current or ""}
    if str(texts.get(locale) or "").strip() == value.strip():
        return False
    if value:
        texts[locale] = value
    else:
        texts.pop(locale, None)
    return _path_set(step, path, texts if set(texts) != {"fr"} else texts["fr"])


def _is_text(path: list[str]) -> bool:
    return path[0] in TEXT_KEYS or (path[0] == "buttons" and path[-1] == "label")


def apply_form(source: str, form: dict[str, str]) -> str:
    """The YAML after the form's values are written into `source` (unchanged when nothing differs)."""
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError:
        return source
    if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
        return source
    changed = False
    for name, value in form.items():
        parts = name.split("|")
        if parts[0] not in ("f", "tr") or len(parts) < 3:
            continue
        value = value.replace("\r\n", "\n")
        step = data["steps"].get(parts[1])
        if not isinstance(step, dict):
            continue
        path = parts[2].split(".")
        try:
            if parts[0] == "tr" and len(parts) == 4 and parts[3] in LOCALES and _is_text(path):
                changed |= _set_text(step, path, parts[3], value.strip())
            elif parts[0] == "f" and _is_text(path):
                if value.strip() or _path_get(step, path) is not None:
                    changed |= _set_text(step, path, "fr", value.rstrip() if "\n" in value else value)
            elif parts[0] == "f":
                current = _path_get(step, path)
                if current is not None and str(current) != value:
                    changed |= _path_set(step, path, _typed(current, value))
        except (ValueError, IndexError, TypeError, AttributeError):
            continue
    return dump(data) if changed else source


def _typed(current, value: str):
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        return value
    try:
        return type(current)(value)
    except ValueError:
        return value


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000, default_flow_style=False)
