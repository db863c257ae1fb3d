"""The flow engine: pure functions (flows, state, input) -> Turn(events, new state).

No database, no HTTP. Slow or outside knowledge (OpenFisca, the directory) is asked for with an
ActionRequested event; the runtime runs the action and calls `resume_action` with its result. The
call step's waiting message travels with the request (rendered, not said): the runtime says it only
if the action is slow.
Synchronous lookups that are pure enough (commune names) are injected as `resolvers`.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from flows.definition import LOCALES, SANDBOX, Flow, Step
from flows.distress import distress_of, is_long
from flows.inputs import match_choice, normalise, parse_number, parse_numbers, parse_yes_no, strip_emoji
from flows.phrases import WORDS

MAX_STEPS_PER_TURN = 200
MAX_REASKS = 3
STUCK_AFTER = 2  # answers not understood at one question before a person and the menu are offered
# The two ways out the engine itself offers and handles (never a flow's button value).
HUMAN, MENU = "@human", "@menu"


# Events of a turn (past tense, like the stored events they become).
@dataclass(frozen=True)
class Said:
    text: str
    choices: tuple[tuple[str, str], ...] = ()
    request_location: bool = False


@dataclass(frozen=True)
class AnswerSaved:
    key: str
    value: Any


@dataclass(frozen=True)
class ActionRequested:
    name: str
    args: dict
    message: str | None = None  # to say if the action makes the person wait (the runtime decides)


@dataclass(frozen=True)
class HandoffRequested:
    reason: str


@dataclass(frozen=True)
class FlowEnded:
    flow: str


@dataclass(frozen=True)
class FlowStarted:
    flow: str


@dataclass(frozen=True)
class DistressNoticed:
    """Words of distress or danger, or a long message, typed at a question: a person was offered.
    `kind`: suicide, child, violence, street, danger, or long. The text itself is not carried."""
    kind: str


@dataclass
class Turn:
    events: list = field(default_factory=list)
    state: dict = field(default_factory=dict)

    def said(self) -> list[Said]:
        return [event for event in self.events if isinstance(event, Said)]


@dataclass(frozen=True)
class Input:
    """What the person sent, reduced to what flows understand."""

    text: str | None = None
    choice: str | None = None
    location: tuple[float, float] | None = None


# A resolver turns free text into candidates: list of {"value": ..., "label": ...} dicts.
Resolver = Callable[[str], list[dict]]
LocationResolver = Callable[[float, float], dict | None]


@functools.lru_cache(maxsize=2048)
def _template(text: str):
    """Flow texts are few and fixed: compile each once (compiling costs ~1 ms, rendering ~20 µs)."""
    return SANDBOX.from_string(text)


@functools.lru_cache(maxsize=1024)
def _expression(expression: str):
    return SANDBOX.compile_expression(expression, undefined_to_none=True)


def render(text, answers: dict, locale: str = "fr", extra: dict | None = None) -> str:
    if isinstance(text, dict):
        text = text.get(locale) or text["fr"]
    context = {"answers": answers, **answers, **(extra or {})}
    return _template(text).render(context).strip()


def evaluate(expression: str, answers: dict) -> Any:
    return _expression(expression)(answers=answers, **answers)


class Engine:
    def __init__(
        self,
        flows: dict[str, Flow],
        resolvers: dict[str, Resolver] | None = None,
        locate: LocationResolver | None = None,
    ):
        self.flows = flows
        # The given dict itself, even empty: an organisation's engine shares the default engine's,
        # which the directory fills later at start-up (`resolvers or {}` gave it a dict of its own,
        # forever empty: no commune understood by name for an organisation that had published).
        self.resolvers = resolvers if resolvers is not None else {}
        self.locate = locate

    # Entry points -----------------------------------------------------------------------------
    def start(self, flow_id: str, answers: dict | None = None, locale: str = "fr",
              context: dict | None = None, preset: dict | None = None) -> Turn:
        """Start a flow. `context` holds constants the texts may show (organisation, retention).
        `preset` answers the questions it names (by their `save`) as if the person had pressed the
        button: a trigger's answers ("j'ai faim" -> need: se-nourrir). Those questions are not said."""
        state = {"flow": flow_id, "step": self.flows[flow_id].start, "answers": dict(answers or {}),
                 "waiting": None, "choices": [], "reasks": 0, "locale": locale, "context": context or {}}
        turn = Turn(events=[FlowStarted(flow_id)], state=state)
        self._run(turn)
        for _ in range(len(preset or {})):
            if turn.state.get("waiting") != "input":
                break
            step = self._step(turn.state)
            value = (preset or {}).get(step.save)
            if value is None or not any(value == c[0] for c in self.current_choices(turn.state)):
                break
            asked = max((i for i, e in enumerate(turn.events) if isinstance(e, Said)), default=None)
            answered = self.resume(turn.state, Input(choice=value))
            kept = turn.events if asked is None else turn.events[:asked] + turn.events[asked + 1:]
            turn = Turn(events=kept + answered.events, state=answered.state)
        return turn

    def matches(self, state: dict, text: str | None) -> str | None:
        """The pending question's choice that `text` names (its number, or a label in any language)."""
        if not text or state.get("waiting") != "input":
            return None
        return self._match(Turn(state=state), self._step(state), text)

    def notices(self, text: str | None) -> str | None:
        """What makes a typed message one for a person rather than for the pending question:
        words of distress or danger (their kind), or "long". None otherwise."""
        return distress_of(text) or ("long" if is_long(text) else None)

    def resume(self, state: dict, given: Input) -> Turn:
        """Continue a flow waiting for an answer with what the person sent."""
        turn = Turn(state=copy.deepcopy(state))
        if turn.state.get("waiting") != "input":
            return turn
        step = self._step(turn.state)
        if self._way_out(turn, given):
            return turn
        if given.choice is None and given.text and self._noticed(turn, step, given.text):
            return turn
        accepted = self._accept(turn, step, given)
        if accepted:
            turn.state["waiting"] = None
            turn.state["reasks"] = 0
            self._follow(turn, step, accepted[0])
            self._run(turn)
        return turn

    def resume_action(self, state: dict, result: Any) -> Turn:
        """Continue a flow after the runtime ran the action it asked for."""
        turn = Turn(state=copy.deepcopy(state))
        if turn.state.get("waiting") != "action":
            return turn
        step = self._step(turn.state)
        turn.state["waiting"] = None
        if step.save:
            self._save(turn, step.save, result)
        self._follow(turn, step, None)
        self._run(turn)
        return turn

    def repeat(self, state: dict, locale: str | None = None) -> Turn:
        """Say the pending question again (with its buttons), in `locale` when given (the person
        just chose another language): nothing is answered, nothing moves on."""
        turn = Turn(state=copy.deepcopy(state))
        if locale:
            turn.state["locale"] = locale
        if turn.state.get("waiting") != "input":
            return turn
        step = self._step(turn.state)
        if turn.state.get("candidates"):
            self._say(turn, step.ask, choices=self.current_choices(turn.state),
                      request_location=step.input in ("location", "place"))
        else:
            self._ask(turn, step)
        return turn

    def current_choices(self, state: dict) -> list[tuple[str, str]]:
        return [tuple(choice) for choice in state.get("choices") or []]

    # Never stuck ------------------------------------------------------------------------------
    def _word(self, turn: Turn, key: str) -> str:
        return WORDS.text(key, turn.state.get("locale", "fr"))

    def _ways_out(self, turn: Turn) -> list[tuple[str, str]]:
        return [(HUMAN, self._word(turn, "engine.human")), (MENU, self._word(turn, "engine.menu"))]

    def _offer_ways_out(self, turn: Turn) -> list[tuple[str, str]]:
        """The pending choices with a person and the menu added (kept in the state: a press, or the
        label typed in any language, is understood at the next message)."""
        choices = [c for c in self.current_choices(turn.state) if c[0] not in (HUMAN, MENU)]
        ways = self._ways_out(turn)
        turn.state["choices"] = [list(c) for c in choices + ways]
        return ways

    def _way_out(self, turn: Turn, given: Input) -> bool:
        """A press of "Parler à quelqu'un" or "Menu" offered by the engine (or its label typed)."""
        offered = {c[0] for c in self.current_choices(turn.state)} & {HUMAN, MENU}
        if not offered:
            return False
        value = given.choice if given.choice in offered else None
        if value is None and given.text:
            typed = normalise(strip_emoji(given.text))
            for way in offered:
                key = "engine.human" if way == HUMAN else "engine.menu"
                if typed and typed in {normalise(strip_emoji(WORDS.text(key, loc))) for loc in LOCALES}:
                    value = way
        if value is None:
            return False
        turn.state.update(waiting=None, reasks=0, choices=[])
        turn.state.pop("candidates", None)
        if value == HUMAN:
            turn.events.append(HandoffRequested("stuck"))
            turn.state["waiting"] = "done"
            turn.events.append(FlowEnded(turn.state["flow"]))
            return True
        turn.events.append(FlowEnded(turn.state["flow"]))
        self._goto(turn, "@menu")
        self._run(turn)
        return True

    def _noticed(self, turn: Turn, step: Step, text: str) -> bool:
        """Distress, danger or a long story typed at a question: no re-ask; a person offered at once,
        with the emergency numbers that fit. The question stays open (its answer still works)."""
        if self._match(turn, step, text) is not None and not is_long(text):
            return False  # a button's own words ("🆘 Violences, danger") answer the question
        kind = self.notices(text)
        if kind is None:
            return False
        turn.events.append(DistressNoticed(kind))
        lines = []
        if kind == "long":
            lines.append(self._word(turn, "distress.long"))
            kind = distress_of(text) or "long"
        if kind != "long":
            lines.append(self._word(turn, f"distress.numbers.{kind}"))
        lines.append(self._word(turn, "distress.offer"))
        turn.events.append(Said("\n".join(lines), tuple(self._offer_ways_out(turn)), False))
        return True

    def _match(self, turn: Turn, step: Step, text: str) -> str | None:
        """The pending choice `text` names: by number or title, or by the step's button label in any
        language (typed in another language than the conversation's, it still answers)."""
        aliases = []
        if not turn.state.get("candidates"):
            answers, context = turn.state["answers"], turn.state.get("context")
            for button in step.buttons:
                if isinstance(button.label, dict):
                    aliases.extend((button.value, render(label, answers, loc, context))
                                   for loc, label in button.label.items() if label)
        return match_choice(text, self.current_choices(turn.state), aliases)

    # Internals --------------------------------------------------------------------------------
    def _step(self, state: dict) -> Step:
        return self.flows[state["flow"]].steps[state["step"]]

    def _render(self, turn: Turn, text, extra: dict | None = None) -> str:
        context = turn.state.get("context")
        if extra:
            context = {**(context or {}), **extra}
        return render(text, turn.state["answers"], turn.state.get("locale", "fr"), context)

    def _say(self, turn: Turn, text, *, choices=(), request_location=False, extra: dict | None = None) -> None:
        rendered = self._render(turn, text, extra)
        if rendered or choices:
            turn.events.append(Said(rendered, tuple(choices), request_location))

    def _save(self, turn: Turn, key: str, value: Any) -> None:
        turn.state["answers"][key] = value
        turn.events.append(AnswerSaved(key, value))

    def _goto(self, turn: Turn, target: str) -> None:
        if target.startswith("@"):
            flow_id = target[1:]
            turn.state["flow"] = flow_id
            turn.state["step"] = self.flows[flow_id].start
            turn.events.append(FlowStarted(flow_id))
        else:
            turn.state["step"] = target

    def _follow(self, turn: Turn, step: Step, answer_value: Any) -> None:
        target = step.next
        if isinstance(target, dict):
            key = str(answer_value).lower() if isinstance(answer_value, bool) else str(answer_value)
            key = {"true": "oui", "false": "non"}.get(key, key)
            target = target.get(key) or target.get("default")
        if target is None:
            turn.state["step"] = None
            turn.state["waiting"] = "done"
            turn.events.append(FlowEnded(turn.state["flow"]))
            return
        self._goto(turn, target)

    def _run(self, turn: Turn) -> None:
        for _ in range(MAX_STEPS_PER_TURN):
            if turn.state.get("waiting") or turn.state.get("step") is None:
                return
            step = self._step(turn.state)
            answers = turn.state["answers"]
            if step.when and not evaluate(step.when, answers):
                self._goto(turn, step.skip or (step.next if isinstance(step.next, str) else step.else_))
                continue
            kind = step.kind
            if kind == "say":
                if step.each:
                    for item in evaluate(step.each, answers) or ():
                        self._say(turn, step.say, extra={"item": item})
                else:
                    self._say(turn, step.say)
                self._goto(turn, step.next)
            elif kind == "set":
                for key, expression in step.set.items():
                    value = evaluate(expression, answers) if isinstance(expression, str) else expression
                    self._save(turn, key, value)
                self._goto(turn, step.next)
            elif kind == "branch":
                target = next((case.next for case in step.branch if evaluate(case.when, answers)), step.else_)
                self._goto(turn, target)
            elif kind == "ask":
                self._ask(turn, step)
                return
            elif kind == "call":
                message = self._render(turn, step.message) if step.message else None
                args = {k: evaluate(v, answers) if isinstance(v, str) else v for k, v in step.args.items()}
                turn.state["waiting"] = "action"
                turn.events.append(ActionRequested(step.call, args, message or None))
                return
            elif kind == "handoff":
                if step.message:
                    self._say(turn, step.message)
                turn.events.append(HandoffRequested(step.handoff))
                turn.state["waiting"] = "done"
                turn.events.append(FlowEnded(turn.state["flow"]))
                return
            elif kind == "end":
                self._say(turn, step.end)
                turn.state["waiting"] = "done"
                turn.events.append(FlowEnded(turn.state["flow"]))
                return
        raise RuntimeError(f"flow {turn.state['flow']!r} ran {MAX_STEPS_PER_TURN} steps without waiting")

    def _ask(self, turn: Turn, step: Step, choices: list[tuple[str, str]] | None = None, text=None) -> None:
        locale = turn.state.get("locale", "fr")
        answers = turn.state["answers"]
        if choices is None:
            choices = [(b.value, render(b.label, answers, locale, turn.state.get("context"))) for b in step.buttons]
        turn.state["choices"] = [list(c) for c in choices]
        turn.state["waiting"] = "input"
        self._say(turn, text if text is not None else step.ask, choices=choices,
                  request_location=step.input in ("location", "place"))

    def _reask(self, turn: Turn, step: Step, problem: str | None = None) -> None:
        """Say kindly what is expected and ask again (keeping the same choices)."""
        turn.state["reasks"] = turn.state.get("reasks", 0) + 1
        locale = turn.state.get("locale", "fr")
        message = self._render(turn, step.error) if step.error else (problem and self._word(turn, problem))
        choices = [c for c in self.current_choices(turn.state) if c[0] not in (HUMAN, MENU)]
        if turn.state["reasks"] > MAX_REASKS and choices:
            message = (message or "") + "\n" + self._word(turn, "engine.touch_button")
        if turn.state["reasks"] >= STUCK_AFTER:
            message = (message or "") + "\n" + self._word(turn, "engine.stuck")
            choices = choices + self._offer_ways_out(turn)
        turn.events.append(Said((message or self._word(turn, "engine.not_understood")).strip(), tuple(choices),
                                step.input in ("location", "place")))

    def _accept(self, turn: Turn, step: Step, given: Input) -> tuple[Any] | None:
        """Validate and save an answer; re-ask and return None when it does not fit."""
        kind = step.input
        choices = self.current_choices(turn.state)
        value: Any = None
        if kind in ("buttons", "yesno") or (choices and kind in ("commune", "place") and turn.state.get("candidates")):
            if given.choice is not None and any(given.choice == c[0] for c in choices):
                value = given.choice
            elif given.text:
                value = self._match(turn, step, given.text)
                if value is None and kind == "yesno":
                    yes_no = parse_yes_no(given.text)
                    value = None if yes_no is None else ("oui" if yes_no else "non")
            if value is None and kind in ("commune", "place") and given.text:
                turn.state.pop("candidates", None)  # another commune typed: resolve it afresh
                return self._accept(turn, step, given)
            if value is None:
                self._reask(turn, step, "engine.pick_button")
                return None
            if kind in ("commune", "place"):
                value = next(c for c in turn.state["candidates"] if c["value"] == value)
                turn.state.pop("candidates", None)
            self._save(turn, step.save, value)
            return (value if not isinstance(value, dict) else value.get("value"),)
        if kind not in ("buttons", "yesno") and choices and not turn.state.get("candidates"):
            pressed = given.choice if any(given.choice == c[0] for c in choices) else None
            if pressed is None and given.text:
                typed = self._match(turn, step, given.text)
                pressed = typed if typed is not None and parse_number(given.text) is None else None
            if pressed is not None:
                self._save(turn, step.save, pressed)
                return (pressed,)
        if kind == "text":
            if not given.text:
                self._reask(turn, step, "engine.text_expected")
                return None
            value = given.text.strip()
        elif kind == "number":
            number = parse_number(given.text or given.choice or "")
            if number is None:
                self._reask(turn, step, "engine.number_expected")
                return None
            if (step.min is not None and number < step.min) or (step.max is not None and number > step.max):
                self._reask(turn, step, "engine.number_impossible")
                return None
            value = int(number) if float(number).is_integer() else number
        elif kind == "numbers":
            numbers = parse_numbers(given.text or "")
            if numbers is None or any((step.min is not None and n < step.min) or
                                      (step.max is not None and n > step.max) for n in numbers):
                self._reask(turn, step, "engine.numbers_expected")
                return None
            value = [int(n) if float(n).is_integer() else n for n in numbers]
        elif kind in ("commune", "place", "location"):
            if given.location is not None:
                place = self.locate(*given.location) if self.locate else None
                if place is None and kind != "location":
                    self._reask(turn, step, "engine.no_commune_near")
                    return None
                value = place or {"value": "position", "label": self._word(turn, "engine.your_position")}
                value = {**value, "latitude": given.location[0], "longitude": given.location[1]}
            elif given.text and "commune" in self.resolvers:
                candidates = self.resolvers["commune"](given.text)
                if not candidates:
                    self._reask(turn, step, "engine.unknown_commune")
                    return None
                if len(candidates) > 1:
                    turn.state["candidates"] = candidates
                    turn.state["reasks"] = 0
                    self._ask(turn, step, choices=[(c["value"], c["label"]) for c in candidates[:10]],
                              text=WORDS.raw("engine.which_commune", turn.state.get("locale", "fr")))
                    return None
                value = candidates[0]
            else:
                self._reask(turn, step, "engine.commune_expected")
                return None
        self._save(turn, step.save, value)
        return (value.get("value") if isinstance(value, dict) else value,)
