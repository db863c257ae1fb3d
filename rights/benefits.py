"""Benefit texts (labels, one-line descriptions, links, rounding steps, display order) read from
`benefits.yaml`, so that wording changes never touch code."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

_FILE = Path(__file__).with_name("benefits.yaml")


@dataclass(frozen=True)
class BenefitText:
    id: str
    label: str
    description: str
    step: float
    period: str  # "mois" or "an"
    link: str
    note: str | None
    rank: int

    def rounded(self, amount: float) -> float:
        """Floor to the benefit's step (10 € for RSA, housing aid...; 1 € for PPA...)."""
        if self.step >= 1:
            return float(math.floor(amount / self.step + 1e-9) * self.step)
        return math.floor(amount * 100 + 1e-6) / 100


@cache
def _load() -> tuple[dict[str, BenefitText], dict[str, str]]:
    data = yaml.safe_load(_FILE.read_text(encoding="utf-8"))
    texts = {}
    for rank, entry in enumerate(data["benefits"]):
        texts[entry["id"]] = BenefitText(
            id=entry["id"],
            label=entry["label"],
            description=entry["description"],
            step=float(entry["step"]),
            period=entry["period"],
            link=entry["link"],
            note=entry.get("note"),
            rank=rank,
        )
    return texts, dict(data["reasons"])


def benefit_texts() -> dict[str, BenefitText]:
    """All benefits, keyed by id, in display order."""
    return _load()[0]


def benefit_ids() -> list[str]:
    return list(_load()[0])


def reason(key: str) -> str:
    """A short French reason for a benefit at zero (keys under `reasons:` in benefits.yaml)."""
    reasons = _load()[1]
    return reasons.get(key, reasons["unknown"])
