"""The casework texts (casework/data/texts.yaml), loaded once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

TEXTS = Path(__file__).parent / "data" / "texts.yaml"


@lru_cache(maxsize=1)
def texts() -> dict:
    with TEXTS.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def person(key: str, **values) -> str:
    return texts()["person"][key].format(**values)


def label(key: str, **values) -> str:
    return texts()["labels"][key].format(**values)


def method(key: str) -> str:
    return texts()["methods"].get(key, key)
