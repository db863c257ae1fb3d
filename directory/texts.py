"""The directory's words around the places, from the catalogue in `directory/words/` (French source,
English, Arabic, Ukrainian; see words/catalogue.py)."""

from __future__ import annotations

from words.catalogue import room

WORDS = room(__file__)


def text(key: str, locale: str | None = "fr", /, **values) -> str:
    return WORDS.text(key, locale, **values)


def numbers(need: str | None, locale: str | None = "fr") -> list[str]:
    """Numbers and contacts to give with a need (empty when none)."""
    key = f"numbers.{need or ''}"
    if key not in WORDS.keys():
        return []
    return list(WORDS.raw(key, locale) or [])
