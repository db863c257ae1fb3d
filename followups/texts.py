"""What the person reads (followups/words/<language>.yaml) and the timeline's labels (labels.yaml,
French: for workers). Reminders and "Ça a marché ?" go in the person's language."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from followups.models import ANSWERS
from words.catalogue import room

WORDS = room(__file__)


@lru_cache(maxsize=1)
def _labels() -> dict:
    with open(Path(__file__).with_name("labels.yaml"), encoding="utf-8") as file:
        return yaml.safe_load(file)


def person(key: str, locale: str | None, **values) -> str:
    return WORDS.text(key, locale, **values)


def buttons(locale: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((answer, WORDS.text(f"buttons.{answer}", locale)) for answer in ANSWERS)


def label(key: str, **values) -> str:
    """A timeline label (French, for workers)."""
    text = _labels()[key]
    return text.format(**values) if values and isinstance(text, str) else text


def answer_label(answer: str) -> str:
    return _labels()["answers"][answer]
