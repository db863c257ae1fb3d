"""Flow definitions: YAML files, one flow per file, validated into pydantic models.

A flow is a dict of readable step ids. Each step does exactly one thing:

    say: text                       then `next`; with `each: expr` (a list), the text is said once
                                    per item (one message each), the item being `item`
    ask: text                       waits for an answer (`input`: buttons, text, number, numbers
                                    (a list like "3, 7, 12"), yesno, commune, location, place),
                                    stores it under `save`, then `next` (a step id, or a mapping
                                    answer -> step id with `default`). Buttons may be offered with
                                    any input (e.g. "❓ Je ne sais pas" on a number): a pressed
                                    button saves its value.
    branch: [{when: expr, next: id}, ...]   first true condition wins, else `else`
    set: {key: expression}          computes answers, then `next`
    call: action                    asks the runtime to run an action (check_rights, find_places),
                                    stores its result under `save`, then `next`
    handoff: reason                 hands the conversation to a named human worker
    end: text                       says goodbye and ends the flow

Any step may carry `when: expr`: when false the step is skipped and `next` (or `skip`) is followed.
`next: "@menu"` jumps to the start of another flow. Texts are Jinja2 templates (sandboxed) that
see the answers; a text is a string (French) or a mapping locale -> string.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Union

import yaml
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from words.catalogue import LANGUAGES, room

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SPEC_VERSION = 1
LOCALES = LANGUAGES  # fr (the source), en, ar, uk: a text may be a mapping of these
INPUT_KINDS = ("buttons", "text", "number", "numbers", "yesno", "commune", "location", "place")

Text = Union[str, dict[str, str]]

SANDBOX = SandboxedEnvironment(autoescape=False)
# libyaml's safe loader when PyYAML was built with it (10x faster, the same safe subset)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


WORDS = room(__file__)


def _every_language(key: str) -> dict[str, str]:
    return {language: WORDS.text(key, language) for language in LANGUAGES}


class FlowError(ValueError):
    """An invalid flow file. The message names the file, the step and the problem."""


class Button(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str
    label: Text


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: str
    next: str


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # Exactly one of these is the step's kind.
    say: Text | None = None
    ask: Text | None = None
    branch: list[Case] | None = None
    set: dict[str, Any] | None = None
    call: str | None = None
    handoff: str | None = None
    end: Text | None = None

    when: str | None = None
    skip: str | None = None
    # say: one message per item of this expression's list (the text sees `item`)
    each: str | None = None
    next: str | dict[str, str] | None = None
    # ask
    input: str | None = None
    buttons: list[Button] = Field(default_factory=list)
    save: str | None = None
    min: float | None = None
    max: float | None = None
    error: Text | None = None
    # branch
    else_: str | None = Field(default=None, alias="else")
    # call: arguments (expressions)
    args: dict[str, Any] = Field(default_factory=dict)
    # handoff: text said first; call: text said only if the action makes the person wait
    message: Text | None = None

    @property
    def kind(self) -> str:
        for kind in ("say", "ask", "branch", "set", "call", "handoff", "end"):
            if getattr(self, kind) is not None:
                return kind
        raise AssertionError("validated step without kind")

    @model_validator(mode="after")
    def _one_kind(self) -> "Step":
        kinds = [k for k in ("say", "ask", "branch", "set", "call", "handoff", "end") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "a step needs exactly one of say, ask, branch, set, call, handoff, end"
                + (f" (found {', '.join(kinds)})" if kinds else "")
            )
        kind = kinds[0]
        if kind == "ask":
            if self.input is None:
                self.input = "buttons" if self.buttons else "text"
            if self.input not in INPUT_KINDS:
                raise ValueError(f"unknown input {self.input!r} (expected one of {', '.join(INPUT_KINDS)})")
            if self.input == "buttons" and not self.buttons:
                raise ValueError("an ask with input buttons needs buttons")
            if self.input == "yesno" and not self.buttons:
                self.buttons = [Button(value="oui", label=_every_language("engine.yes")),
                                Button(value="non", label=_every_language("engine.no"))]
            if not self.save:
                raise ValueError("an ask needs `save` (the answer's name)")
        if kind in ("say", "set", "call") and self.next is None:
            raise ValueError(f"a {kind} step needs `next`")
        if kind == "ask" and self.next is None:
            raise ValueError("an ask step needs `next`")
        if kind == "branch" and not self.else_:
            raise ValueError("a branch needs `else`")
        if self.each is not None and kind != "say":
            raise ValueError("only a say step can have `each`")
        if isinstance(self.next, dict) and kind != "ask":
            raise ValueError("only an ask can branch on its answer with a `next` mapping")
        return self


class Trigger(BaseModel):
    """Phrases (any language) that start the flow with some answers given: "j'ai faim" ->
    {need: se-nourrir}. The engine answers the first questions with them (Engine.start preset)."""
    model_config = ConfigDict(extra="forbid")
    phrases: list[str] = Field(min_length=1)
    answers: dict[str, str] = Field(default_factory=dict)


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec_version: int = SPEC_VERSION
    flow: str
    title: str
    description: str = ""
    start: str
    # Free text that starts this flow from anywhere (matched tolerantly).
    # Free text that starts this flow from anywhere (matched tolerantly, in any language); an entry
    # may be {phrases: [...], answers: {key: value}} to start with answers given.
    triggers: list[Union[str, Trigger]] = Field(default_factory=list)
    # The menu button that starts this flow, if any.
    menu_label: Text | None = None
    steps: dict[str, Step]

    @field_validator("flow")
    @classmethod
    def _id(cls, value: str) -> str:
        if not value.replace("_", "").replace("-", "").isalnum():
            raise ValueError("flow ids use letters, digits, - and _")
        return value


def targets(step: Step) -> list[str]:
    """Every step or flow a step can lead to."""
    found: list[str] = []
    if isinstance(step.next, str):
        found.append(step.next)
    elif isinstance(step.next, dict):
        found.extend(step.next.values())
    if step.skip:
        found.append(step.skip)
    if step.branch:
        found.extend(case.next for case in step.branch)
    if step.else_:
        found.append(step.else_)
    return found


def _texts(step: Step) -> list[Text]:
    texts = [t for t in (step.say, step.ask, step.end, step.error, step.message) if t is not None]
    texts.extend(button.label for button in step.buttons)
    return texts


def language_neutral(text: Text) -> bool:
    """A text that is only template output ("{{ places_result.text }}": the action's words, already in
    the person's language): it needs no translation."""
    source = text.get("fr", "") if isinstance(text, dict) else text
    return not re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\\n|\s", "", source or "")


def missing_languages(flow: Flow) -> list[str]:
    """Every text of `flow` (say, ask, end, message, error, button and menu labels) lacking a language,
    as "step: language" lines."""
    texts = [("menu_label", flow.menu_label)] if flow.menu_label else []
    texts += [(step_id, text) for step_id, step in flow.steps.items() for text in _texts(step)]
    missing = []
    for where, text in texts:
        if language_neutral(text):
            continue
        values = text if isinstance(text, dict) else {"fr": text}
        missing.extend(f"{where}: {language}" for language in LOCALES if not (values.get(language) or "").strip())
    return missing


def _check_template(source: str) -> None:
    SANDBOX.parse(source)


def _check_expression(source: str) -> None:
    SANDBOX.compile_expression(source)


def check_flow(flow: Flow, known_flows: set[str] | None = None, known_actions: set[str] | None = None) -> None:
    """Check references and templates; raise FlowError naming the step."""
    if flow.start not in flow.steps:
        raise FlowError(f"start step {flow.start!r} does not exist")
    if isinstance(flow.menu_label, dict) and not flow.menu_label.get("fr"):
        raise FlowError("menu_label: a translated text needs its French version (fr)")
    for step_id, step in flow.steps.items():
        where = f"step {step_id!r}"
        for target in targets(step):
            if target.startswith("@"):
                if known_flows is not None and target[1:] not in known_flows:
                    raise FlowError(f"{where}: unknown flow {target[1:]!r}")
            elif target not in flow.steps:
                raise FlowError(f"{where}: unknown next step {target!r}")
        if step.call and known_actions is not None and step.call not in known_actions:
            raise FlowError(f"{where}: unknown action {step.call!r}")
        for text in _texts(step):
            variants = text.values() if isinstance(text, dict) else [text]
            if isinstance(text, dict) and not text.get("fr"):
                raise FlowError(f"{where}: a translated text needs its French version (fr)")
            if isinstance(text, dict) and set(text) - set(LOCALES):
                unknown = ", ".join(sorted(set(text) - set(LOCALES)))
                raise FlowError(f"{where}: unknown language {unknown} (expected {', '.join(LOCALES)})")
            for variant in variants:
                try:
                    _check_template(variant)
                except TemplateSyntaxError as error:
                    raise FlowError(f"{where}: template error: {error.message}") from None
        expressions = [step.when] if step.when else []
        expressions += [step.each] if step.each else []
        expressions += [case.when for case in step.branch or []]
        if step.set:
            expressions += [v for v in step.set.values() if isinstance(v, str)]
        expressions += [v for v in step.args.values() if isinstance(v, str)]
        for expression in expressions:
            try:
                _check_expression(expression)
            except TemplateSyntaxError as error:
                raise FlowError(f"{where}: expression error in {expression!r}: {error.message}") from None


def _pydantic_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    location = [str(part) for part in first["loc"]]
    where = ""
    if len(location) >= 2 and location[0] == "steps":
        where = f"step {location[1]!r}: "
        location = location[2:]
    field = ".".join(part for part in location if not part.startswith("function-after"))
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}{field + ': ' if field else ''}{message}"


def parse_flow(source: str, name: str = "<flow>") -> Flow:
    """Parse and validate one flow's YAML text. Raises FlowError mentioning `name`."""
    try:
        data = yaml.load(source, Loader=SAFE_LOADER)
    except yaml.YAMLError as error:
        raise FlowError(f"{name}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise FlowError(f"{name}: a flow file holds one mapping (flow, title, start, steps)")
    try:
        flow = Flow.model_validate(data)
    except ValidationError as error:
        raise FlowError(f"{name}: {_pydantic_problem(error)}") from None
    try:
        check_flow(flow)
    except FlowError as error:
        raise FlowError(f"{name}: {error}") from None
    return flow


def load_flow_file(path: Path) -> Flow:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FlowError(f"{path.name}: cannot be read: {error}") from None
    return parse_flow(source, path.name)
