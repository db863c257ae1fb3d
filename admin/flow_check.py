"""Checking a flow being edited: the SAME validator as the files, its messages in plain French, the
channel limits, and an outline (steps nothing leads to, dead ends, links to missing flows).

`check_draft(flow_id, source, published)` parses the draft with flows.definition.parse_flow, then
checks the whole set (the organisation's published flows with this draft in place) with
flows.library.load_sources — exactly what the runtime does when it loads a published set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml
from pydantic import ValidationError

from flows.definition import LOCALES, SAFE_LOADER, Flow, Step, targets
from flows.library import load_sources

# What WhatsApp shows (bots/whatsapp.py cuts longer ones): 3 reply buttons of 20 characters, or a
# list of 10 rows of 24; an interactive message's body holds 1,024 characters; Telegram 4,096.
WHATSAPP_BUTTONS, WHATSAPP_BUTTON_CHARS = 3, 20
WHATSAPP_ROWS, WHATSAPP_ROW_CHARS = 10, 24
WHATSAPP_BODY_CHARS = 1024
TELEGRAM_TEXT_CHARS = 4096
LANGUAGE_NAMES = {"fr": "français", "en": "anglais", "es": "espagnol", "ar": "arabe", "uk": "ukrainien"}
KIND_NAMES = {"say": "message", "ask": "question", "branch": "aiguillage", "set": "calcul", "call": "action",
              "handoff": "passage à une personne", "end": "fin"}


@dataclass
class Problem:
    message: str  # French, names the step
    step: str | None = None
    blocking: bool = True  # False: a warning (the channel adapts, e.g. WhatsApp cuts a long button)


@dataclass
class OutlineStep:
    id: str
    kind: str
    summary: str
    targets: list[str]
    unreached: bool = False
    dead_end: list[str] = field(default_factory=list)  # why
    missing_flows: list[str] = field(default_factory=list)


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    flow: Flow | None = None  # the parsed draft (even when the set check failed)
    outline: list[OutlineStep] = field(default_factory=list)
    data: dict | None = None  # the raw YAML mapping

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.blocking]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.blocking]

    @property
    def ok(self) -> bool:
        return not self.errors


# -- French messages ---------------------------------------------------------------------------

_STEP = r"step '(?P<step>[^']+)'"
_PATTERNS: list[tuple[str, str]] = [
    (r"not valid YAML: (?P<rest>.*)", "le texte YAML n'est pas lisible{where} : vérifiez l'indentation, les deux-points et les guillemets"),
    (r"a flow file holds one mapping.*", "le YAML doit décrire un parcours (flow, title, start, steps)"),
    (r"start step '(?P<target>[^']+)' does not exist", "l'étape de départ « {target} » n'existe pas"),
    (_STEP + r": unknown flow '(?P<target>[^']+)'", "Étape « {step} » : elle mène au parcours « {target} », qui n'existe pas"),
    (_STEP + r": unknown next step '(?P<target>[^']+)'", "Étape « {step} » : elle mène à l'étape « {target} », qui n'existe pas"),
    (_STEP + r": unknown action '(?P<target>[^']+)'", "Étape « {step} » : l'action « {target} » n'existe pas (actions : check_rights, find_places)"),
    (_STEP + r": a translated text needs its French version \(fr\)", "Étape « {step} » : un texte traduit doit garder sa version française (fr)"),
    (_STEP + r": template error: (?P<detail>.*)", "Étape « {step} » : le texte contient une erreur de modèle ({detail_fr})"),
    (_STEP + r": expression error in '(?P<target>.*)': (?P<detail>.*)", "Étape « {step} » : la condition ou le calcul « {target} » est incorrect ({detail_fr})"),
    (_STEP + r": a step needs exactly one of .*\(found (?P<target>.*)\)", "Étape « {step} » : une étape fait une seule chose, or elle en a plusieurs ({target})"),
    (_STEP + r": a step needs exactly one of .*", "Étape « {step} » : elle doit faire une chose (say, ask, branch, set, call, handoff ou end)"),
    (_STEP + r": unknown input '(?P<target>[^']+)'.*", "Étape « {step} » : le type de réponse « {target} » n'existe pas"),
    (_STEP + r": an ask with input buttons needs buttons", "Étape « {step} » : une question à boutons a besoin d'au moins un bouton"),
    (_STEP + r": an ask needs `save`.*", "Étape « {step} » : une question doit nommer la réponse (save)"),
    (_STEP + r": an? (?P<target>\w+) step needs `next`", "Étape « {step} » : il manque l'étape suivante (next)"),
    (_STEP + r": a branch needs `else`", "Étape « {step} » : un aiguillage a besoin d'une suite par défaut (else)"),
    (_STEP + r": only a say step can have `each`", "Étape « {step} » : seul un message peut être répété (each)"),
    (_STEP + r": only an ask can branch.*", "Étape « {step} » : seule une question peut choisir la suite selon la réponse"),
    (_STEP + r": (?P<target>[\w.]+): Field required", "Étape « {step} » : le champ « {target} » manque"),
    (_STEP + r": (?P<target>[\w.]+): Extra inputs are not permitted", "Étape « {step} » : le champ « {target} » n'existe pas"),
    (_STEP + r": (?P<target>[\w.]+): (?P<detail>.*)", "Étape « {step} » : le champ « {target} » n'a pas la bonne forme"),
    (_STEP + r": (?P<detail>.*)", "Étape « {step} » : {detail}"),
    (r"flow id '(?P<target>[^']+)' is already used by .*", "l'identifiant de parcours « {target} » est déjà pris"),
    (r"the flow '(?P<target>[^']+)' is required but missing", "le parcours « {target} » est indispensable"),
    (r"flow: flow ids use .*", "l'identifiant du parcours (flow) n'utilise que des lettres, des chiffres, - et _"),
    (r"(?P<target>[\w.]+): Field required", "le champ « {target} » manque"),
    (r"(?P<target>[\w.]+): Extra inputs are not permitted", "le champ « {target} » n'existe pas"),
    (r"(?P<target>[\w.]+): (?P<detail>.*)", "le champ « {target} » n'a pas la bonne forme"),
]
_JINJA = [
    ("unexpected end of template", "une balise {{ … }} ou {% … %} n'est pas fermée"),
    ("unexpected '}'", "une accolade « } » de trop"),
    ("unexpected char", "un caractère inattendu"),
    ("expected token", "une balise mal écrite"),
    ("Encountered unknown tag", "une balise {% … %} inconnue"),
]


def _jinja_fr(detail: str) -> str:
    for english, french in _JINJA:
        if english in detail:
            return french
    return "une balise {{ … }} mal écrite"


def french(message: str, flow_id: str | None = None) -> Problem:
    """A FlowError (or load_sources) message in plain French, with the step it names."""
    text = message
    prefix = re.match(r"^(?P<name>[\w.<>-]+): ", text)
    flow_name = None
    if prefix and not text.startswith("step "):
        flow_name, text = prefix.group("name"), text[prefix.end():]
    for pattern, template in _PATTERNS:
        match = re.fullmatch(pattern, text, flags=re.S)
        if match:
            groups = match.groupdict()
            where = ""
            if "rest" in groups:
                lines = re.findall(r"line (\d+)", groups["rest"])
                where = f" (ligne {lines[-1]})" if lines else ""
            detail = groups.get("detail") or ""
            result = template.format(step=groups.get("step", ""), target=groups.get("target", ""), detail=detail,
                                     detail_fr=_jinja_fr(detail), where=where)
            break
    else:
        result = text
    if flow_name and flow_id and flow_name != flow_id:
        result = f"Parcours « {flow_name} » : {result}"
    result = result[0].upper() + result[1:]
    step = re.search(_STEP, text)
    return Problem(result, step.group("step") if step else None)


# -- texts and channel limits ------------------------------------------------------------------

def text_fields(step: Step) -> list[tuple[str, object]]:
    """(path, text) of every text a person reads in a step: say/ask/end/message/error, button labels."""
    found = [(name, getattr(step, name)) for name in ("say", "ask", "end", "message", "error")
             if getattr(step, name) is not None]
    found += [(f"buttons.{i}.label", button.label) for i, button in enumerate(step.buttons)]
    return found


def french_text(text) -> str:
    return text.get("fr", "") if isinstance(text, dict) else (text or "")


def channel_warnings(flow: Flow) -> list[Problem]:
    problems = []
    for step_id, step in flow.steps.items():
        for path, text in text_fields(step):
            length = len(french_text(text))
            if not path.startswith("buttons") and length > WHATSAPP_BODY_CHARS and step.buttons:
                problems.append(Problem(f"Étape « {step_id} » : le texte fait {length} caractères ; avec des boutons, "
                                        f"WhatsApp en permet {WHATSAPP_BODY_CHARS} (il sera envoyé en liste numérotée)",
                                        step_id, False))
            elif length > TELEGRAM_TEXT_CHARS:
                problems.append(Problem(f"Étape « {step_id} » : le texte fait {length} caractères, Telegram en permet "
                                        f"{TELEGRAM_TEXT_CHARS}", step_id, False))
        count = len(step.buttons)
        if count > WHATSAPP_ROWS:
            problems.append(Problem(f"Étape « {step_id} » : {count} boutons ; WhatsApp montre une liste de "
                                    f"{WHATSAPP_ROWS} au plus (ils seront envoyés en liste numérotée)", step_id, False))
        elif count > WHATSAPP_BUTTONS:
            for button in step.buttons:
                label = french_text(button.label)
                if len(label) > WHATSAPP_ROW_CHARS:
                    problems.append(Problem(f"Étape « {step_id} » : le choix « {label} » fait {len(label)} caractères, "
                                            f"une ligne de liste WhatsApp en montre {WHATSAPP_ROW_CHARS}", step_id, False))
        else:
            for button in step.buttons:
                label = french_text(button.label)
                if len(label) > WHATSAPP_BUTTON_CHARS:
                    problems.append(Problem(f"Étape « {step_id} » : le bouton « {label} » fait {len(label)} caractères, "
                                            f"WhatsApp en permet {WHATSAPP_BUTTON_CHARS}", step_id, False))
    return problems


# -- the outline -------------------------------------------------------------------------------

def _summary(step: Step) -> str:
    kind = step.kind
    if kind in ("say", "ask", "end"):
        text = french_text(getattr(step, kind))
    elif kind == "handoff":
        text = step.handoff
    elif kind == "call":
        text = step.call
    elif kind == "set":
        text = ", ".join(step.set)
    else:
        text = " ; ".join(case.when for case in step.branch or [])
    text = " ".join(text.split())
    return text if len(text) <= 70 else text[:69] + "…"


def outline(flow: Flow, known_flows: set[str]) -> list[OutlineStep]:
    reached, queue = {flow.start}, [flow.start]
    while queue:
        step = flow.steps.get(queue.pop())
        if step is None:
            continue
        for target in targets(step):
            if not target.startswith("@") and target not in reached:
                reached.add(target)
                queue.append(target)
    lines = []
    for step_id, step in flow.steps.items():
        line = OutlineStep(step_id, step.kind, _summary(step), targets(step), unreached=step_id not in reached)
        line.missing_flows = [t[1:] for t in line.targets if t.startswith("@") and t[1:] not in known_flows]
        line.missing_flows += [t for t in line.targets if not t.startswith("@") and t not in flow.steps]
        if step.kind == "ask" and isinstance(step.next, dict) and "default" not in step.next:
            values = [b.value for b in step.buttons]
            left = [v for v in values if v not in step.next]
            if left:
                line.dead_end = [f"le bouton « {v} » ne mène nulle part : le parcours s'arrête sans un mot" for v in left]
            elif step.input not in ("buttons", "yesno"):
                line.dead_end = ["une réponse écrite ne mène nulle part (ajoutez « default »)"]
        elif step.kind in ("say", "set", "call", "ask") and step.next is None:
            line.dead_end = ["pas d'étape suivante"]
        lines.append(line)
    return lines


# -- the check -----------------------------------------------------------------------------------

def check_draft(flow_id: str, source: str, published: dict[str, str], actions: set[str] | None) -> Report:
    """Validate a draft as the runtime would load it: alone (parse_flow), then in the whole set."""
    report = Report()
    try:
        data = yaml.load(source, Loader=SAFE_LOADER)
    except yaml.YAMLError as error:
        report.problems.append(french(f"{flow_id}: not valid YAML: {error}", flow_id))
        return report
    report.data = data if isinstance(data, dict) else None
    if isinstance(data, dict):
        try:
            report.flow = Flow.model_validate(data)
        except ValidationError:
            report.flow = None
    if report.flow is not None and report.flow.flow != flow_id:
        report.problems.append(Problem(f"L'identifiant du parcours (flow) doit rester « {flow_id} » "
                                       f"(pour un autre parcours, importez un fichier)"))
        return report
    _, errors = load_sources({**published, flow_id: source}, actions)
    mine = [e for e in errors if e.startswith(f"{flow_id}: ") or not re.match(r"^[\w.<>-]+: ", e)]
    others = [e for e in errors if e not in mine]
    report.problems.extend(french(e, flow_id) for e in mine)
    # Another flow broken by this one (e.g. it linked to a step-less flow): said, named.
    report.problems.extend(french(e, flow_id) for e in others)
    if report.flow is not None:
        report.problems.extend(channel_warnings(report.flow))
        report.outline = outline(report.flow, set(published) | {flow_id})
    return report


def translations(flow: Flow) -> list[dict]:
    """Rows of the strings × languages table: step, path, the text per locale, missing locales."""
    rows = []
    for step_id, step in flow.steps.items():
        for path, text in text_fields(step):
            values = dict(text) if isinstance(text, dict) else {"fr": text}
            rows.append({"step": step_id, "path": path, "values": values,
                         "missing": [loc for loc in LOCALES if not values.get(loc)]})
    return rows
