"""The person chooses their language, at any time (conversations/receive.py asks here first).

The rule: the WHOLE message is a language's name, in any of the languages offered ("English",
"anglais", "العربية", "Українська", "ukrainien"), or the word for language ("langue", "language",
"اللغة", "мова", "🌐"), case, accents and end punctuation aside. A language's name switches to it;
the word for language offers the chooser (buttons with each language's own name). The buttons'
values: `lang` opens the chooser, `lang:<code>` switches. A sentence that merely mentions a
language ("je parle un peu anglais") is not a request: it goes on to the flow.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from words.catalogue import LANGUAGES, language_of, own_name, room

WORDS = room(__file__)
CHOOSE = "lang"
PREFIX = "lang:"
GLOBE = "🌐"
MAX_LENGTH = 40  # longer is a sentence, not a language's name
_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$")


def normal(text: str) -> str:
    """Casefolded, without accents or Arabic vowel marks, without punctuation at the ends."""
    decomposed = unicodedata.normalize("NFKD", text.replace(GLOBE, " ").casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c) and c != "\u0640")  # tatweel
    return " ".join(_EDGES.sub("", bare).split())


def _words(key: str, locale: str) -> list[str]:
    value = WORDS.raw(key, locale)
    return [value] if isinstance(value, str) else list(value or ())


@functools.lru_cache(maxsize=1)
def _index() -> tuple[dict[str, str], frozenset[str]]:
    names: dict[str, str] = {}
    commands = {"langue", "language"}
    for reader in LANGUAGES:
        for code in LANGUAGES:
            for name in _words(f"language.names.{code}", reader):
                names[normal(name)] = code
        commands.update(normal(word) for word in _words("language.command", reader))
    for code in LANGUAGES:
        names[normal(own_name(code))] = code
    return names, frozenset(commands)


def request_of(text: str | None, choice: str | None) -> tuple[str, str | None] | None:
    """("switch", code), ("choose", None), or None when the message is not about the language."""
    if choice is not None:
        if choice == CHOOSE:
            return ("choose", None)
        if choice.startswith(PREFIX) and choice[len(PREFIX):] in LANGUAGES:
            return ("switch", choice[len(PREFIX):])
        return None
    if not text or len(text) > MAX_LENGTH:
        return None
    names, commands = _index()
    said = normal(text)
    if said in names:
        return ("switch", names[said])
    parts = [normal(part) for part in text.split("/")]
    if said in commands or (said == "" and GLOBE in text) or (len(parts) > 1 and all(p in commands for p in parts)):
        return ("choose", None)
    return None


def chooser(locale: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The question and its buttons (each language by its own name)."""
    return WORDS.text("language.choose", locale), tuple((f"{PREFIX}{code}", own_name(code)) for code in LANGUAGES)


def switched(locale: str) -> str:
    return WORDS.text("language.switched", locale)


def welcome_hint(locale: str) -> str:
    """The last line of the first message to a new person: the other languages by their own names."""
    current = language_of(locale)
    return WORDS.text("language.hint", current, names=" · ".join(own_name(c) for c in LANGUAGES if c != current))
