"""The casework texts: the workers' labels (casework/data/texts.yaml, French, loaded once) and what
the person reads (casework/words/<language>.yaml, in their language)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from words.catalogue import room

TEXTS = Path(__file__).parent / "data" / "texts.yaml"
WORDS = room(__file__)


@lru_cache(maxsize=1)
def texts() -> dict:
    with TEXTS.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def person(key: str, locale: str | None, **values) -> str:
    return WORDS.text(key, locale, **values)


def label(key: str, **values) -> str:
    return texts()["labels"][key].format(**values)


def method(key: str) -> str:
    return texts()["methods"].get(key, key)
