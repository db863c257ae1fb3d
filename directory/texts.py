"""The directory's words around the places, from `directory/data/help.yaml` (plain French)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

HELP_FILE = Path(__file__).parent / "data" / "help.yaml"


@lru_cache(maxsize=1)
def texts() -> dict:
    import yaml

    return yaml.safe_load(HELP_FILE.read_text(encoding="utf-8"))


def text(key: str, **values) -> str:
    return str(texts()[key]).format(**values)


def numbers(need: str | None) -> list[str]:
    """Numbers and contacts to give with a need (empty when none)."""
    return list((texts().get("numbers") or {}).get(need or "", []))
