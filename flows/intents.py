"""Free text to intents: the commands that work everywhere, and flow triggers ("mes droits", "RSA").

A small local matcher (normalised text, keywords, rapidfuzz for typos): no external NLU. The
phrases are in flows/words/<lang>.yaml (`understand.*`) and in the flows' `triggers`, and every
language is understood whatever the conversation's language. A trigger may carry answers: "j'ai
faim" starts the places flow with the need already answered (Engine.start's `preset`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rapidfuzz import fuzz

from flows.definition import Flow, Trigger
from flows.distress import distress_of, is_long
from flows.inputs import normalise
from flows.phrases import phrases

COMMAND_NAMES = ("menu", "human", "stop", "erase")


@dataclass(frozen=True)
class Intent:
    kind: str  # command name, or "flow"
    flow: str | None = None
    # answers to give the flow's first questions (a trigger's `answers`), for Engine.start(preset=)
    answers: dict = field(default_factory=dict)


def command_of(text: str | None) -> str | None:
    """A global command, matched strictly (exact, or a close typo of a long phrase)."""
    if not text:
        return None
    norm = normalise(text)
    if not norm or len(norm) > 60:
        return None
    for name in COMMAND_NAMES:
        for phrase in phrases(f"commands.{name}"):
            if norm == phrase or (len(phrase) >= 8 and fuzz.ratio(norm, phrase) >= 88):
                return name
    return None


def _exact(norm: str, phrase: str) -> bool:
    return f" {phrase} " in f" {norm} "


def _contains(norm: str, phrase: str) -> bool:
    """The phrase as words of the text, or (6 letters or more) nearly: typos tolerated. Shorter
    phrases must be exact ("aides" must not catch "aidez-moi")."""
    if _exact(norm, phrase):
        return True
    if len(phrase) >= 6:
        return fuzz.partial_ratio(phrase, norm) >= 88
    return False


def _triggers(flow: Flow) -> list[tuple[str, dict]]:
    found = []
    for trigger in flow.triggers:
        if isinstance(trigger, Trigger):
            found.extend((normalise(p), dict(trigger.answers)) for p in trigger.phrases)
        else:
            found.append((normalise(trigger), {}))
    return [(p, a) for p, a in found if p]


def intent_of(text: str | None, flows: dict[str, Flow]) -> Intent | None:
    """What free text outside a question asks for: a command, a flow trigger, or the menu.
    A long message (a story to read) is for a person, not a keyword hunt."""
    command = command_of(text)
    if command:
        return Intent(command)
    if not text:
        return None
    if is_long(text):
        return Intent("human")
    norm = normalise(text)
    for name in ("commands.human", "commands.erase"):
        if any(len(p) >= 8 and _contains(norm, p) for p in phrases(name)):
            return Intent(name.split(".")[1])
    if any(_contains(norm, p) if len(p) >= 8 else _exact(norm, p) for p in phrases("to_human")):
        return Intent("human")
    best: tuple[tuple[bool, int], str, dict] | None = None
    for flow in flows.values():
        for phrase, answers in _triggers(flow):
            if _contains(norm, phrase):
                score = (_exact(norm, phrase), len(phrase))  # exact words beat near matches, then longer
                if best is None or score > best[0]:
                    best = (score, flow.flow, answers)
    if best:
        return Intent("flow", best[1], best[2])
    if distress_of(text):  # outside a question: a person at once (in a question, the engine offers one)
        return Intent("human")
    if any(_contains(norm, g) for g in phrases("greetings")):
        return Intent("menu")
    return None
