"""Free text to intents: the commands that work everywhere, and flow triggers ("mes droits", "RSA").

A small local matcher (normalised text, keywords, rapidfuzz for typos): no external NLU.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz

from flows.definition import Flow
from flows.inputs import normalise

# Commands that work in every state, whatever question is pending.
COMMANDS: dict[str, tuple[str, ...]] = {
    "menu": ("menu", "/start", "start", "/menu", "accueil", "retour au menu", "recommencer"),
    "human": ("humain", "/humain", "parler a quelqu un", "parler a une personne", "un humain",
              "une personne", "parler a un humain", "conseiller", "conseillere", "parler a un conseiller"),
    "stop": ("stop", "/stop", "arret", "arreter", "arrete", "je ne veux plus", "ne plus recevoir",
             "desabonner", "desinscrire", "unsubscribe"),
    "erase": ("supprimer mes donnees", "/supprimer", "effacer mes donnees", "supprimer mes infos",
              "supprimer mes informations", "oublier mes donnees", "supprimer donnees"),
}

# Free text outside a question that means "show me the menu".
GREETINGS = ("bonjour", "salut", "bonsoir", "hello", "coucou", "aide", "help", "aidez moi")


@dataclass(frozen=True)
class Intent:
    kind: str  # command name, or "flow"
    flow: str | None = None


def command_of(text: str | None) -> str | None:
    """A global command, matched strictly (exact, or a close typo of a long phrase)."""
    if not text:
        return None
    norm = normalise(text)
    if not norm or len(norm) > 60:
        return None
    for name, phrases in COMMANDS.items():
        for phrase in phrases:
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


def intent_of(text: str | None, flows: dict[str, Flow]) -> Intent | None:
    """What free text outside a question asks for: a command, a flow trigger, or the menu."""
    command = command_of(text)
    if command:
        return Intent(command)
    if not text:
        return None
    norm = normalise(text)
    if len(norm) > 300:
        norm = norm[:300]
    for name in ("human", "erase"):
        if any(len(p) >= 8 and _contains(norm, p) for p in COMMANDS[name]):
            return Intent(name)
    best: tuple[tuple[bool, int], str] | None = None
    for flow in flows.values():
        for trigger in flow.triggers:
            phrase = normalise(trigger)
            if _contains(norm, phrase):
                score = (_exact(norm, phrase), len(phrase))  # exact words beat near matches, then longer
                if best is None or score > best[0]:
                    best = (score, flow.flow)
    if best:
        return Intent("flow", best[1])
    if any(_contains(norm, g) for g in GREETINGS):
        return Intent("menu")
    return None
