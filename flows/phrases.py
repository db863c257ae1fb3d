"""The phrases the engine understands, from the catalogues of every language at once.

A person may type English in a French conversation, or Arabic after choosing Ukrainian: lists under
`understand` in flows/words/<lang>.yaml are merged across languages and normalised once.
"""

from __future__ import annotations

import functools

from words.catalogue import LANGUAGES, room

from flows.inputs import normalise

WORDS = room(__file__)


@functools.lru_cache(maxsize=None)
def phrases(key: str) -> tuple[str, ...]:
    """Every language's normalised phrases for `understand.<key>`, longest first, no duplicates."""
    found: dict[str, None] = {}
    for language in LANGUAGES:
        for phrase in WORDS.languages.get(language, {}).get(f"understand.{key}") or ():
            norm = normalise(str(phrase))
            if norm:
                found[norm] = None
    return tuple(sorted(found, key=len, reverse=True))


def text(key: str, locale: str | None) -> str:
    return WORDS.text(key, locale)


def every_language(key: str) -> dict[str, str]:
    """A word in every language ({"fr": ..., "en": ...}), as a flow text mapping."""
    return {language: WORDS.text(key, language) for language in LANGUAGES}
