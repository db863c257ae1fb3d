"""What the public reads, by key and by language.

Each room that speaks to the public keeps its words in a `words/` folder beside its code: one YAML
file per language (`fr.yaml` is the source; `en.yaml`, `ar.yaml`, `uk.yaml` translate it). Keys may
nest; they are read with dots (`handoff.reached`). A key missing in a language falls back to French
(and tests/words reports it); a key missing in French is a programming error (KeyError).
Values are `str.format` templates (`{first_name}`), or lists/mappings for structured words
(`raw`). A translation file may carry `_review: <note>` (machine-checked, "to review by a native
speaker"); keys starting with `_` are not words.

Locale metadata (text direction, a language's own name, Accept-Language negotiation) comes from
Babel's CLDR data rather than hand-written tables.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from babel import Locale, UnknownLocaleError
from babel.core import negotiate_locale

SOURCE = "fr"
LANGUAGES: tuple[str, ...] = ("fr", "en", "ar", "uk")


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in (tree or {}).items():
        key = str(key)
        if key.startswith("_"):
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and not value.get("_leaf"):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


class Catalogue:
    """The words of one room (its `words/` folder), in every language present."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.languages: dict[str, dict[str, Any]] = {}
        for language in LANGUAGES:
            path = self.folder / f"{language}.yaml"
            if path.exists():
                with open(path, encoding="utf-8") as file:
                    self.languages[language] = _flatten(yaml.safe_load(file) or {})
        if SOURCE not in self.languages:
            raise FileNotFoundError(f"{self.folder}/{SOURCE}.yaml: the source words are missing")

    def raw(self, key: str, locale: str | None = SOURCE) -> Any:
        """The value for `key` in `locale`, French when that language lacks it."""
        words = self.languages.get(language_of(locale), {})
        if key in words and words[key] not in (None, ""):
            return words[key]
        return self.languages[SOURCE][key]

    def text(self, key: str, locale: str | None = SOURCE, /, **values: Any) -> str:
        template = self.raw(key, locale)
        return template.format(**values) if values else template

    def keys(self) -> list[str]:
        return list(self.languages[SOURCE])

    def missing(self) -> dict[str, list[str]]:
        """Keys of the French source that each other language lacks (or leaves empty)."""
        source = self.languages[SOURCE]
        report = {}
        for language in LANGUAGES:
            if language == SOURCE:
                continue
            words = self.languages.get(language, {})
            report[language] = [key for key in source if words.get(key) in (None, "")]
        return report


@functools.lru_cache(maxsize=None)
def catalogue(folder: str | Path) -> Catalogue:
    """One loaded catalogue per folder (read once per process)."""
    return Catalogue(folder)


def room(module_file: str) -> Catalogue:
    """The catalogue beside a module: `room(__file__)` reads `<module's folder>/words/`."""
    return catalogue(str(Path(module_file).resolve().parent / "words"))


def language_of(hint: str | None) -> str:
    """A supported language for a hint ("en-GB", "ar_MA", "uk"); French otherwise."""
    if not hint:
        return SOURCE
    code = str(hint).replace("_", "-").split("-")[0].strip().lower()
    return code if code in LANGUAGES else SOURCE


def negotiate(accept_language: str | None) -> str | None:
    """The best supported language for an Accept-Language header, or None when none is offered."""
    if not accept_language or len(accept_language) > 512:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, index, tag.strip().replace("-", "_")))
    preferred = [tag for _, _, tag in sorted(ranked)]
    found = negotiate_locale(preferred, list(LANGUAGES), sep="_") if preferred else None
    return language_of(found) if found else None


@functools.lru_cache(maxsize=None)
def direction(locale: str | None) -> str:
    """"rtl" or "ltr", for the dir attribute."""
    try:
        return Locale.parse(language_of(locale)).text_direction
    except (UnknownLocaleError, ValueError):
        return "ltr"


@functools.lru_cache(maxsize=None)
def own_name(locale: str | None) -> str:
    """A language's name in that language, capitalised ("Français", "English", "العربية", "Українська")."""
    name = Locale.parse(language_of(locale)).get_display_name(language_of(locale)) or language_of(locale)
    return name[:1].upper() + name[1:]
