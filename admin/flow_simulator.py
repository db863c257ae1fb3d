"""The editor's simulator: the DRAFT run on the real engine (flows.engine), nothing written.

The state of a simulated person (the engine's state and what the phone shows) travels in the page's
form, never in the database. Call steps run for real when their knowledge is loaded (OpenFisca
ready, the directory loaded), else they answer with sample results, labelled as such.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from flows.definition import Flow
from flows.engine import ActionRequested, Engine, FlowEnded, HandoffRequested, Input, Said, Turn

MAX_LINES = 60
MAX_ACTIONS_PER_TURN = 5

SAMPLE_RIGHTS = {
    "ok": True, "sample": True, "found": True, "has_zeros": True,
    "messages": ["🧪 Exemple (OpenFisca se charge encore) : 💶 Prime d'activité : environ 180 € par mois",
                 "🧪 Exemple : 🏠 Aide au logement (APL) : environ 250 € par mois"],
    "why_text": "🧪 Exemple : le RSA est à zéro parce que les revenus déclarés dépassent le plafond.",
    "benefits": [], "zero_benefits": [], "assumptions": [], "label": "exemple",
}
SAMPLE_PLACES = {
    "ok": True, "sample": True, "status": "places", "found": True, "has_more": False, "next_offset": None,
    "emergency_text": "🧪 Exemple (annuaire en cours de chargement) : en cas d'urgence, appelez le 115.",
    "text": "🧪 Exemple :\n1. France services Démo — 1 place de l'Exemple, 44000 Nantes — ouvert aujourd'hui 9 h–17 h",
    "places": [], "shown": [], "emergency_numbers": [],
}


@dataclass
class Simulation:
    state: dict | None = None
    lines: list[dict] = field(default_factory=list)  # {"from": "bot"|"person"|"note", "text", "choices"}
    timings_ms: list[float] = field(default_factory=list)

    def dumps(self) -> tuple[str, str]:
        return json.dumps(self.state or {}, ensure_ascii=False), json.dumps(self.lines[-MAX_LINES:], ensure_ascii=False)

    @classmethod
    def loads(cls, state: str | None, lines: str | None) -> "Simulation":
        try:
            loaded_state = json.loads(state or "{}") or None
            loaded_lines = json.loads(lines or "[]")
        except ValueError:
            return cls()
        if not isinstance(loaded_state, (dict, type(None))) or not isinstance(loaded_lines, list):
            return cls()
        return cls(loaded_state, [line for line in loaded_lines if isinstance(line, dict)])

    @property
    def choices(self) -> list:
        for line in reversed(self.lines):
            if line.get("from") == "bot":
                return line.get("choices") or []
            if line.get("from") == "person":
                return []
        return []


async def _action_result(rt, name: str, args: dict, answers: dict) -> tuple[Any, bool]:
    """(result, real?) of a call step."""
    action = rt.actions.get(name)
    if name == "check_rights" and not getattr(rt.rights, "ready", False):
        return SAMPLE_RIGHTS, False
    if name == "find_places" and not getattr(rt.directory, "ready", False):
        return SAMPLE_PLACES, False
    if action is None:
        return {"ok": False}, False
    try:
        result = await action(rt, 0, args, answers)
    except Exception:
        return {"ok": False}, True
    if isinstance(result, dict):
        result.setdefault("ok", True)
    return result, True


async def _absorb(rt, engine: Engine, sim: Simulation, turn: Turn) -> None:
    for _ in range(MAX_ACTIONS_PER_TURN):
        action = None
        for event in turn.events:
            if isinstance(event, Said):
                sim.lines.append({"from": "bot", "text": event.text, "choices": [list(c) for c in event.choices],
                                  "location": event.request_location})
            elif isinstance(event, HandoffRequested):
                sim.lines.append({"from": "note", "text": f"🙋 Passage à une personne de l'équipe (motif « {event.reason} ») "
                                                          "— en simulation, personne n'est prévenu."})
            elif isinstance(event, FlowEnded) and turn.state.get("waiting") == "done":
                pass
            elif isinstance(event, ActionRequested):
                action = event
        sim.state = turn.state
        if action is None:
            return
        result, real = await _action_result(rt, action.name, action.args, turn.state.get("answers") or {})
        sim.lines.append({"from": "note", "text": f"⚙️ Action « {action.name} » : "
                                                  + ("résultat réel" if real else "résultat d'exemple (pas encore chargé)")})
        started = time.perf_counter()
        turn = engine.resume_action(turn.state, result)
        sim.timings_ms.append((time.perf_counter() - started) * 1000)
    sim.state = turn.state


async def start(rt, flows: dict[str, Flow], sim: Simulation, flow_id: str, from_step: str | None,
                context: dict) -> Simulation:
    """A new person (the welcome flow, no consent yet), or this flow from one of its steps."""
    engine = Engine(flows, resolvers=rt.flow_engine.resolvers, locate=rt.flow_engine.locate)
    answers: dict = {}
    if from_step:
        if from_step not in flows[flow_id].steps:
            raise KeyError(from_step)
        flows = {**flows, flow_id: flows[flow_id].model_copy(update={"start": from_step})}
        engine = Engine(flows, resolvers=rt.flow_engine.resolvers, locate=rt.flow_engine.locate)
        answers = {"consent": True}
        sim.lines = [{"from": "note", "text": f"▶️ Parcours « {flow_id} » depuis l'étape « {from_step} »"}]
        start_flow = flow_id
    else:
        sim.lines = [{"from": "note", "text": "▶️ Une nouvelle personne écrit pour la première fois"}]
        start_flow = "welcome"
    started = time.perf_counter()
    turn = engine.start(start_flow, answers=answers, context=context)
    sim.timings_ms.append((time.perf_counter() - started) * 1000)
    await _absorb(rt, engine, sim, turn)
    return sim


async def answer(rt, flows: dict[str, Flow], sim: Simulation, text: str | None, choice: str | None) -> Simulation:
    engine = Engine(flows, resolvers=rt.flow_engine.resolvers, locate=rt.flow_engine.locate)
    state = sim.state or {}
    shown = choice
    for value, label in sim.choices:
        if value == choice:
            shown = label
    sim.lines.append({"from": "person", "text": text if text is not None else (shown or "")})
    if state.get("waiting") != "input" or state.get("flow") not in flows \
            or state.get("step") not in flows[state["flow"]].steps:
        sim.lines.append({"from": "note", "text": "⏹️ Le parcours est terminé : recommencez la simulation."})
        return sim
    started = time.perf_counter()
    turn = engine.resume(state, Input(text=text, choice=choice))
    sim.timings_ms.append((time.perf_counter() - started) * 1000)
    await _absorb(rt, engine, sim, turn)
    return sim
